"""The decision log: background writes that never block or fail the caller, privacy by default."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from r2router_core import R2Router
from r2router_core.errors import UnknownDecisionError
from r2router_core.execute.fallback import FailedAttempt
from r2router_core.execute.records import call_cost, decision_record
from r2router_core.store import DecisionRecord, OutcomeStore
from r2router_core.store.decision_log import DecisionLog, new_decision_id

SECRET = "my bank password is hunter2"


def _record(router: R2Router, decision_id: str, **extra: object) -> DecisionRecord:
    embedding = router.embed([SECRET])[0]
    decision = router.route(embedding)
    failure = FailedAttempt("other", 8, "http_5xx", "InternalServerError: boom", 500)
    return decision_record(
        decision,
        decision.chosen,
        decision_id=decision_id,
        source="python",
        failures=[failure],
        embedding=embedding,
        prompt=SECRET,
        answer="the answer repeats hunter2",
        finish_reason="stop",
        input_tokens=10,
        output_tokens=20,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("keep_text", [False, True])
def test_no_prompt_text_reaches_the_store_unless_opted_in(
    text_router: R2Router, tmp_path: Path, keep_text: bool
) -> None:
    path = tmp_path / "log.db"
    with DecisionLog(path, keep_text=keep_text) as log:
        assert log.record(_record(text_router, "a1"))
        assert log.flush(timeout=30)
        stored = log.store.decision("a1")
    assert stored is not None
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the db, its WAL and shm files
    assert (b"hunter2" in raw) is keep_text
    assert (stored.prompt == SECRET) is keep_text
    assert stored.embedding is not None and stored.embedding.shape == (text_router.training_data.dim,)


def test_the_record_holds_the_arm_its_cost_and_the_failed_attempts(text_router: R2Router, tmp_path: Path) -> None:
    record = _record(text_router, "b1")
    decision = text_router.route(text_router.embed([SECRET])[0])
    spec = next(m for m in text_router.config.models if m.name == decision.model)
    assert record.cost_usd == pytest.approx((10 * spec.input_price + 20 * spec.output_price) / 1e6)
    assert record.cost_usd == call_cost(spec, 10, 20)
    assert (record.model, record.budget, record.lambda_) == (decision.model, decision.token_limit, decision.lambda_)
    assert record.failed_attempts[0]["status"] == 500
    assert record.options == decision.options.to_dict()


def test_ids_are_unique_across_threads() -> None:
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.extend(new_decision_id() for _ in range(500))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 2000


class _BrokenStore(OutcomeStore):
    def record_decisions(self, records):  # type: ignore[no-untyped-def]
        raise OSError("disk full")


def test_a_broken_store_is_counted_and_never_raises(text_router: R2Router, tmp_path: Path) -> None:
    log = DecisionLog(_BrokenStore(tmp_path / "b.db"))
    assert log.record(_record(text_router, "c1"))
    assert log.flush(timeout=30)
    assert (log.stats.failed, log.stats.written) == (1, 0)
    assert log.record(_record(text_router, "c2"))  # the writer survived
    assert log.flush(timeout=30)
    assert log.stats.failed == 2
    log.close()


class _SlowStore(OutcomeStore):
    gate = threading.Event()

    def record_decisions(self, records):  # type: ignore[no-untyped-def]
        self.gate.wait(30)
        return super().record_decisions(records)


def test_a_full_queue_drops_and_counts_instead_of_waiting(text_router: R2Router, tmp_path: Path) -> None:
    store = _SlowStore(tmp_path / "s.db")
    log = DecisionLog(store, max_queue=2, flush_interval=0)  # the writer takes only what is queued
    results = [log.record(_record(text_router, f"d{i}")) for i in range(10)]
    # the blocked writer holds at most what the queue held (2), the queue 2 more: the rest drop at once
    assert results.count(False) >= 10 - 4
    assert log.stats.dropped == results.count(False)
    store.gate.set()
    assert log.flush(timeout=30)
    assert log.store.count_decisions() == results.count(True) == log.stats.written
    log.close()


def test_feedback_waits_for_a_queued_decision_and_refuses_unknown_ids(text_router: R2Router, tmp_path: Path) -> None:
    with DecisionLog(tmp_path / "f.db") as log:
        log.record(_record(text_router, "e1"))
        log.feedback("e1", 0.75)  # right after the answer: still queued, or just written
        assert [f.quality for f in log.store.feedback("e1")] == [0.75]
        with pytest.raises(UnknownDecisionError):
            log.feedback("never-logged", 0.5)
    assert (log.stats.written, log.stats.failed, log.stats.pending) == (1, 0, 0)
