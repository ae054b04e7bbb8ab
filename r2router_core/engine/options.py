"""Per-call routing options: one type, validated once, used by every caller.

The router, the LangChain chat model, the LlamaIndex pieces, the gateway and the
CLI all build a :class:`RoutingOptions` (from keywords or from a plain mapping)
and never validate these values again::

    RoutingOptions(lambda_=0.99, max_budget=400)
    RoutingOptions.from_mapping({"lambda": 0.99, "allowed_models": ["small", "big"], "max_tokens": 300})

Two kinds of output-token limits, with different meanings:

* ``max_budget`` is a routing constraint: only budgets <= it (uncapped excluded)
  may be chosen; if none exists the call fails with :class:`NoCandidateError`.
* ``max_tokens`` is the caller's own cap (LangChain's ``max_tokens``, OpenAI's
  ``max_tokens``/``max_completion_tokens``): an upper bound on the budget the
  router may choose. When it is below every budget the call is not refused: the
  arms of the smallest budget compete and the model is capped at the caller's
  value. The cap actually sent is :meth:`RoutingDecision.max_tokens_for`.

``min_budget`` is a floor for calls whose output must not be cut (tool calls,
structured output): budgets below it are not chosen while a larger (or uncapped)
arm exists, and the cap sent is never below it unless the caller's
``max_tokens`` says otherwise.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from r2router_core.errors import ConfigError, ConstraintError

if TYPE_CHECKING:
    from r2router_core.engine.config import RouterConfig

__all__ = ["OPTION_KEYS", "STRUCTURED_OUTPUT_MIN_BUDGET", "RoutingOptions"]

STRUCTURED_OUTPUT_MIN_BUDGET = 1024
"""The budget floor (output tokens) of calls with tools or a structured-output schema: a JSON
answer cut by the cap is worthless, so such calls are never capped below this (unless the
caller's own ``max_tokens`` is smaller)."""

# mapping key -> field; "lambda" is the spelling of JSON, HTTP and the CLI
_ALIASES = {"lambda": "lambda_"}

OPTION_KEYS = ("lambda", "allowed_models", "max_budget", "max_cost", "input_tokens", "max_tokens", "min_budget")
"""The keys :meth:`RoutingOptions.from_mapping` accepts (``lambda_`` is accepted for ``lambda`` too)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class RoutingOptions:
    """Options of one routing call; ``None`` everywhere means "the router's default / no limit".

    Attributes:
        lambda_: Cost weight in [0, 1] (0 = best quality, 1 = cheapest); ``None`` = the router's.
        allowed_models: Choose only among these pool models; ``None`` = the whole pool.
        max_budget: Only budgets <= this many output tokens (excludes uncapped);
            none left is a :class:`NoCandidateError`.
        max_cost: Only arms whose predicted cost per query (USD) is <= this.
        input_tokens: Prompt length in tokens; adds each model's input cost.
        max_tokens: The caller's own output cap: an upper bound on the chosen budget;
            below every budget, the smallest budget's arms compete and the cap sent is this.
        min_budget: Floor for calls whose output must not be cut (tools, structured
            output); see :data:`STRUCTURED_OUTPUT_MIN_BUDGET`.

    Raises:
        ConfigError: At construction, for a value of the wrong type or out of range;
            ``error.field`` names the option.
    """

    lambda_: float | None = None
    allowed_models: tuple[str, ...] | None = None
    max_budget: int | None = None
    max_cost: float | None = None
    input_tokens: int | None = None
    max_tokens: int | None = None
    min_budget: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.lambda_ is not None:
            if not _is_real(self.lambda_) or not 0.0 <= float(self.lambda_) <= 1.0:
                raise ConfigError(
                    f"lambda must be a number in [0, 1] (0 = best quality, 1 = cheapest), got {self.lambda_!r}",
                    field="lambda",
                )
            set_(self, "lambda_", float(self.lambda_))
        if self.allowed_models is not None:
            set_(self, "allowed_models", _model_names(self.allowed_models))
        for name in ("max_budget", "max_tokens", "min_budget"):
            value = getattr(self, name)
            if value is not None:
                if not _is_int(value) or value < 1:
                    raise ConfigError(
                        f"{name} must be a positive int (output tokens) or None, got {value!r}", field=name
                    )
                set_(self, name, int(value))
        if self.max_cost is not None:
            if not _is_real(self.max_cost) or not math.isfinite(self.max_cost) or self.max_cost < 0:
                raise ConfigError(
                    f"max_cost must be a finite number >= 0 (USD per query) or None, got {self.max_cost!r}",
                    field="max_cost",
                )
            set_(self, "max_cost", float(self.max_cost))
        if self.input_tokens is not None:
            if not _is_int(self.input_tokens) or self.input_tokens < 0:
                raise ConfigError(
                    f"input_tokens must be an int >= 0 or None, got {self.input_tokens!r}", field="input_tokens"
                )
            set_(self, "input_tokens", int(self.input_tokens))

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> RoutingOptions:
        """Options from a plain mapping (JSON body, config file, call kwargs).

        Keys are those of :data:`OPTION_KEYS` (``lambda`` or ``lambda_``); ``None``
        values mean unset. ``allowed_models`` may be a list or a string of names
        separated by ``|`` or ``,``.

        Raises:
            ConfigError: Not a mapping, an unknown key, or a bad value; ``error.field``
                names the key.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"routing options must be a mapping with keys among {list(OPTION_KEYS)}, got {type(data).__name__}"
            )
        values: dict[str, Any] = {}
        known = {f.name for f in fields(cls)}
        for key, value in data.items():
            name = _ALIASES.get(key, key)
            if name not in known:
                raise ConfigError(
                    f"unknown routing option {key!r}; the options are {list(OPTION_KEYS)}", field=str(key)
                )
            if name in values:
                raise ConfigError(f"routing option {key!r} is given twice (as 'lambda' and 'lambda_')", field="lambda")
            if value is not None:
                values[name] = value
        return cls(**values)

    def merged(self, override: RoutingOptions | None) -> RoutingOptions:
        """These options with every option that ``override`` sets replaced by its value."""
        if override is None:
            return self
        changes = {f.name: getattr(override, f.name) for f in fields(override) if getattr(override, f.name) is not None}
        return replace(self, **changes) if changes else self

    # -- use ---------------------------------------------------------------------------
    def resolved(self, config: RouterConfig) -> RoutingOptions:
        """These options checked against a router's pool, with ``lambda_`` filled in from its config.

        Raises:
            UnknownModelError: An allowed model outside the pool.
        """
        if self.allowed_models is not None:
            for name in self.allowed_models:
                config.model(name)  # raises UnknownModelError naming the pool
        return self if self.lambda_ is not None else replace(self, lambda_=config.lambda_)

    @classmethod
    def build(cls, config: RouterConfig, **options: Any) -> RoutingOptions:
        """``RoutingOptions(**options).resolved(config)``: validated and checked against ``config``."""
        return cls(**options).resolved(config)

    @property
    def restricts_arms(self) -> bool:
        """True if some option may exclude arms (everything but ``lambda_`` and ``input_tokens``)."""
        return (
            self.allowed_models is not None
            or self.max_budget is not None
            or self.max_cost is not None
            or self.max_tokens is not None
            or self.min_budget is not None
        )

    def to_dict(self) -> dict[str, Any]:
        """The options that are set, under the keys of :meth:`from_mapping`."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out["lambda" if f.name == "lambda_" else f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.to_dict().items()) or "no options"


def _model_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.replace("|", ",").split(",")
    if not isinstance(value, Iterable):
        raise ConfigError(f"allowed_models must be a list of pool model names, got {value!r}", field="allowed_models")
    names = tuple(value)
    if not names:
        raise ConstraintError("allowed_models is empty; name at least one pool model, or pass None for the whole pool")
    if not all(isinstance(m, str) and m.strip() for m in names):
        raise ConfigError(
            f"allowed_models must be a list of pool model names, got {list(names)!r}", field="allowed_models"
        )
    return tuple(m.strip() for m in names)
