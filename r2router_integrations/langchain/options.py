"""Per-call routing options: which kwargs of a call steer the router, and how they combine.

The chat model's fields (``lambda_``, ``allowed_models``, ``max_budget``,
``max_cost``, ``max_tokens``) are the core's :class:`RoutingOptions`, validated
once at construction; a call's own kwargs of the same names are read with
:meth:`RoutingOptions.from_mapping` and win over the fields. ``max_tokens`` is the
caller's cap with the core's one meaning (an upper bound on the routed budget;
below every budget, the smallest budget's arms at the caller's cap).
``force_model`` (or LangChain's per-call ``model=``) names a pool model and
narrows ``allowed_models`` to it. A kwarg that looks like a misspelt routing
option (``lamda``) is an error before any call.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from r2router_core import ConfigError, ConstraintError, RoutingOptions, UnknownModelError

__all__ = [
    "CALL_OPTIONS",
    "DECISION_KEY",
    "ROUTING_KEYS",
    "TOOLS_KEY",
    "BoundTools",
    "check_call_kwargs",
    "resolve_routing",
]

DECISION_KEY = "r2router_decision"
"""Call kwarg carrying the :class:`RoutingDecision` from the entry point to the hooks."""

TOOLS_KEY = "r2router_tools"
"""Call kwarg carrying the tools of ``bind_tools`` until the chosen child binds them."""

OPTION_FIELDS = ("lambda_", "allowed_models", "max_budget", "max_cost", "max_tokens")
"""Chat-model fields (and call kwargs) that are the core's routing options."""

CALL_OPTIONS = (*OPTION_FIELDS, "input_tokens")
"""Call kwargs that are the core's routing options: the fields, and ``input_tokens`` (the prompt's
length when the caller knows it better than the router's count)."""

ROUTING_KEYS = frozenset({*CALL_OPTIONS, "force_model", "model"})
"""Call kwargs consumed by routing; they never reach the pool model."""

# spellings a misspelt option is compared with (the core's JSON spelling "lambda" included)
_SPELLINGS = (*ROUTING_KEYS, "lambda")


@dataclass(frozen=True)
class BoundTools:
    """Tools given to ``R2RouterChatModel.bind_tools``, replayed on the chosen child.

    Attributes:
        tools: The tools exactly as the caller gave them (BaseTool, function, schema...).
        tool_choice: The caller's ``tool_choice``; ``None`` = the child's default.
        kwargs: Other ``bind_tools`` keyword arguments (``strict``, ``parallel_tool_calls``...).
    """

    tools: tuple[Any, ...]
    tool_choice: Any = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def check_call_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Refuse a kwarg that looks like a misspelt routing option, before any model is called.

    Raises:
        ConfigError: Naming the kwarg and the option it resembles.
    """
    for key in kwargs:
        if key in ROUTING_KEYS or key.startswith("r2router_"):
            continue
        close = difflib.get_close_matches(key, _SPELLINGS, n=1, cutoff=0.75)
        if close:
            wanted = "lambda_" if close[0] == "lambda" else close[0]
            raise ConfigError(
                f"unknown keyword {key!r}; did you mean {wanted!r}? R2RouterChatModel's routing options are "
                f"{sorted(ROUTING_KEYS - {'model'})}",
                field=key,
            )


def resolve_routing(
    call: Mapping[str, Any],
    defaults: RoutingOptions,
    *,
    pool: Sequence[str],
    force_model: str | None = None,
    tool_capable: Sequence[str] | None = None,
    structured: bool = False,
    min_budget: int | None = None,
) -> RoutingOptions:
    """Combine a call's routing kwargs with the model's default options.

    Args:
        call: The call's kwargs that are in :data:`ROUTING_KEYS`.
        defaults: The chat model's options (its fields).
        pool: The router's model names.
        force_model: The chat model's own ``force_model`` field.
        tool_capable: When tools are bound, the pool models that can bind them.
        structured: The call has tools or a structured-output schema: apply ``min_budget``.
        min_budget: The budget floor of structured calls.

    Returns:
        The call's :class:`RoutingOptions`.

    Raises:
        ConfigError: An option out of range (``error.field`` names it).
        UnknownModelError: A forced model outside the pool.
        ConstraintError: Contradictory options, or no tool-capable model left.
    """
    given = {k: v for k, v in call.items() if k in CALL_OPTIONS}
    options = defaults.merged(RoutingOptions.from_mapping(given))
    allowed = options.allowed_models
    forced = _forced_model(call, force_model, pool)
    if forced is not None:
        if allowed is not None and forced not in allowed:
            raise ConstraintError(f"force_model {forced!r} is not among allowed_models {list(allowed)}")
        allowed = (forced,)
    if tool_capable is not None:
        allowed = tuple(_tool_models(allowed if allowed is not None else pool, tool_capable))
    options = replace(options, allowed_models=allowed)
    if structured and min_budget is not None:
        options = replace(options, min_budget=min_budget)
    return options


def _forced_model(call: Mapping[str, Any], default: str | None, pool: Sequence[str]) -> str | None:
    by_name, by_override = call.get("force_model"), call.get("model")
    if by_name is not None and by_override is not None and by_name != by_override:
        raise ConstraintError(f"force_model={by_name!r} and model={by_override!r} disagree; pass one of them")
    forced = by_name if by_name is not None else by_override
    if forced is None:
        forced = default
    if forced is not None and forced not in pool:
        raise UnknownModelError(f"cannot force model {forced!r}: it is not in the pool {list(pool)}")
    return forced


def _tool_models(candidates: Sequence[str], tool_capable: Sequence[str]) -> list[str]:
    kept = [m for m in candidates if m in tool_capable]
    if not kept:
        raise ConstraintError(
            f"tools are bound, but none of the pool models {list(candidates)} can bind tools "
            "(their bind_tools is not implemented); add a tool-calling chat model to the pool"
        )
    return kept
