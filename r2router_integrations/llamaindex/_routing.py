"""The one routing call shared by the selector and the routed LLM."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from r2router_core import R2Router, RoutingDecision
from r2router_core.errors import ConfigError
from r2router_core.scoring import RoutingOptions

__all__ = ["RoutingSettings", "aroute", "check_router", "route"]


@dataclass(frozen=True)
class RoutingSettings:
    """Per-integration routing options, passed to :meth:`R2Router.route_text`.

    Attributes:
        lambda_: Cost weight in [0, 1]; ``None`` = the router's config.
        max_budget: Only budgets <= this many output tokens (excludes uncapped).
        max_cost: Only arms with predicted cost <= this many USD per query.
    """

    lambda_: float | None = None
    max_budget: int | None = None
    max_cost: float | None = None

    def check(self, router: R2Router) -> RoutingSettings:
        """Validate against the router's config now, so a bad option fails at construction."""
        RoutingOptions.build(router.config, lambda_=self.lambda_, max_budget=self.max_budget, max_cost=self.max_cost)
        return self


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


def route(
    router: R2Router, text: str, settings: RoutingSettings, *, allowed_models: Sequence[str] | None = None
) -> RoutingDecision:
    """Embed ``text`` with the router's embedder and decide (model, budget)."""
    return router.route_text(
        text,
        lambda_=settings.lambda_,
        max_budget=settings.max_budget,
        max_cost=settings.max_cost,
        allowed_models=allowed_models,
    )


async def aroute(
    router: R2Router, text: str, settings: RoutingSettings, *, allowed_models: Sequence[str] | None = None
) -> RoutingDecision:
    """:func:`route` in a worker thread, so embedding never blocks the event loop."""
    return await asyncio.to_thread(route, router, text, settings, allowed_models=allowed_models)
