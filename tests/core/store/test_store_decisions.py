"""The decision log and feedback tables of the outcome store, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from r2router_core.errors import DataError, UnknownDecisionError
from r2router_core.store import DecisionRecord, OutcomeStore, training_data_from_decisions


def _record(i: int, **extra: object) -> DecisionRecord:
    rng = np.random.default_rng(i)
    fields: dict = {
        "id": f"d{i:04d}",
        "source": "python",
        "model": "small",
        "budget": 64 if i % 2 else None,
        "options": {"lambda_": 0.5, "allowed_models": ["small", "big"]},
        "predicted_quality": 0.7,
        "predicted_cost": 1e-4,
        "lambda_": 0.5,
        "propensity": 0.95,
        "input_tokens": 12,
        "output_tokens": 30,
        "finish_reason": "stop",
        "latency_s": 0.1,
        "cost_usd": 2e-4,
        "failed_attempts": ({"model": "big", "token_limit": 256, "kind": "http_5xx"},),
        "embedder": "hash-16",
        "embedding": rng.normal(size=16).astype(np.float32),
    }
    fields.update(extra)
    return DecisionRecord(**fields)


def test_decisions_round_trip_and_an_id_is_written_once(store_url: str) -> None:
    store = OutcomeStore(store_url)
    records = [_record(i) for i in range(5)]
    assert store.record_decisions(records) == 5
    assert store.record_decisions(records[:2]) == 0  # a retried batch duplicates nothing
    assert store.count_decisions() == 5
    back = store.decision("d0003")
    assert back is not None
    want = records[3]
    assert back.embedding is not None and want.embedding is not None
    np.testing.assert_array_equal(back.embedding, want.embedding)
    for name in ("model", "budget", "options", "propensity", "failed_attempts", "finish_reason", "cost_usd"):
        assert getattr(back, name) == getattr(want, name), name
    assert back.prompt is None and back.answer is None
    assert back.created_at
    assert store.decision("nope") is None
    assert [r.id for r in store.decisions()] == [r.id for r in records]
    store.close()


def test_feedback_is_kept_per_decision_and_validated(store_url: str) -> None:
    store = OutcomeStore(store_url)
    store.record_decisions([_record(1), _record(2)])
    store.record_feedback("d0001", 1.0)
    store.record_feedback("d0001", 0.25, source="grader")
    store.record_feedback("d0002", 0)
    assert [(f.quality, f.source) for f in store.feedback("d0001")] == [(1.0, "api"), (0.25, "grader")]
    assert len(store.feedback()) == 3
    with pytest.raises(UnknownDecisionError, match="'d9999'"):
        store.record_feedback("d9999", 0.5)
    for bad in (1.5, -0.1, float("nan"), True, "0.5"):
        with pytest.raises(DataError, match="quality"):
            store.record_feedback("d0001", bad)  # type: ignore[arg-type]
    assert len(store.feedback()) == 3
    store.close()


def test_a_version_1_store_gains_the_live_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    OutcomeStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE feedback")
    conn.execute("DROP TABLE decisions")
    conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    store = OutcomeStore(path)
    store.record_decisions([_record(7)])
    assert store.count_decisions() == 1
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    conn.close()


def test_a_decision_record_refuses_bad_values() -> None:
    with pytest.raises(DataError, match="propensity"):
        _record(1, propensity=0.0)
    with pytest.raises(DataError, match="status"):
        _record(1, status="maybe")


def test_logged_answers_with_feedback_become_training_rows(store_url: str) -> None:
    store = OutcomeStore(store_url)
    assert training_data_from_decisions(store, ["small", "big"], [64, None]) is None
    store.record_decisions([_record(1), _record(2), _record(3, finish_reason="length"), _record(4, model="gone")])
    store.record_feedback("d0001", 1.0)
    store.record_feedback("d0001", 0.5)
    data = training_data_from_decisions(store, ["small", "big"], [64, None])
    assert data is not None
    # d0001: feedback (mean 0.75); d0002: no signal, left out; d0003: cut, quality 0; d0004: not in the pool
    assert data.query_ids == ("d0001", "d0003")
    assert data.quality[0, 0, 0] == 0.75 and data.quality[1, 0, 0] == 0.0  # odd ids: small @ 64
    assert np.isnan(data.quality[:, 1]).all() and np.isnan(data.quality[:, 0, 1]).all()
    assert data.tokens[0, 0, 0] == 30
    np.testing.assert_array_equal(data.embeddings[0], _record(1).embedding)
    flat = training_data_from_decisions(store, ["small", "big"], [64, None], token_axes=2)
    assert flat is not None and flat.tokens.shape == (2, 2)
    store.close()


def test_ungraded_decisions_are_the_ok_ones_with_kept_text_and_no_feedback_from_that_source(store_url: str) -> None:
    store = OutcomeStore(store_url)
    kept = [_record(i, prompt=f"prompt {i}", answer=f"answer {i}") for i in range(4)]
    store.record_decisions([*kept, _record(10), _record(11, prompt="failed", status="error")])
    assert store.count_decisions(status="ok", text_kept=True) == 4
    assert store.count_decisions(status="ok", text_kept=False) == 1
    assert store.count_decisions(text_kept=True) == 5
    store.record_feedback("d0001", 1.0, source="grader:exact")
    store.record_feedback("d0002", 0.0, source="api")  # a user's score does not count as this grader's
    assert [d.id for d in store.ungraded_decisions("grader:exact")] == ["d0000", "d0002", "d0003"]
    assert [d.id for d in store.ungraded_decisions("grader:other")] == ["d0000", "d0001", "d0002", "d0003"]
    assert store.ungraded_decisions("grader:exact")[0].answer == "answer 0"
    store.close()
