"""The serving settings: how a routed call is executed, declared once for every integration.

:class:`ServingSettings` is the one place where fallback, escalation,
exploration, the length instruction and the decision log get their defaults.
LangChain's :class:`R2RouterChatModel`, LlamaIndex's :class:`R2RouterLLM`, the
gateway's ``create_app`` and the ``r2router serve`` flags all embed it (the
adapters accept its field names as keywords and check them against it); the
collector uses :meth:`ServingSettings.measuring`, with fallback, escalation and
exploration off, because it measures one given arm per cell.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from r2router_core.errors import ConfigError
from r2router_core.execute.escalation import EscalationPolicy
from r2router_core.execute.exploration import ExplorationPolicy
from r2router_core.execute.fallback import DEFAULT_FALLBACKS, FallbackPolicy
from r2router_core.execute.instruction import LENGTH_INSTRUCTION, check_instruction_template

if TYPE_CHECKING:
    from r2router_core.store.decision_log import DecisionLog

__all__ = ["SERVING_FIELDS", "ServingSettings", "field_doc"]


@dataclass(frozen=True, kw_only=True)
class ServingSettings:
    """How routed calls are executed after their decision (validated at construction).

    Example:
        >>> ServingSettings(fallbacks=1, explore=0.05).fallback_policy.max_fallbacks
        1
    """

    fallbacks: int = DEFAULT_FALLBACKS
    """Other pool models tried, in utility order, when the chosen one fails with a provider error
    (timeout, connection, 5xx, 429); 0 turns fallback off. A 400 or a ``TypeError`` is raised at once."""

    fallback_policy: FallbackPolicy | None = None
    """The whole fallback policy (failure kinds, ``Retry-After`` limit, same-arm retries);
    overrides ``fallbacks`` when given."""

    escalation: EscalationPolicy | bool | int | None = None
    """When the budget cut the answer (finish reason ``length``), ask again at the next larger budget
    of the same model, else the next candidate: ``None``/``True`` = once (the default), ``False``/``0``
    = off, an int = that many times. Never for streams: a stream's cut shows after its bytes are out."""

    explore: ExplorationPolicy | float | None = None
    """Share of calls sent to a non-best arm among the top candidates, its propensity logged
    (an ``ExplorationPolicy`` or a rate in [0, 1)); ``None`` = off."""

    length_instruction: bool = True
    """Also tell the chosen model its budget in the prompt (the paper's setting); a hard cap alone
    cuts answers mid-sentence. Never added for an uncapped budget."""

    length_instruction_template: str = LENGTH_INSTRUCTION
    """The length instruction, with ``{budget}``."""

    store: Any = None
    """Log every routed call to this outcome store: a SQLAlchemy URL, a SQLite path, an
    ``OutcomeStore`` or a ``DecisionLog``; ``None`` = no log."""

    keep_text: bool = False
    """Keep prompt and answer text in the log (off: only the embedding and the numbers)."""

    seed: int | None = None
    """Seed of the exploration and shadow draws (``None``: fresh entropy)."""

    shadow: str | None = None
    """Shadow mode: the pool model you use today. Every call is answered by it exactly as a plain
    proxy would (its own cap, no length instruction, no fallback or escalation), while the router
    decides and its choice is logged beside the baseline's real usage and cost. ``None`` = off."""

    shadow_sample: float = 0.0
    """With ``shadow``: the share of calls the router answers instead (logged with propensities, so
    feedback on both sides gives a measured comparison), in [0, 1). 0 = the baseline answers all."""

    _escalation_policy: EscalationPolicy = field(init=False, repr=False, compare=False)
    _exploration_policy: ExplorationPolicy = field(init=False, repr=False, compare=False)
    _fallback_policy: FallbackPolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.fallback_policy is not None and not isinstance(self.fallback_policy, FallbackPolicy):
            raise ConfigError(
                f"fallback_policy must be a FallbackPolicy, got {self.fallback_policy!r}", field="fallback_policy"
            )
        policy = self.fallback_policy or FallbackPolicy(max_fallbacks=self.fallbacks)
        if not isinstance(self.explore, ExplorationPolicy | float | int | type(None)) or isinstance(self.explore, bool):
            raise ConfigError(f"explore must be a rate in [0, 1) or an ExplorationPolicy, got {self.explore!r}")
        if not isinstance(self.escalation, EscalationPolicy | bool | int | type(None)):
            raise ConfigError(f"escalation must be a bool, an int >= 0 or an EscalationPolicy, got {self.escalation!r}")
        for name in ("length_instruction", "keep_text"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}", field=name)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ConfigError(f"seed must be an int or None, got {self.seed!r}", field="seed")
        check_instruction_template(self.length_instruction_template)
        if self.shadow is not None and (not isinstance(self.shadow, str) or not self.shadow):
            raise ConfigError(f"shadow must be a pool model name or None, got {self.shadow!r}", field="shadow")
        sample = self.shadow_sample
        if isinstance(sample, bool) or not isinstance(sample, int | float) or not 0.0 <= sample < 1.0:
            raise ConfigError(f"shadow_sample must be a number in [0, 1), got {sample!r}", field="shadow_sample")
        if sample and self.shadow is None:
            raise ConfigError("shadow_sample needs shadow=MODEL (the baseline the router is compared with)")
        object.__setattr__(self, "_fallback_policy", policy)
        object.__setattr__(self, "_escalation_policy", EscalationPolicy.coerce(self.escalation))
        object.__setattr__(self, "_exploration_policy", ExplorationPolicy.coerce(self.explore))

    # -- the resolved policies -------------------------------------------------------------
    @property
    def fallback(self) -> FallbackPolicy:
        """The fallback policy in force (``fallback_policy``, else one of ``fallbacks``)."""
        return self._fallback_policy

    @property
    def escalation_policy(self) -> EscalationPolicy:
        """The escalation policy in force."""
        return self._escalation_policy

    @property
    def exploration(self) -> ExplorationPolicy:
        """The exploration policy in force."""
        return self._exploration_policy

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: ServingSettings | None = None) -> ServingSettings:
        """Settings from ``base`` (default: the defaults) with the given fields replaced.

        Raises:
            ConfigError: A key that is not a serving setting (the message lists them).
        """
        unknown = sorted(set(values) - set(SERVING_FIELDS))
        if unknown:
            raise ConfigError(f"{unknown} are not serving settings; choose among {list(SERVING_FIELDS)}")
        return dataclasses.replace(base or cls(), **dict(values))

    @classmethod
    def fold(cls, values: Mapping[str, Any], key: str = "serving") -> dict[str, Any]:
        """An adapter's keyword arguments with its flat serving settings folded into ``values[key]``.

        Lets ``R2RouterChatModel(fallbacks=1, store=...)`` and ``R2RouterLLM(...)`` keep their flat
        keywords while holding one :class:`ServingSettings` field.

        Raises:
            ConfigError: Both ``key`` and flat settings are given, or a setting is invalid.
        """
        flat = {name: values[name] for name in SERVING_FIELDS if name in values}
        if not flat:
            return dict(values)
        if values.get(key) is not None:
            raise ConfigError(
                f"pass the serving settings either as {key}=ServingSettings(...) or as keywords, not both "
                f"(got {key}= and {sorted(flat)})",
                field=key,
            )
        rest = {name: value for name, value in values.items() if name not in flat}
        rest[key] = cls.from_mapping(flat)
        return rest

    @classmethod
    def measuring(
        cls, *, fallback_policy: FallbackPolicy | None = None, length_instruction: bool = True
    ) -> ServingSettings:
        """The collector's settings: one given arm per cell (no fallback, escalation or exploration)."""
        policy = fallback_policy or FallbackPolicy(max_fallbacks=0)
        if policy.max_fallbacks:
            policy = dataclasses.replace(policy, max_fallbacks=0)
        return cls(fallback_policy=policy, escalation=False, explore=None, length_instruction=length_instruction)

    def router_answers(self, rng: Any) -> bool:
        """Whether this call is answered by the router (always, unless shadow mode draws the baseline).

        In shadow mode the router answers a share ``shadow_sample`` of calls, drawn from ``rng``.
        """
        if self.shadow is None:
            return True
        return bool(self.shadow_sample) and float(rng.random()) < self.shadow_sample

    def open_log(self) -> DecisionLog | None:
        """The decision log of ``store`` (opened here; ``None`` without a store)."""
        from r2router_core.store.decision_log import open_log

        return open_log(self.store, self.keep_text)

    def to_dict(self) -> dict[str, Any]:
        """The settings as given (policies as their repr), for identifying params and logs."""
        return {name: getattr(self, name) for name in SERVING_FIELDS}


SERVING_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ServingSettings) if f.init)
"""The names of the serving settings, in declaration order."""


def field_doc(name: str) -> str:
    """The docstring under a serving setting's declaration (for adapters' field descriptions and flags)."""
    return _field_docs().get(name, "")


@functools.cache
def _field_docs() -> dict[str, str]:
    import ast
    import inspect
    import itertools
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(ServingSettings)))
    except (OSError, TypeError):  # no source (a frozen app): no docs
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs
