"""One bad row loses one row: hostile values are made storable, a refused row is retried alone,
feedback fields are validated alike on SQLite and PostgreSQL (issue 23 items 3 and 6)."""

from __future__ import annotations

from typing import Any

import pytest

from r2router_core.errors import DataError, UnknownDecisionError
from r2router_core.store import OutcomeStore
from r2router_core.store.decision_log import DecisionLog
from r2router_core.store.schema import INT32_MAX, NUL_REPLACEMENT

from .test_store_decisions import _record

HOSTILE: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (fields of the record, what reads back)
    "nul_in_prompt": ({"prompt": "a\x00b"}, {"prompt": f"a{NUL_REPLACEMENT}b"}),
    "nul_in_answer": ({"answer": "\x00" * 3}, {"answer": NUL_REPLACEMENT * 3}),
    "lone_surrogate_in_answer": ({"answer": "x\ud800y"}, {"answer": f"x{NUL_REPLACEMENT}y"}),
    "long_finish_reason": ({"finish_reason": "r" * 500}, {"finish_reason": "r" * 40}),
    "nul_in_finish_reason": ({"finish_reason": "st\x00p"}, {"finish_reason": f"st{NUL_REPLACEMENT}p"}),
    "huge_completion_tokens": ({"output_tokens": 3_000_000_000}, {"output_tokens": INT32_MAX}),
    "huge_prompt_tokens": ({"input_tokens": 10**30}, {"input_tokens": INT32_MAX}),
    "negative_tokens": ({"output_tokens": -5}, {"output_tokens": None}),
    "nan_latency": ({"latency_s": float("nan")}, {"latency_s": None}),
    "long_model": ({"model": "m" * 1000}, {"model": "m" * 200}),
    "long_embedder_with_nul": ({"embedder": "e\x00" * 300}, {"embedder": f"e{NUL_REPLACEMENT}" * 200}),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_value_is_stored_and_the_batch_around_it_too(store_url: str, name: str) -> None:
    fields, want = HOSTILE[name]
    store = OutcomeStore(store_url)
    batch = [_record(1), _record(2, **fields), _record(3)]
    assert store.record_decisions(batch) == 3
    back = store.decision("d0002")
    assert back is not None
    for column, value in want.items():
        assert getattr(back, column) == value, column
    assert store.count_decisions() == 3
    store.close()


def test_the_same_hostile_batch_through_the_log_loses_nothing(store_url: str) -> None:
    records = [_record(i, **HOSTILE[name][0]) for i, name in enumerate(sorted(HOSTILE), start=10)]
    records += [_record(i) for i in range(30, 50)]
    with DecisionLog(store_url, keep_text=True) as log:
        for record in records:
            assert log.record(record)
        assert log.flush(timeout=60)
        assert log.store.count_decisions() == len(records)
        stats = log.stats
    assert (stats.written, stats.failed, stats.rejected) == (len(records), 0, 0)


class _PickyStore(OutcomeStore):
    """Refuses any batch holding the decision ``d0007``, as a database refuses one bad row."""

    def record_decisions(self, records):  # type: ignore[no-untyped-def]
        if any(r.id == "d0007" for r in records):
            raise ValueError("value out of range for this column")
        return super().record_decisions(records)


def test_a_row_still_refused_is_retried_alone_and_only_it_is_lost(store_url: str) -> None:
    store = _PickyStore(store_url)
    counted: list[tuple[str, int]] = []
    with DecisionLog(store) as log:
        log.observe(counts=lambda outcome, n: counted.append((outcome, n)))
        for i in range(12):
            log.record(_record(i))
        assert log.flush(timeout=60)
        stored = {r.id for r in log.store.decisions()}
        stats = log.stats
    assert stored == {f"d{i:04d}" for i in range(12)} - {"d0007"}
    assert (stats.written, stats.rejected, stats.failed) == (11, 1, 0)
    assert sum(n for outcome, n in counted if outcome == "rejected") == 1
    assert sum(n for outcome, n in counted if outcome == "written") == 11


def test_postgres_refusing_a_nul_id_loses_that_row_alone(postgres_url: str) -> None:
    """A row no sanitizing can save (its id is its identity): PostgreSQL refuses it, the others go in."""
    bad = _record(5)
    object.__setattr__(bad, "id", "d\x00bad")  # past the record's own check, as a buggy caller might
    with DecisionLog(postgres_url) as log:
        for record in [*(_record(i) for i in range(5)), bad, *(_record(i) for i in range(6, 9))]:
            log.record(record)
        assert log.flush(timeout=60)
        assert log.store.count_decisions() == 8
        assert (log.stats.written, log.stats.rejected) == (8, 1)


@pytest.mark.parametrize(
    ("decision_id", "source"),
    [
        ("d0001", "s" * 201),  # longer than the column
        ("d0001", "user\x00x"),  # NUL: PostgreSQL refuses it
        ("d0001", ""),
        ("d0001", 7),
        ("d\x000001", "api"),  # NUL in the id
        ("d" * 65, "api"),  # no stored id is longer
        ("", "api"),
    ],
)
def test_bad_feedback_fields_are_a_data_error_on_both_backends(store_url: str, decision_id: str, source: Any) -> None:
    with DecisionLog(store_url) as log:
        log.record(_record(1))
        assert log.flush(timeout=30)
        with pytest.raises(DataError):
            log.feedback(decision_id, 0.5, source=source)
        with pytest.raises(DataError):
            log.store.record_feedback(decision_id, 0.5, source=source)
        assert log.store.feedback() == []
        log.feedback("d0001", 0.5, source="s" * 200)  # at the limit: fine
        assert len(log.store.feedback()) == 1


@pytest.mark.parametrize("source", ["grader:numeric", "GRADER:exact", "  grader:judge:big"])
def test_grader_sources_come_from_the_graders_only(store_url: str, source: str) -> None:
    with DecisionLog(store_url) as log:
        log.record(_record(1))
        assert log.flush(timeout=30)
        with pytest.raises(DataError, match="reserved"):
            log.feedback("d0001", 1.0, source=source)  # a client's path
        assert log.store.feedback() == []
        log.store.record_feedback("d0001", 1.0, source=source)  # the graders' own path: through the store
        assert [f.source for f in log.store.feedback()] == [source]
        with pytest.raises(UnknownDecisionError):
            log.feedback("d0002", 1.0, source="user:7")


def test_the_reload_generation_counts_up_across_stores(store_url: str) -> None:
    one, two = OutcomeStore(store_url), OutcomeStore(store_url)
    assert one.reload_generation() == two.reload_generation() == 0
    assert one.bump_reload_generation() == 1
    assert two.bump_reload_generation() == 2
    assert one.reload_generation() == 2
    one.close()
    two.close()
