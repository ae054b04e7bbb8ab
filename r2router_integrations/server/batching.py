"""Micro-batched routing: concurrent prompts are embedded in one forward pass, off the event loop.

A real embedder (MiniLM) costs about as much for 16 prompts as for one, so the
gateway does not embed each request on its own. :class:`RoutingBatcher` queues
the prompts that ask for a decision and hands them to one worker thread as a
batch: all texts are embedded together (:meth:`R2Router.embed`), then each group
of requests with equal :class:`RoutingOptions` is routed with
:meth:`R2Router.route_batch`. The event loop never embeds, so ``/health`` and
every other request keep moving while a large prompt is embedded.

When a batch starts:

* at once if every request that has arrived and may still ask (see :meth:`arriving`)
  is already waiting: a request alone never waits;
* else when ``window`` seconds have passed since the oldest waiting request
  arrived, or ``max_batch`` requests are waiting, whichever comes first;
* never while the previous batch is still in the thread: requests that queue
  meanwhile go together as soon as it ends.

So a request waits for its batch to start at most ``max(window, the batch in
progress)``. A batch predicted to route within :data:`INLINE_SECONDS` (from the
time per character of the batches before it) runs on the event loop instead of
the thread: the hand-over to a thread costs more CPU than such a batch (GIL
hand-offs; 0.4 ms per request measured with the weightless embedder), and a
pure-Python embedder holds the GIL in the thread anyway. A slow embedder (MiniLM)
or a long prompt always goes to the thread. Each request gets the decision it would get alone: rows of a batch
are routed independently, and if a batch fails, its requests are routed one by
one so one bad prompt fails only itself.

:meth:`RoutingBatcher.route_embedded` also hands out the prompt's embedding row,
so the gateway's decision log stores it without embedding the prompt a second time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core import ConfigError, R2Router, RoutingDecision, RoutingOptions
from r2router_core.embedders import check_texts

__all__ = ["DEFAULT_BATCH_WINDOW", "DEFAULT_MAX_BATCH", "Routed", "RoutingBatcher"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_WINDOW = 0.0
"""Seconds a waiting request gives others that are still arriving to join its batch. 0 by default:
requests still batch while the previous batch is embedded (which is when batching pays), and the
load test measured a 2 ms window costing throughput with the weightless embedder."""

DEFAULT_MAX_BATCH = 64
"""Most prompts embedded in one forward pass."""

INLINE_SECONDS = 0.002
"""A batch predicted to route faster than this is routed on the event loop, not in the thread."""

_MIN_CHARS = 256  # a text is costed as at least this many characters (the kNN's cost does not shrink with it)


Routed = tuple[RoutingDecision, NDArray[np.float32]]
"""A decision and the embedding row it was routed on, shape (D,)."""


@dataclass
class _Job:
    text: str
    options: RoutingOptions
    future: asyncio.Future[Routed] = field(repr=False)


class RoutingBatcher:
    """Routes the prompts of concurrent requests in batches, on one worker thread.

    Args:
        router: The router (with an embedder attached).
        window: Seconds the oldest waiting request waits for others still arriving (0: never waits).
        max_batch: Most prompts in one batch.
        on_batch: Called on the event loop with the size of each batch started (for metrics).

    Raises:
        ConfigError: A negative or non-finite window, or ``max_batch`` < 1.
    """

    def __init__(
        self,
        router: R2Router,
        *,
        window: float = DEFAULT_BATCH_WINDOW,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int | float) or not math.isfinite(window) or window < 0:
            raise ConfigError(f"batch window must be a number of seconds >= 0, got {window!r}", field="batch_window")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError(f"max_batch must be a positive int, got {max_batch!r}", field="max_batch")
        self.router = router
        self._window = float(window)
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._pending: list[_Job] = []
        self._arriving = 0
        self._running = False
        self._timer: asyncio.TimerHandle | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._per_char: float | None = None  # seconds per character of recent batches (None: none yet)

    # -- the event-loop side ---------------------------------------------------------------
    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request that may ask for a decision soon (while its body is read and checked).

        A waiting batch waits (up to the window) only while such requests exist.
        """
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1
            if self._pending and not self._running and self._everyone_waiting():
                self._dispatch()

    async def route(self, text: str, options: RoutingOptions) -> RoutingDecision:
        """The decision for ``text`` under ``options``, routed in a batch with concurrent requests.

        Raises:
            Whatever :meth:`R2Router.route_text` raises for this prompt alone.
        """
        decision, _ = await self.route_embedded(text, options)
        return decision

    async def route_embedded(self, text: str, options: RoutingOptions) -> Routed:
        """As :meth:`route`, with the prompt's embedding row (shape (D,)) the decision was routed on.

        Raises:
            Whatever :meth:`R2Router.route_text` raises for this prompt alone.
        """
        future: asyncio.Future[Routed] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(text, options, future))
        if not self._running:
            if len(self._pending) >= self._max_batch or self._window == 0 or self._everyone_waiting():
                self._dispatch()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._window, self._dispatch)
        return await future

    def close(self) -> None:
        """Stop the worker thread (the batch in it, if any, finishes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _everyone_waiting(self) -> bool:
        return self._arriving <= len(self._pending)

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        live = [job for job in self._pending if not job.future.done()]  # drop requests whose client left
        jobs, self._pending = live[: self._max_batch], live[self._max_batch :]
        if not jobs:
            return
        self._running = True
        if self._on_batch is not None:
            self._on_batch(len(jobs))
        asyncio.get_running_loop().create_task(self._run(jobs))

    async def _run(self, jobs: list[_Job]) -> None:
        try:
            if self._per_char is not None and self._per_char * _chars(jobs) < INLINE_SECONDS:
                results = self._timed(jobs)  # cheap: on the event loop (see the module docstring)
            else:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(1, thread_name_prefix="r2router-routing")
                results = await asyncio.get_running_loop().run_in_executor(self._executor, self._timed, jobs)
        except BaseException as exc:  # the executor itself failed (shut down): every job gets the error
            results = [exc] * len(jobs)
        finally:
            self._running = False
        for job, result in zip(jobs, results, strict=True):
            if job.future.done():
                continue
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
        if self._pending:  # they queued while this batch ran: their wait is over
            self._dispatch()

    # -- the worker-thread side ------------------------------------------------------------
    def _timed(self, jobs: list[_Job]) -> list[Any]:
        """:meth:`_route_all`, updating the cost per character (a slower batch counts at once, a faster one slowly)."""
        started = time.perf_counter()
        results = self._route_all(jobs)
        per_char = (time.perf_counter() - started) / _chars(jobs)
        last = self._per_char
        self._per_char = per_char if last is None else max(per_char, 0.9 * last)
        return results

    def _route_all(self, jobs: list[_Job]) -> list[Any]:
        """One (decision, embedding row) (or the exception routing alone would raise) per job, in order."""
        if len(jobs) == 1:
            return [self._alone(jobs[0])]
        try:
            embeddings = self.router.embed([job.text for job in jobs])
        except Exception:
            logger.debug("embedding a batch of %d failed; routing each prompt alone", len(jobs))
            return [self._alone(job) for job in jobs]
        groups: dict[RoutingOptions, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(job.options, []).append(i)
        out: list[Any] = [None] * len(jobs)
        for options, rows in groups.items():
            try:
                decisions = self.router.route_batch(embeddings[rows], options)
            except Exception:
                for i in rows:
                    out[i] = self._alone(jobs[i])
                continue
            for i, decision in zip(rows, decisions, strict=True):
                out[i] = (decision, embeddings[i])
        return out

    def _alone(self, job: _Job) -> Any:
        """What :meth:`R2Router.route_text` gives this prompt alone (its two steps, to keep the embedding)."""
        try:
            embedding = self.router.embed(check_texts([job.text]))
            return self.router.route_batch(embedding, job.options)[0], embedding[0]
        except Exception as exc:
            return exc


def _chars(jobs: list[_Job]) -> int:
    return sum(max(len(job.text), _MIN_CHARS) for job in jobs)
