"""The fallback policy: which failures of a pool model move a call on to the next arm.

Every place that executes a decision (the LangChain chat model, LlamaIndex's
routed LLM, the gateway) tries :meth:`RoutingDecision.fallback_plan` in order and
asks one :class:`FallbackPolicy` what to do with each error::

    for candidate in decision.fallback_plan(policy.max_fallbacks):
        try:
            return call(candidate)
        except Exception as exc:
            failure = policy.failure(exc)       # None: a programming error, re-raised
            if failure is None:
                raise
            attempts.append(FailedAttempt.of(candidate, failure))

Failures of the world (the provider) move on: timeouts, connection errors, HTTP
5xx and 429. Errors of the caller or of the code (a 400, a ``TypeError`` from a
typo'd keyword, a parser error) are raised at once: another model would fail the
same way, and hiding them behind a quiet fallback costs money and answers.

A 429 says when to come back: if its ``Retry-After`` is at most
``max_retry_after`` seconds, the same arm is tried once more after that wait;
otherwise (no header, or a longer wait) the call moves on to the next model.

Errors are recognised without importing any provider SDK: Python's own
``TimeoutError``/``ConnectionError``, any exception carrying an HTTP
``status_code`` (openai, anthropic, httpx's ``HTTPStatusError`` through its
``response``), and the timeout/transport classes of httpx, openai and anthropic
when those modules are loaded.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from r2router_core.engine.config import Budget, format_budget
from r2router_core.errors import ConfigError


class Arm(Protocol):
    """Anything tried in a fallback plan: a :class:`Candidate`, or a server's upstream attempt."""

    @property
    def model(self) -> str: ...

    @property
    def token_limit(self) -> Budget: ...


A = TypeVar("A", bound=Arm)
logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_FALLBACKS",
    "AttemptLog",
    "FailedAttempt",
    "Failure",
    "FailureKind",
    "FallbackPolicy",
    "classify",
    "parse_retry_after",
]

DEFAULT_FALLBACKS = 2
"""Other pool models tried after the chosen one fails, by default."""

DEFAULT_MAX_RETRY_AFTER = 2.0
"""Seconds: a 429 asking to wait at most this long is retried on the same arm once."""


