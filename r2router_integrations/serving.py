"""What the framework adapters share of their serving settings: the flat names, the decision log, feedback.

``R2RouterChatModel`` (LangChain) and ``R2RouterLLM`` (LlamaIndex) each hold one
``serving: ServingSettings`` field and the decision log it opens (``_log``). This mixin
reads the settings back under their flat names (``llm.fallbacks``, ``llm.store``...,
each documented by the core's ``field_doc``) and exposes the log and feedback, once for both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from r2router_core import ConfigError
from r2router_core.execute import SERVING_FIELDS, ServingSettings, field_doc

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

    def _open_serving(self) -> None:
        """Open the decision log of ``serving.store`` and seed this model's exploration draws."""
        self._log = self.serving.open_log()
        self._rng = np.random.default_rng(self.serving.seed)

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
