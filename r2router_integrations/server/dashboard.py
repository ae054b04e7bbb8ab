"""The gateway's live dashboard: the savings report of the last hour, refreshing itself.

``GET /dashboard`` is the report's HTML page with ``<meta http-equiv="refresh">`` (no
JavaScript at all); ``GET /dashboard.json`` is the same numbers as JSON. Both sit behind
the gateway's API key like ``/admin`` (the app's auth middleware guards every path but
``/health``). The report is computed in a worker thread (``anyio.to_thread``), never on
the event loop, and cached for a few seconds; concurrent viewers share one computation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from r2router_core import ModelSpec, R2RouterError
from r2router_core.evaluation import NoTrafficError, SavingsReport, report_from_store
from r2router_integrations.report import message_page, render_page

__all__ = ["DEFAULT_CACHE_S", "DEFAULT_REFRESH_S", "DEFAULT_WINDOW_S", "Dashboard", "dashboard_routes"]

DEFAULT_WINDOW_S = 3600.0
"""The dashboard shows the last hour of traffic."""
DEFAULT_CACHE_S = 30.0
"""A computed report is served for this many seconds before it is computed again."""
DEFAULT_REFRESH_S = 15
"""The page reloads itself every this many seconds."""
TITLE = "r2router live dashboard"


class Dashboard:
    """The report of a recent window of a store, cached.

    Args:
        source: Returns the log to read: an ``OutcomeStore``, a ``DecisionLog`` (its store) or ``None``
            (the gateway logs nothing); called on each computation, so a swapped log is followed.
        pool: Returns the pool's models and prices (the gateway's router config); ``None``: the store's table.
        window_s: Seconds of traffic shown.
        cache_s: Seconds a computed report is reused.
        refresh_s: Seconds between the page's reloads.
    """

    def __init__(
        self,
        source: Callable[[], Any],
        *,
        pool: Callable[[], Sequence[ModelSpec]] | None = None,
        window_s: float = DEFAULT_WINDOW_S,
        cache_s: float = DEFAULT_CACHE_S,
        refresh_s: int = DEFAULT_REFRESH_S,
    ) -> None:
        self._source = source
        self._pool = pool
        self.window_s = float(window_s)
        self.cache_s = float(cache_s)
        self.refresh_s = int(refresh_s)
        self._cached: tuple[float, SavingsReport | str] | None = None
        self._lock: anyio.Lock | None = None
        self.computations = 0

    async def current(self) -> SavingsReport | str:
        """The report of the window (or why there is none), at most ``cache_s`` old."""
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:  # viewers arriving during a computation wait for it instead of starting another
            if self._cached is None or time.monotonic() - self._cached[0] > self.cache_s:
                result = await anyio.to_thread.run_sync(self._compute)
                self._cached = (time.monotonic(), result)
            return self._cached[1]

    def _compute(self) -> SavingsReport | str:
        self.computations += 1
        source = self._source()
        store = getattr(source, "store", source)
        if store is None:
            return "this gateway logs no decisions: start it with --store URL to see what routing spends and saves"
        since = (datetime.now(UTC) - timedelta(seconds=self.window_s)).isoformat(timespec="milliseconds")
        try:
            pool = list(self._pool()) if self._pool is not None else None
            return report_from_store(store, since=since, pool=pool)
        except NoTrafficError:
            return f"no traffic in the last {self.window_s / 60:g} minutes: this page refreshes itself when it comes"
        except R2RouterError as exc:
            return f"the decision log cannot be read: {exc}"

    async def page(self, request: Request) -> Response:
        """``GET /dashboard``."""
        result = await self.current()
        if isinstance(result, str):
            return HTMLResponse(message_page(result, title=TITLE, refresh_s=self.refresh_s))
        return HTMLResponse(render_page(result, title=TITLE, refresh_s=self.refresh_s))

    async def data(self, request: Request) -> Response:
        """``GET /dashboard.json``."""
        result = await self.current()
        if isinstance(result, str):
            return JSONResponse({"message": result, "requests": 0})
        return JSONResponse(result.to_dict())


def dashboard_routes(
    source: Callable[[], Any],
    *,
    pool: Callable[[], Sequence[ModelSpec]] | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    cache_s: float = DEFAULT_CACHE_S,
    refresh_s: int = DEFAULT_REFRESH_S,
) -> list[Route]:
    """``GET /dashboard`` and ``GET /dashboard.json`` over one cached :class:`Dashboard` (arguments: its own)."""
    board = Dashboard(source, pool=pool, window_s=window_s, cache_s=cache_s, refresh_s=refresh_s)
    return [
        Route("/dashboard", board.page, methods=["GET"]),
        Route("/dashboard.json", board.data, methods=["GET"]),
    ]