class FailureKind(StrEnum):
    """What went wrong with one upstream call."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    SERVER_ERROR = "http_5xx"
    RATE_LIMITED = "http_429"
    INVALID_RESPONSE = "invalid_response"


@dataclass(frozen=True)
class Failure:
    """A provider failure, as the policy sees it.

    Attributes:
        kind: The kind of failure.
        detail: One line for logs and metadata (exception type and message, no secrets added).
        status: The HTTP status, when there was one.
        retry_after: Seconds the provider asked to wait (``Retry-After``), when given.
    """

    kind: FailureKind
    detail: str
    status: int | None = None
    retry_after: float | None = None


# (module, class name, kind): provider exception classes recognised when their module is loaded;
# the first match wins, so timeouts come before the connection errors they subclass
_KNOWN_CLASSES = (
    ("httpx", "TimeoutException", FailureKind.TIMEOUT),
    ("openai", "APITimeoutError", FailureKind.TIMEOUT),
    ("anthropic", "APITimeoutError", FailureKind.TIMEOUT),
    ("httpx", "TransportError", FailureKind.CONNECTION),
    ("openai", "APIConnectionError", FailureKind.CONNECTION),
    ("anthropic", "APIConnectionError", FailureKind.CONNECTION),
    ("openai", "APIResponseValidationError", FailureKind.INVALID_RESPONSE),
)


@dataclass(frozen=True)
class FallbackPolicy:
    """Which failures move a call on to the next arm of the fallback plan.

    Attributes:
        max_fallbacks: Other pool models tried after the chosen one (0 = no fallback).
        on: The failure kinds that move on (default: all of :class:`FailureKind`).
        max_retry_after: A 429 whose ``Retry-After`` is at most this many seconds is
            retried once on the same arm after that wait; 0 never waits.
        retries: Same-arm retries of a provider failure before moving on (0 when serving: the
            next model answers sooner; the collector measures one arm and retries it).
        backoff: With ``retries``: retry n waits a random time up to ``backoff * 2**n`` seconds
            (full jitter), or the provider's ``Retry-After``.
        max_wait: With ``retries``: the longest wait between two attempts, in seconds.
    """

    max_fallbacks: int = DEFAULT_FALLBACKS
    on: frozenset[FailureKind] = frozenset(FailureKind)
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    retries: int = 0
    backoff: float = 0.5
    max_wait: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.max_fallbacks, bool) or not isinstance(self.max_fallbacks, int) or self.max_fallbacks < 0:
            raise ConfigError(f"fallbacks must be an int >= 0 (0 = off), got {self.max_fallbacks!r}", field="fallbacks")
        kinds = frozenset(self.on)
        unknown = [k for k in kinds if not isinstance(k, FailureKind) and k not in set(FailureKind)]
        if unknown:
            raise ConfigError(
                f"fallback kinds {unknown} are unknown; choose among {[k.value for k in FailureKind]}", field="on"
            )
        object.__setattr__(self, "on", frozenset(FailureKind(k) for k in kinds))
        wait = self.max_retry_after
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait) or wait < 0:
            raise ConfigError(
                f"max_retry_after must be a number of seconds >= 0, got {wait!r}", field="max_retry_after"
            )
        self._check_retries()

    def _check_retries(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries must be an int >= 0, got {self.retries!r}", field="retries")
        for name in ("backoff", "max_wait"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}", field=name)

    def backoff_delay(self, retry: int, failure: Failure, rng: Any) -> float:
        """Seconds before same-arm retry number ``retry`` (0-based): the provider's ``Retry-After``
        (at most ``max_wait``), else full-jitter exponential backoff drawn from ``rng``."""
        if failure.retry_after is not None:
            return min(failure.retry_after, self.max_wait)
        return float(rng.uniform(0.0, min(self.max_wait, self.backoff * 2.0**retry)))

    @classmethod
    def coerce(cls, value: FallbackPolicy | int | None) -> FallbackPolicy:
        """A policy from a policy, a number of fallbacks, or ``None`` (the default policy)."""
        if value is None:
            return cls()
        if isinstance(value, FallbackPolicy):
            return value
        return cls(max_fallbacks=value)

    def failure(self, exc: BaseException) -> Failure | None:
        """The provider failure ``exc`` stands for, or ``None`` if it is not one (re-raise it)."""
        return classify(exc)

    def moves_on(self, failure: Failure) -> bool:
        """Whether this failure hands the call to the next arm."""
        return failure.kind in self.on

    def retry_delay(self, failure: Failure) -> float | None:
        """Seconds to wait before retrying the same arm once (a 429 with a short ``Retry-After``), else ``None``."""
        if failure.kind is not FailureKind.RATE_LIMITED or failure.retry_after is None:
            return None
        if failure.kind not in self.on:
            return None
        return failure.retry_after if failure.retry_after <= self.max_retry_after else None


@dataclass(frozen=True)
class FailedAttempt:
    """One arm that was tried and failed during a routed call (recorded the same way everywhere).

    Attributes:
        model: Pool model name.
        token_limit: Its budget (``None`` = uncapped).
        kind: The :class:`FailureKind` value.
        error: One line: exception type and message.
        status: The HTTP status, when there was one.
    """

    model: str
    token_limit: Budget
    kind: str
    error: str
    status: int | None = None

    @classmethod
    def of(cls, model: str, token_limit: Budget, failure: Failure) -> FailedAttempt:
        """The record of ``model`` at ``token_limit`` failing with ``failure``."""
        return cls(model, token_limit, failure.kind.value, failure.detail, failure.status)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "token_limit": self.token_limit,
            "kind": self.kind,
            "error": self.error,
            "status": self.status,
        }

    def __str__(self) -> str:
        return f"{self.model}@{format_budget(self.token_limit)} -> {self.error}"


class AttemptLog(Generic[A]):
    """Walks a fallback plan under a policy and records the failed attempts.

    Iterate it (``for`` or ``async for``) to get the arm to try next; call
    :meth:`failed` from the ``except`` block of a failed try. A 429 with a short
    ``Retry-After`` yields the same arm once more after the wait; an error that is
    not a provider failure is re-raised by :meth:`failed` at once.

    Args:
        plan: The arms in order (:meth:`RoutingDecision.fallback_plan`).
        policy: The fallback policy.
    """

    def __init__(self, plan: Sequence[A], policy: FallbackPolicy) -> None:
        self._plan = list(plan)
        self._policy = policy
        self.failures: list[FailedAttempt] = []
        self._last: BaseException | None = None
        self._retry: float | None = None
        self._stop = False

    def _next(self) -> Iterator[tuple[A, float]]:
        """(arm, seconds to wait before it) in order, retries included."""
        for candidate in self._plan:
            wait = 0.0
            retried = False
            while True:
                yield candidate, wait
                if self._stop:
                    return
                if self._retry is None or retried:
                    break
                wait, self._retry, retried = self._retry, None, True

    def __iter__(self) -> Iterator[A]:
        for candidate, wait in self._next():
            if wait:
                time.sleep(wait)
            yield candidate

    async def __aiter__(self) -> AsyncIterator[A]:
        for candidate, wait in self._next():
            if wait:
                await asyncio.sleep(wait)
            yield candidate

    def failed(self, candidate: A, exc: BaseException) -> FailedAttempt:
        """Record that ``candidate`` raised ``exc``; re-raise ``exc`` if it is not a provider failure.

        Returns:
            The record (also appended to :attr:`failures`).
        """
        failure = self._policy.failure(exc)
        if failure is None:
            raise exc
        record = FailedAttempt.of(candidate.model, candidate.token_limit, failure)
        self.failures.append(record)
        self._last = exc
        self._retry = self._policy.retry_delay(failure)
        if not self._policy.moves_on(failure):
            self._stop = True
        logger.warning(
            "pool model %r (budget %s) failed: %s%s",
            candidate.model,
            format_budget(candidate.token_limit),
            failure.detail,
            f"; retrying in {self._retry:g} s" if self._retry is not None else "",
        )
        return record

    def error(self) -> BaseException:
        """The last error, with a note listing every attempt when there were several."""
        if self._last is None:
            raise RuntimeError("no attempt failed; the fallback plan is never empty")
        if len(self.failures) > 1:
            chain = "; ".join(str(f) for f in self.failures)
            self._last.add_note(f"r2router: all {len(self.failures)} attempts failed, in order: {chain}")
        return self._last


def classify(exc: BaseException) -> Failure | None:
    """The :class:`Failure` an exception stands for, or ``None`` for errors that are not the provider's.

    An exception may carry its own classification as an attribute ``r2router_failure``
    (a :class:`Failure`), as the gateway's upstream errors do.
    """
    own = getattr(exc, "r2router_failure", None)
    if isinstance(own, Failure):
        return own
    detail = f"{type(exc).__name__}: {exc}"[:500]
    status = _status(exc)
    if status is not None:
        if status == 429:
            return Failure(FailureKind.RATE_LIMITED, detail, status, _retry_after(exc))
        if status >= 500:
            return Failure(FailureKind.SERVER_ERROR, detail, status)
        if status == 408:
            return Failure(FailureKind.TIMEOUT, detail, status)
        return None  # other 4xx: the request is wrong, another model would refuse it too
    for module, name, kind in _KNOWN_CLASSES:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return Failure(kind, detail)
    if isinstance(exc, TimeoutError):
        return Failure(FailureKind.TIMEOUT, detail)
    if isinstance(exc, ConnectionError):
        return Failure(FailureKind.CONNECTION, detail)
    return None


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599 else None


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
    except Exception:  # a headers object of an unknown shape: no hint
        return None
    return parse_retry_after(value)


def parse_retry_after(value: Any, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or an HTTP date); ``None`` if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None
