"""The one routing call shared by the selector and the routed LLM."""

from __future__ import annotations

import asyncio

from r2router_core import ConfigError, R2Router, RoutingDecision, RoutingOptions

__all__ = ["aroute", "check_router", "route"]


def check_router(router: object, *, owner: str) -> R2Router:
    """Fail early when ``router`` is not an :class:`R2Router` that can embed text."""
    if not isinstance(router, R2Router):
        raise ConfigError(f"{owner} needs an R2Router, got {type(router).__name__}")
    if router.embedder is None:
        raise ConfigError(
            f"{owner} routes text, but the router has no embedder; attach one first, e.g. "
            "router.embedder = LlamaIndexEmbedder(Settings.embed_model) or "
            "R2Router.from_pretrained(path, embedder='auto')"
        )
    return router


def route(router: R2Router, text: str, options: RoutingOptions) -> RoutingDecision:
    """Embed ``text`` with the router's embedder and decide (model, budget)."""
    return router.route_text(text, options)


async def aroute(router: R2Router, text: str, options: RoutingOptions) -> RoutingDecision:
    """:func:`route` in a worker thread, so embedding never blocks the event loop."""
    return await asyncio.to_thread(route, router, text, options)
