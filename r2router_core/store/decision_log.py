"""The decision log: every routed call, written to the outcome store in the background.

The caller's path only builds a :class:`~r2router_core.store.DecisionRecord` and
puts it on a bounded queue (:meth:`DecisionLog.record` never blocks and never
raises); one daemon thread drains the queue in batches into the store. A full
queue or a broken store is logged and counted (:attr:`DecisionLog.stats`), and
the answer still goes out. A batch the store refuses is retried row by row, so
one bad row loses that row only (counted as ``rejected``); values are made
storable before any insert (``schema.storable_row``).

The writer gathers a batch for at most ``flush_interval`` seconds (default
:data:`DEFAULT_FLUSH_INTERVAL`, 50 ms) after its first row, or until it holds
:data:`BATCH_SIZE` rows, then writes it in one transaction: a transaction costs
about 100 us of CPU on SQLite and 300 us on PostgreSQL whatever its size, a row
30 us more, so a few large batches cost the gateway far less than one per row
(at 150 rows/s: 83-100 us of writer CPU a row with 50 ms, 50-83 us with 100 ms,
230-420 us writing at once; ``benchmarks/bench_decision_log.py``). 50 ms halves
what a ``kill -9`` loses against 100 ms (docs/gateway-performance.md).
What a ``kill -9`` can lose: the rows answered in the last ``flush_interval`` plus
the time of one write (the queue holds at most ``max_queue``, 10,000, if the
store stalls), and the rows of answers still being sent. Privacy by default: the prompt and answer text are
dropped here, the one place every integration goes through, unless the
deployment opts in with ``keep_text=True``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2router_core.errors import ConfigError
from r2router_core.store.records import check_client_source, check_quality

if TYPE_CHECKING:
    from r2router_core.store import DecisionRecord, FeedbackRecord, OutcomeStore

__all__ = ["DecisionLog", "LogStats", "new_decision_id", "open_log"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 10_000
"""Records waiting for the writer before new ones are dropped (and counted)."""

BATCH_SIZE = 256
"""Records written per transaction at most."""

DEFAULT_FLUSH_INTERVAL = 0.05
"""Seconds the writer gathers a batch after its first record before writing it."""


def new_decision_id() -> str:
    """A fresh decision id: 32 hex digits of a random UUID (unique across processes and hosts)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class LogStats:
    """Counters of a :class:`DecisionLog` since it opened.

    Attributes:
        queued: Records accepted onto the queue.
        written: Records handed to the store without error (it keeps one row per id).
        dropped: Records refused because the queue was full.
        failed: Records lost because the store refused every row of their batch, each alone too (a
            broken or unreachable store; a batch of one refused row counts here as well).
        rejected: Records lost because the store refused that row alone (its batch failed, the
            other rows of it were written one by one).
        pending: Records still waiting for the writer.
    """

    queued: int
    written: int
    dropped: int
    failed: int
    pending: int
    rejected: int = 0


