"""The outcome store: idempotent cells, grades apart from calls, concurrent writers, export to training data."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from r2router_core import ModelSpec, R2Router
from r2router_core.errors import ConfigError, DataError
from r2router_core.store import CallRecord, GradeRecord, OutcomeStore, PromptRecord, training_data_from_store
from r2router_core.store.training_export import config_from_store
from r2router_core.testing import HashEmbedder

PROMPTS = [PromptRecord("a", "math one", "1"), PromptRecord("b", "poem two", None, "poem")]


def _store(url: str | Path) -> OutcomeStore:
    store = OutcomeStore(url)
    store.set_models([ModelSpec("small", 1.0, 0.5), ModelSpec("big", 10.0, 2.0)])
    store.add_prompts("set1", PROMPTS)
    return store


def _ok(prompt_id: str, model: str, budget: int | None, tokens: int = 10, answer: str = "x") -> CallRecord:
    return CallRecord("set1", prompt_id, model, budget, "ok", answer=answer, output_tokens=tokens, cost_usd=0.001)


def test_sqlite_file_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    _store(tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        OutcomeStore(f"sqlite:///{tmp_path / 's.db'}")


def test_an_ok_cell_is_never_overwritten_and_an_error_is_replaced(store_url: str) -> None:
    store = _store(store_url)
    err = CallRecord("set1", "a", "small", None, "error", error="HTTP 500", attempts=3)
    first = store.record_call(err)
    assert store.done_cells("set1") == set()
    second = store.record_call(_ok("a", "small", None, answer="good"))
    assert second == first
    third = store.record_call(_ok("a", "small", None, answer="other"))
    assert third == first
    (stored,) = store.calls("set1")
    assert (stored.call.status, stored.call.answer, stored.call.budget) == ("ok", "good", None)
    assert store.done_cells("set1") == {("a", "small", None)}
    # a capped cell of the same prompt and model is another cell
    store.record_call(_ok("a", "small", 64))
    assert store.done_cells("set1") == {("a", "small", None), ("a", "small", 64)}


def test_prompts_are_idempotent_and_a_changed_prompt_is_refused(store_url: str) -> None:
    store = _store(store_url)
    store.add_prompts("set1", PROMPTS)
    assert store.prompts("set1") == PROMPTS
    with pytest.raises(DataError, match=r"'a'.*another --prompt-set"):
        store.add_prompts("set1", [PromptRecord("a", "changed text", "1")])


def test_grades_live_apart_and_null_scores_stay_ungraded(store_url: str) -> None:
    store = _store(store_url)
    ids = [store.record_call(_ok(p, m, 64)) for p in ("a", "b") for m in ("small", "big")]
    assert len(store.ungraded_calls("judge")) == 4
    store.record_grade(GradeRecord(ids[0], "judge", 1.0, cost_usd=0.002, grader_calls=1))
    store.record_grade(GradeRecord(ids[1], "judge", None, reason="unparseable judge answer: 'maybe'"))
    assert {s.id for s in store.ungraded_calls("judge")} == set(ids[2:])
    assert store.grades("judge")[ids[1]].score is None
    (arm_small, arm_big) = store.summary("set1", "judge")
    assert (arm_small.model, arm_small.calls, arm_small.mean_quality) == ("small", 2, 1.0)
    assert arm_big.mean_quality is None  # the only graded big call has no score: not a 0
    assert store.spend("set1") == pytest.approx(4 * 0.001 + 0.002)


def _writer(url: str, model: str, n: int) -> None:
    store = OutcomeStore(url)
    for i in range(n):
        store.record_call(CallRecord("set1", "a" if i % 2 else "b", model, i + 1, "ok", answer=str(i)))
    store.close()


def test_concurrent_writer_processes_lose_nothing(store_url: str) -> None:
    store = _store(store_url)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(store.url, m, 40)) for m in ("small", "big", "small")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    # two writers wrote the same small cells: one row each; big wrote its own
    assert len(store.calls("set1")) == 80


def test_export_masks_failed_and_ungraded_cells(store_url: str) -> None:
    store = _store(store_url)
    q = {("a", "small", 64): 0.0, ("a", "big", 64): 1.0, ("b", "small", 64): 1.0, ("a", "small", None): 1.0}
    for (p, m, b), score in q.items():
        store.record_grade(GradeRecord(store.record_call(_ok(p, m, b, tokens=7)), "exact", score))
    store.record_call(CallRecord("set1", "b", "big", 64, "error", error="HTTP 500"))
    ungraded = store.record_call(_ok("b", "big", None, tokens=9))
    store.record_grade(GradeRecord(ungraded, "exact", None, reason="no reference"))
    embedder = HashEmbedder(16)
    data = training_data_from_store(store, embedder)
    assert data.models == ("small", "big") and data.budgets == (64, None)
    assert data.query_ids == ("a", "b")
    expected = np.full((2, 2, 2), np.nan)
    for (p, m, b), score in q.items():
        expected["ab".index(p), data.models.index(m), data.budgets.index(b)] = score
    np.testing.assert_array_equal(data.quality, expected)
    assert data.tokens[1, 1, 1] == 9 and np.isnan(data.tokens[1, 1, 0])
    np.testing.assert_allclose(data.embeddings, embedder.embed(["math one", "poem two"]))
    config = config_from_store(store, data, embedder)
    assert [m.output_price for m in config.models] == [1.0, 10.0] and config.embedder == embedder.id
    R2Router(config.with_options(k=1), data, embedder=embedder)  # a valid router


def test_export_needs_a_grader_choice_when_several_graded(store_url: str) -> None:
    store = _store(store_url)
    call = store.record_call(_ok("a", "small", 64))
    with pytest.raises(DataError, match="no grades"):
        training_data_from_store(store, HashEmbedder(8))
    store.record_grade(GradeRecord(call, "exact", 1.0))
    store.record_grade(GradeRecord(call, "contains", 1.0))
    with pytest.raises(DataError, match="several graders"):
        training_data_from_store(store, HashEmbedder(8))
    assert training_data_from_store(store, HashEmbedder(8), grader="exact").quality[0, 0, 0] == 1.0
