"""Per-call routing options: which kwargs of a call steer the router, and how they combine.

A call's own value wins over the chat model's field (``lambda_``, ``allowed_models``,
``max_budget``, ``max_cost``, ``force_model``). Output caps combine the other way:
``max_budget`` and ``max_tokens`` are both upper bounds, so the tighter one applies.
LangChain's per-call ``model=`` override names a pool model and means ``force_model``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from r2router_core.errors import ConfigError, ConstraintError, UnknownModelError

__all__ = ["DECISION_KEY", "ROUTING_KEYS", "TOOLS_KEY", "BoundTools", "resolve_routing"]

DECISION_KEY = "r2router_decision"
"""Call kwarg carrying the :class:`RoutingDecision` from the entry point to the hooks."""

TOOLS_KEY = "r2router_tools"
"""Call kwarg carrying the tools of ``bind_tools`` until the chosen child binds them."""

ROUTING_KEYS = frozenset({"lambda_", "allowed_models", "max_budget", "max_cost", "force_model", "model", "max_tokens"})
"""Call kwargs consumed by routing; they never reach the pool model."""


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


def resolve_routing(
    call: Mapping[str, Any],
    defaults: Mapping[str, Any],
    *,
    pool: Sequence[str],
    tool_capable: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Combine a call's routing kwargs with the model's defaults into ``route_texts`` options.

    Args:
        call: The call's kwargs that are in :data:`ROUTING_KEYS`.
        defaults: The chat model's fields of the same names.
        pool: The router's model names.
        tool_capable: When tools are bound, the pool models that can bind them.

    Returns:
        Keyword arguments for :meth:`R2Router.route_texts`.

    Raises:
        ConfigError: A cap that is not a positive int.
        UnknownModelError: A forced model outside the pool.
        ConstraintError: Contradictory options, or no tool-capable model left.
    """

    def pick(key: str) -> Any:
        value = call.get(key)
        return defaults.get(key) if value is None else value

    allowed = pick("allowed_models")
    if isinstance(allowed, str):
        allowed = [allowed]
    forced = _forced_model(call, defaults, pool)
    if forced is not None:
        if allowed is not None and forced not in allowed:
            raise ConstraintError(f"force_model {forced!r} is not among allowed_models {list(allowed)}")
        allowed = [forced]
    if tool_capable is not None:
        allowed = _tool_models(allowed if allowed is not None else pool, tool_capable)
    return {
        "lambda_": pick("lambda_"),
        "allowed_models": None if allowed is None else list(allowed),
        "max_budget": _tightest(pick("max_budget"), pick("max_tokens")),
        "max_cost": pick("max_cost"),
    }


def _forced_model(call: Mapping[str, Any], defaults: Mapping[str, Any], pool: Sequence[str]) -> str | None:
    by_name, by_override = call.get("force_model"), call.get("model")
    if by_name is not None and by_override is not None and by_name != by_override:
        raise ConstraintError(f"force_model={by_name!r} and model={by_override!r} disagree; pass one of them")
    forced = by_name if by_name is not None else by_override
    if forced is None:
        forced = defaults.get("force_model")
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


def _tightest(*caps: Any) -> int | None:
    for cap in caps:
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigError(f"max_budget and max_tokens must be positive ints (output tokens) or None, got {cap!r}")
    present = [c for c in caps if c is not None]
    return min(present) if present else None