class DecisionLog:
    """Writes :class:`~r2router_core.store.DecisionRecord` rows to an outcome store, off the caller's path.

    Args:
        store: An :class:`~r2router_core.store.OutcomeStore`, or its SQLAlchemy URL / SQLite path.
        keep_text: Keep the prompt and answer text in the store (off: privacy by default;
            only the embedding and the numbers are written).
        max_queue: Records waiting at most; more are dropped and counted.
        flush_interval: Seconds the writer gathers a batch after its first record (0: writes
            whatever is queued at once; larger batches cost less per row).

    Raises:
        ConfigError: ``max_queue`` is not a positive integer, or ``flush_interval`` not in [0, 10].
        MissingDependencyError: SQLAlchemy is not installed (the ``store`` extra).
    """

    def __init__(
        self,
        store: OutcomeStore | str | Path,
        *,
        keep_text: bool = False,
        max_queue: int = DEFAULT_MAX_QUEUE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        from r2router_core.store import OutcomeStore

        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ConfigError(f"max_queue must be a positive integer, got {max_queue!r}")
        if isinstance(flush_interval, bool) or not isinstance(flush_interval, int | float):
            raise ConfigError(f"flush_interval must be a number of seconds in [0, 10], got {flush_interval!r}")
        if not 0 <= flush_interval <= 10:
            raise ConfigError(f"flush_interval must be a number of seconds in [0, 10], got {flush_interval!r}")
        self.flush_interval = float(flush_interval)
        self.store = store if isinstance(store, OutcomeStore) else OutcomeStore(store)
        self.keep_text = bool(keep_text)
        self._queue: queue.Queue[DecisionRecord | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._counts = {"queued": 0, "written": 0, "dropped": 0, "failed": 0, "rejected": 0}
        self._on_count: Callable[[str, int], None] | None = None
        self._on_pending: Callable[[int], None] | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="r2router-decision-log", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"DecisionLog({self.store!r}, keep_text={self.keep_text})"

    # -- the caller's side: never blocks, never raises --------------------------------
    def record(self, record: DecisionRecord) -> bool:
        """Queue one record for the store; ``False`` if it was dropped (queue full or log closed)."""
        if not self.keep_text and (record.prompt is not None or record.answer is not None):
            # a shallow copy without the text; not dataclasses.replace (a second validation on the caller's path)
            stripped = object.__new__(type(record))
            stripped.__dict__.update(record.__dict__, prompt=None, answer=None)
            record = stripped
        try:
            if self._closed:
                raise queue.Full
            self._queue.put_nowait(record)
        except queue.Full:
            self._count("dropped")
            logger.warning("decision log: queue full or closed, decision %s not logged", record.id)
            return False
        self._count("queued")
        return True

    def feedback(self, decision_id: str, quality: float, *, source: str = "api") -> FeedbackRecord:
        """Store a client's quality score in [0, 1] for a logged decision (waits for it if still queued).

        Raises:
            DataError: ``quality`` is not a number in [0, 1]; the id is not a decision id; ``source``
                is not a string of 1-200 characters without NUL, or is reserved for r2router's own
                graders (``grader:*``, :data:`~r2router_core.store.RESERVED_SOURCES`).
            UnknownDecisionError: No decision with this id is logged.
        """
        check_quality(quality)
        check_client_source(source)
        if self.store.decision(decision_id) is None:
            self.flush(timeout=5.0)
        return self.store.record_feedback(decision_id, quality, source=source)

    def observe(
        self, counts: Callable[[str, int], None] | None = None, pending: Callable[[int], None] | None = None
    ) -> None:
        """Report every counter change and the queue depth, e.g. to Prometheus counters.

        Args:
            counts: Called with ``(outcome, n)`` each time a counter of :class:`LogStats` grows
                (``queued`` on the caller's thread, the others on the writer's).
            pending: Called with the records still waiting, after each write (writer's thread).
        """
        self._on_count = counts
        self._on_pending = pending

    @property
    def stats(self) -> LogStats:
        """The counters, and how many records wait."""
        with self._lock:
            return LogStats(pending=self._queue.unfinished_tasks, **self._counts)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued record is written or failed; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to ``timeout`` seconds), stop the writer, release the store."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=1.0)
        self._thread.join(timeout)
        self.store.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread -------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n
        if self._on_count is not None:
            self._on_count(name, n)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]  # idle until a row comes
            if batch[0] is not None and self.flush_interval:
                # sleep, not wait on the queue: a put then wakes no thread (no futex call per row)
                time.sleep(self.flush_interval)
            while len(batch) < BATCH_SIZE and batch[-1] is not None:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write([r for r in batch if r is not None])
            finally:
                for _ in batch:
                    self._queue.task_done()
                if self._on_pending is not None:
                    self._on_pending(self._queue.unfinished_tasks)
            if any(r is None for r in batch):
                return

    def _write(self, records: list[DecisionRecord]) -> None:
        """One batch; if the store refuses it, each row alone, so a bad row loses only itself."""
        if not records:
            return
        try:
            self.store.record_decisions(records)
        except Exception:  # a broken store or one bad row: find out which, row by row
            logger.warning("decision log: the store refused a batch of %d; retrying row by row", len(records))
        else:
            self._count("written", len(records))
            return
        refused: list[tuple[DecisionRecord, Exception]] = []
        for record in records:
            try:
                self.store.record_decisions([record])
            except Exception as exc:  # a broken store must not kill the writer
                refused.append((record, exc))
            else:
                self._count("written")
        if not refused:
            return
        if len(refused) == len(records):  # nothing went in: the store, not a row, is at fault
            self._count("failed", len(refused))
            logger.error("decision log: the store refused %d decisions: %s", len(refused), refused[-1][1])
            return
        self._count("rejected", len(refused))
        for record, error in refused:
            logger.error("decision log: the store refused decision %s alone, lost: %s", record.id, error)


def open_log(store: Any, keep_text: bool = False) -> DecisionLog | None:
    """The decision log of a ``store=`` setting: a URL, a path, an ``OutcomeStore``, a ``DecisionLog`` or ``None``.

    Raises:
        ConfigError: Any other value.
    """
    from r2router_core.store import OutcomeStore

    if store is None or isinstance(store, DecisionLog):
        return store
    if not isinstance(store, str | Path | OutcomeStore):
        raise ConfigError(f"store must be a SQLAlchemy URL, a path, an OutcomeStore or a DecisionLog, got {store!r}")
    return DecisionLog(store, keep_text=keep_text)
