"""What the framework adapters share of their serving settings: flat names, the log, feedback, the plan.

``R2RouterChatModel`` (LangChain) and ``R2RouterLLM`` (LlamaIndex) each hold one
``serving: ServingSettings`` field and the decision log it opens (``_log``). This mixin
reads the settings back under their flat names (``llm.fallbacks``, ``llm.store``...,
each documented by the core's ``field_doc``) and exposes the log and feedback, once for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from r2router_core import ConfigError, ModelSpec, RoutingDecision
from r2router_core.execute import SERVING_FIELDS, CallPlan, ServingSettings, field_doc

if TYPE_CHECKING:
    from r2router_core import DecisionLog

__all__ = ["ServingAccess"]


class ServingAccess:
    """Mixin of a framework model with a ``serving`` field and a ``_log`` (its decision log)."""

    if TYPE_CHECKING:
        serving: ServingSettings
        _log: DecisionLog | None
        _rng: np.random.Generator

        def __getattr__(self, name: str) -> Any: ...  # the flat serving names, set below

    def _open_serving(self, pool: Iterable[str]) -> None:
        """Check the settings against the served ``pool``, open the decision log of ``serving.store``
        and seed this model's exploration and shadow draws."""
        served = list(pool)
        if self.serving.shadow is not None and self.serving.shadow not in served:
            raise ConfigError(
                f"shadow={self.serving.shadow!r} is not a served pool model; name the model you use today, "
                f"one of {served}",
                field="shadow",
            )
        self._log = self.serving.open_log()
        self._rng = np.random.default_rng(self.serving.seed)

    def _call_plan(
        self, decision: RoutingDecision, models: Sequence[ModelSpec], *, source: str, stream: bool, **facts: Any
    ) -> CallPlan:
        """The plan of one call: the router's, or in shadow mode (when the draw says so) the baseline's.

        In a framework the decision is made before the call (in-process routing, a few ms); the
        gateway routes beside the baseline's call instead. Either way the row holds the router's
        choice beside what the baseline really cost.
        """
        if self.serving.router_answers(self._rng):
            return CallPlan.routed(decision, self.serving, source=source, stream=stream, rng=self._rng, **facts)
        plan = CallPlan.shadowed(
            self.serving,
            models,
            source=source,
            max_tokens=decision.options.max_tokens,
            prompt=facts.get("prompt"),
            prompt_tokens=facts.get("prompt_tokens", decision.options.input_tokens),
            rng=self._rng,
            started=facts.get("started"),
        )
        plan.decided(decision, embedding=facts.get("embedding"))
        return plan

    @property
    def decision_log(self) -> DecisionLog | None:
        """The decision log of ``store=`` (``None`` without a store)."""
        return self._log

    def feedback(self, decision_id: str, quality: float, *, source: str = "api") -> None:
        """Record a quality score in [0, 1] for a logged call (its ``decision_id`` from the answer's metadata).

        Raises:
            ConfigError: No ``store``.
            DataError: ``quality`` is not a number in [0, 1].
            UnknownDecisionError: No logged call has this id.
        """
        if self._log is None:
            raise ConfigError("feedback needs the decision log: set store= (a SQLAlchemy URL or a path)")
        self._log.feedback(decision_id, quality, source=source)


def _serving_property(name: str) -> property:
    return property(lambda self: getattr(self.serving, name), doc=field_doc(name))


for _name in SERVING_FIELDS:  # llm.fallbacks, llm.store...: the serving settings by their flat names
    setattr(ServingAccess, _name, _serving_property(_name))
