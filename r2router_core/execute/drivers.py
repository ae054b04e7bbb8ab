"""Thin drivers of a :class:`~r2router_core.execute.plan.CallPlan`: they perform what it asks.

As tenacity's ``Retrying`` and ``AsyncRetrying`` drive ``BaseRetrying.iter()``,
:func:`drive` and :func:`adrive` run a plan with a function that makes one
call, and :func:`drive_stream` / :func:`adrive_stream` do the same for streams.
They are the only places that sleep; the integrations pass the call and a reader
of what the answer reported, and queue the outcome's rows on their decision log.
Sync and async differ only in ``await``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from r2router_core.execute.plan import AnswerFacts, Attempt, CallOutcome, CallPlan, Done, Sleep

if TYPE_CHECKING:
    from r2router_core.store.decision_log import DecisionLog

__all__ = ["adrive", "adrive_stream", "drive", "drive_stream", "log_outcome"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C")


def log_outcome(log: DecisionLog | None, outcome: CallOutcome) -> None:
    """Queue the outcome's rows on the decision log (never blocks, never raises)."""
    if log is None:
        return
    for record in outcome.records:
        log.record(record)


def drive(
    plan: CallPlan,
    call: Callable[[Attempt], T],
    facts: Callable[[T], AnswerFacts],
    *,
    log: DecisionLog | None = None,
) -> tuple[T, CallOutcome]:
    """Run ``plan`` with ``call``: the answer returned and how the call ended.

    Raises:
        Exception: The call's error when it did not end ``ok`` (after its row is queued).
    """
    answers: dict[int, T] = {}
    while not isinstance(step := plan.next(), Done):
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            continue
        try:
            answer = call(step)
        except Exception as exc:
            plan.failed(step, exc)
            continue
        answers[step.number] = answer
        plan.answered(step, facts(answer))
    return _finish(step.outcome, answers, log)


async def adrive(
    plan: CallPlan,
    call: Callable[[Attempt], Awaitable[T]],
    facts: Callable[[T], AnswerFacts],
    *,
    log: DecisionLog | None = None,
) -> tuple[T, CallOutcome]:
    """:func:`drive` for a coroutine ``call``."""
    answers: dict[int, T] = {}
    while not isinstance(step := plan.next(), Done):
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            continue
        try:
            answer = await call(step)
        except Exception as exc:
            plan.failed(step, exc)
            continue
        answers[step.number] = answer
        plan.answered(step, facts(answer))
    return _finish(step.outcome, answers, log)


def _finish(outcome: CallOutcome, answers: dict[int, T], log: DecisionLog | None) -> tuple[T, CallOutcome]:
    log_outcome(log, outcome)
    outcome.raise_error()
    assert outcome.answered is not None  # status ok: an attempt answered
    return answers[outcome.answered.number], outcome


def drive_stream(
    plan: CallPlan,
    stream: Callable[[Attempt], Iterator[C]],
    facts: Callable[[Attempt], AnswerFacts],
    *,
    log: DecisionLog | None = None,
    done: Callable[[CallOutcome], None] | None = None,
) -> Iterator[C]:
    """Stream the first attempt that yields a chunk; earlier failures move on along the plan.

    A failure before the first chunk is the plan's to handle (the next arm); after it the
    answer cannot be taken back, so the error is raised. A caller that stops iterating
    early (``GeneratorExit``) abandons the call: what was streamed is logged as such.
    ``facts(attempt)`` is read when the attempt's stream ends; ``done(outcome)`` then runs
    (before the error, if any, is raised).
    """
    while not isinstance(step := plan.next(), Done):
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            continue
        started = False
        try:
            for chunk in stream(step):
                if not started:
                    started = True
                    plan.committed(step)
                yield chunk
        except GeneratorExit:
            plan.abandoned(step, facts(step))
            _stream_end(plan, log, done)
            raise
        except Exception as exc:
            plan.failed(step, exc)
            continue
        plan.answered(step, facts(step))
    _stream_end(plan, log, done).raise_error()


async def adrive_stream(
    plan: CallPlan,
    stream: Callable[[Attempt], AsyncIterator[C]],
    facts: Callable[[Attempt], AnswerFacts],
    *,
    log: DecisionLog | None = None,
    done: Callable[[CallOutcome], None] | None = None,
) -> AsyncIterator[C]:
    """:func:`drive_stream` for an async ``stream`` (cancellation abandons the call too)."""
    while not isinstance(step := plan.next(), Done):
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            continue
        started = False
        try:
            async for chunk in stream(step):
                if not started:
                    started = True
                    plan.committed(step)
                yield chunk
        except (GeneratorExit, asyncio.CancelledError):
            plan.abandoned(step, facts(step))
            _stream_end(plan, log, done)
            raise
        except Exception as exc:
            plan.failed(step, exc)
            continue
        plan.answered(step, facts(step))
    _stream_end(plan, log, done).raise_error()


def _stream_end(plan: CallPlan, log: DecisionLog | None, done: Callable[[CallOutcome], None] | None) -> CallOutcome:
    outcome = plan.outcome
    log_outcome(log, outcome)
    if done is not None:
        done(outcome)
    return outcome
