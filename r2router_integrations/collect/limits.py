"""Per-model concurrency, rate limits, retries and deadlines of the collector's calls.

Libraries, and why:

* ``asyncio.Semaphore`` caps the calls in flight per model (``concurrency``).
* ``aiolimiter.AsyncLimiter`` (a small, maintained leaky bucket for asyncio) spaces
  the requests of a model: capacity 1 and one request per ``60 / rpm`` seconds, so
  no window of a minute (or of a second, with ``rps``) ever holds more requests than
  the limit, retries included (every attempt passes the limiter). A larger bucket
  would allow a burst of ``rpm`` on top of the steady rate within the first minute.
* ``tenacity`` retries 429, 5xx, timeouts and connection errors (as the core's
  :func:`~r2router_core.execute.fallback.classify` sees them) with exponential backoff and
  full jitter (``wait_random_exponential``), waiting exactly the ``Retry-After`` a provider sends instead (capped at
  ``max_wait``); any other error (a 400, an auth error) is not retried.
* ``asyncio.timeout`` puts a total deadline on each attempt (``call_timeout``), not
  only on the gaps between bytes (httpx's own timeout), so a stream that trickles
  forever still ends.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from r2router_core import ConfigError, classify, missing_dependency

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
    """

    concurrency: int = 8
    rpm: float | None = None
    rps: float | None = None
    max_attempts: int = 6
    call_timeout: float = 300.0
    max_wait: float = 60.0
    backoff: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigError(f"concurrency must be an int >= 1, got {self.concurrency!r}", field="concurrency")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}", field="max_attempts")
        for name in ("rpm", "rps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or not math.isfinite(value) or value <= 0):
                raise ConfigError(f"{name} must be a number > 0 or None, got {value!r}", field=name)
        for name in ("call_timeout", "max_wait", "backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}", field=name)

    @property
    def interval(self) -> float | None:
        """Seconds between two requests of one model (``None``: unlimited)."""
        gaps = [60.0 / self.rpm] if self.rpm else []
        gaps += [1.0 / self.rps] if self.rps else []
        return max(gaps) if gaps else None


class CallGate:
    """One model's semaphore, limiter and retry policy.

    Args:
        limits: The limits.
    """

    def __init__(self, limits: Limits) -> None:
        try:
            import aiolimiter
            import tenacity
        except ImportError as exc:
            raise missing_dependency(exc.name or "tenacity", "collect", "r2router collect") from exc
        self.limits = limits
        self._semaphore = asyncio.Semaphore(limits.concurrency)
        interval = limits.interval
        self._limiter = None if interval is None else aiolimiter.AsyncLimiter(1, interval)
        self._backoff = tenacity.wait_random_exponential(multiplier=limits.backoff, max=limits.max_wait)

    def _wait(self, state: Any) -> float:
        exc = state.outcome.exception() if state.outcome else None
        failure = classify(exc) if exc is not None else None
        if failure is not None and failure.retry_after is not None:
            return min(failure.retry_after, self.limits.max_wait)
        return float(self._backoff(state))

    async def call(self, attempt: Callable[[], Awaitable[T]]) -> tuple[T, int, float]:
        """Run ``attempt`` under the limits, retrying provider failures.

        Returns:
            The result, the number of attempts made, and the seconds of the last attempt.

        Raises:
            Exception: The last error, once attempts run out or for an error that is not retried;
                its ``r2router_attempts`` attribute holds the number of attempts.
        """
        import tenacity

        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.limits.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(lambda e: classify(e) is not None),
            reraise=True,
        )
        tries, started = 0, time.perf_counter()
        async with self._semaphore:
            try:
                async for state in retrying:
                    with state:
                        tries += 1
                        if self._limiter is not None:
                            await self._limiter.acquire()
                        started = time.perf_counter()
                        async with asyncio.timeout(self.limits.call_timeout):
                            result = await attempt()
            except Exception as exc:
                exc.r2router_attempts = tries  # type: ignore[attr-defined]
                raise
        return result, tries, time.perf_counter() - started
