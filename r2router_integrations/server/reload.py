"""Reloading the gateway's router with the outcomes its decision log collected.

``POST /admin/reload`` (and, with ``reload_every``, a schedule) builds the router as loaded plus
every logged answer with a quality signal (``training_data_from_decisions``) in a worker thread
and swaps it in with one assignment: requests keep routing on the old router meanwhile, none
waits or fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import anyio.to_thread

from r2router_core import ConfigError, DecisionLog, R2Router
from r2router_core.store import training_data_from_decisions
from r2router_integrations.server.errors import GatewayError

__all__ = ["Reloader"]

logger = logging.getLogger(__name__)


class Reloader:
    """Rebuilds the router from the loaded one plus the logged outcomes, on demand or on a schedule.

    Args:
        router: The gateway's router as loaded.
        log: The decision log, or ``None`` (reloads answer 404).
        swap: Called with each rebuilt router (the gateway swaps it in).
        reload_every: Seconds between scheduled reloads (``None``: on demand only).
    """

    def __init__(
        self,
        router: R2Router,
        log: DecisionLog | None,
        *,
        swap: Callable[[R2Router], None] | None = None,
        reload_every: float | None = None,
    ) -> None:
        if reload_every and not router.has_training_data:
            raise ConfigError(
                "--reload-every needs a router with training rows; this one was converted from fitted weights. "
                "Build one from the store with 'r2router train --store URL' and serve that"
            )
        self.router = router
        self.base = router
        self.log = log
        self._swap = swap
        self.reload_every = reload_every
        self._reload_lock: asyncio.Lock | None = None
        self._schedule: asyncio.Task[None] | None = None
        self.reloads = 0
        self.on_reload: Callable[[float], None] | None = None  # told each reload's seconds (the gateway's metrics)

    # -- reload ----------------------------------------------------------------------
    async def reload(self) -> dict[str, int]:
        """Rebuild the router from the loaded one plus the logged outcomes, then swap it in.

        Returns:
            ``{"logged_rows": ..., "training_rows": ...}`` of the new router.
        """
        log = self.log
        if log is None:
            raise GatewayError(404, "this gateway keeps no decision log (start it with --store)", code="not_found")
        if not self.base.has_training_data:
            raise GatewayError(
                409,
                "this gateway's router was converted from fitted weights and has no training rows to add logged "
                "outcomes to; build one from the store with 'r2router train --store URL' and serve that",
                code="conflict",
            )
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:  # one rebuild at a time; requests never take this lock
            started = time.perf_counter()
            router = await anyio.to_thread.run_sync(self._rebuilt, log)
            if router is not self.router:
                self.router = router
                if self._swap is not None:
                    self._swap(router)
            self.reloads += 1
            if self.on_reload is not None:
                self.on_reload(time.perf_counter() - started)
        n_base = self.base.training_data.n_queries
        return {"logged_rows": router.training_data.n_queries - n_base, "training_rows": router.training_data.n_queries}

    def _rebuilt(self, log: DecisionLog) -> R2Router:
        base = self.base
        data = training_data_from_decisions(
            log.store,
            base.config.model_names,
            base.config.budgets,
            token_axes=base.training_data.tokens.ndim,
            embedder_id=base.config.embedder,
        )
        if data is None:
            return self.router
        fresh = R2Router(base.config, base.training_data, embedder=base.embedder)
        logger.info("reload: %d logged rows added to %d", data.n_queries, base.training_data.n_queries)
        return fresh.add_outcomes(data)

    def start(self) -> None:
        """Start the reload schedule (inside the app's event loop)."""
        if self.log is not None and self.reload_every and self._schedule is None:
            self._schedule = asyncio.get_running_loop().create_task(self._every(self.reload_every))

    async def _every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.reload()
            except Exception:
                logger.exception("scheduled reload failed; the router in use is kept")

    def stop(self) -> None:
        """Stop the schedule."""
        if self._schedule is not None:
            self._schedule.cancel()
            self._schedule = None
