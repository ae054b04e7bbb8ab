"""Per-model concurrency, rate limits, retries and deadlines of the collector's calls.

Libraries, and why:

* ``asyncio.Semaphore`` caps the calls in flight per model (``concurrency``).
* ``aiolimiter.AsyncLimiter`` (a small, maintained leaky bucket for asyncio) spaces
  the requests of a model: capacity 1 and one request per ``60 / rpm`` seconds, so
  no window of a minute (or of a second, with ``rps``) ever holds more requests than
  the limit, retries included (every attempt passes the limiter). A larger bucket
  would allow a burst of ``rpm`` on top of the steady rate within the first minute.
* Retries are the core's call plan
  (:class:`~r2router_core.execute.CallPlan`, built by :meth:`Limits.policy`): 429, 5xx,
  timeouts and connection errors (as :func:`~r2router_core.execute.fallback.classify`
  sees them) are retried on the same arm with exponential backoff and full jitter, or
  after exactly the ``Retry-After`` a provider sends (capped at ``max_wait``); any other
  error (a 400, an auth error) is not retried. Serving and collecting thus retry, price
  and record a call the same way.
* ``asyncio.timeout`` puts a total deadline on each attempt (``call_timeout``), not
  only on the gaps between bytes (httpx's own timeout), so a stream that trickles
  forever still ends.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from r2router_core import ConfigError, missing_dependency
from r2router_core.execute import FallbackPolicy

__all__ = ["CallGate", "Limits"]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Limits:
    """How hard the collector may press each model.

    Attributes:
        concurrency: Calls in flight per model.
        rpm: Requests per minute per model (``None``: no limit).
        rps: Requests per second per model (``None``: no limit); with ``rpm`` too, the stricter wins.
        max_attempts: Attempts per call, the first included.
        call_timeout: Seconds one attempt may take in total.
        max_wait: Longest wait between attempts (backoff or ``Retry-After``), seconds.
        backoff: Backoff multiplier in seconds: attempt n waits a random time up to ``backoff * 2**n``.
        pause_after: Connection errors in a row after which a model's upstream is paused for the
            rest of the run (its remaining cells are not called; the next run tries them again).
    """

    concurrency: int = 8
    rpm: float | None = None
    rps: float | None = None
    max_attempts: int = 6
    call_timeout: float = 300.0
    max_wait: float = 60.0
    backoff: float = 0.5
    pause_after: int = 5

    def __post_init__(self) -> None:
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigError(f"concurrency must be an int >= 1, got {self.concurrency!r}", field="concurrency")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}", field="max_attempts")
        if isinstance(self.pause_after, bool) or not isinstance(self.pause_after, int) or self.pause_after < 1:
            raise ConfigError(f"pause_after must be an int >= 1, got {self.pause_after!r}", field="pause_after")
        for name in ("rpm", "rps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or not math.isfinite(value) or value <= 0):
                raise ConfigError(f"{name} must be a number > 0 or None, got {value!r}", field=name)
        for name in ("call_timeout", "max_wait", "backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}", field=name)

    def policy(self) -> FallbackPolicy:
        """The call plan's policy: one arm (no fallback), ``max_attempts - 1`` same-arm retries."""
        return FallbackPolicy(
            max_fallbacks=0, retries=self.max_attempts - 1, backoff=self.backoff, max_wait=self.max_wait
        )

    @property
    def interval(self) -> float | None:
        """Seconds between two requests of one model (``None``: unlimited)."""
        gaps = [60.0 / self.rpm] if self.rpm else []
        gaps += [1.0 / self.rps] if self.rps else []
        return max(gaps) if gaps else None


class CallGate:
    """One model's semaphore (calls in flight) and limiter (request spacing).

    Args:
        limits: The limits.
    """

    def __init__(self, limits: Limits) -> None:
        try:
            import aiolimiter
        except ImportError as exc:
            raise missing_dependency(exc.name or "aiolimiter", "collect", "r2router collect") from exc
        self.limits = limits
        self.slot = asyncio.Semaphore(limits.concurrency)
        """Held for a whole call (its retries and their waits included)."""
        interval = limits.interval
        self._limiter = None if interval is None else aiolimiter.AsyncLimiter(1, interval)

    async def attempt(self, call: Callable[[], Awaitable[T]], *, timeout: float | None = None) -> T:
        """One attempt: wait for the limiter, then run ``call`` under the per-attempt deadline."""
        if self._limiter is not None:
            await self._limiter.acquire()
        async with asyncio.timeout(self.limits.call_timeout if timeout is None else timeout):
            return await call()
