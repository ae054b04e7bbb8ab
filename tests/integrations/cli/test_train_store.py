"""``r2router train --store``: collected calls and logged feedback from the outcome store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from r2router_core import ModelSpec, R2Router
from r2router_core.execute.records import decision_record
from r2router_core.store import CallRecord, GradeRecord, OutcomeStore, PromptRecord
from r2router_integrations.cli import main


@pytest.fixture
def data_dir(tmp_path: Path, text_router: R2Router) -> Path:
    return text_router.save(tmp_path / "data")


def _log_feedback(router: R2Router, url: str, n: int) -> None:
    texts = [f"logged prompt {i}" for i in range(n)]
    embeddings = router.embed(texts)
    with OutcomeStore(url) as store:
        records = []
        for i, e in enumerate(embeddings):
            d = router.route(e)
            records.append(
                decision_record(d, d.chosen, decision_id=f"id{i}", source="python", embedding=e, output_tokens=7)
            )
        store.record_decisions(records)
        for i in range(n):
            store.record_feedback(f"id{i}", 0.0)


def test_logged_feedback_is_appended_to_data(
    tmp_path: Path, data_dir: Path, text_router: R2Router, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    _log_feedback(text_router, url, 5)
    assert main(["train", str(data_dir), "--store", url, "--out", str(tmp_path / "o")]) == 0
    assert "trained on 65 queries (5 from the decision log)" in capsys.readouterr().out
    loaded = R2Router.from_pretrained(tmp_path / "o")
    assert loaded.training_data.n_queries == 65
    np.testing.assert_array_equal(
        loaded.training_data.embeddings[60:], text_router.embed([f"logged prompt {i}" for i in range(5)])
    )
    assert np.nanmax(loaded.training_data.quality[60:]) == 0.0


def test_a_store_alone_trains_on_its_collected_calls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with OutcomeStore(url) as store:
        store.set_models([ModelSpec("small", 1.0, 0.5), ModelSpec("big", 10.0, 2.0)])
        store.add_prompts("p", [PromptRecord(f"q{i}", f"question {i}") for i in range(6)])
        for i in range(6):
            for model, score in (("small", 0.2), ("big", 0.9)):
                call_id = store.record_call(CallRecord("p", f"q{i}", model, 64, "ok", answer="a", output_tokens=9))
                store.record_grade(GradeRecord(call_id, "judge", score))
    argv = [
        "train",
        "--store",
        url,
        "--embedder",
        "r2router-hash-embedder-16",
        "--k",
        "3",
        "--lambda",  # a handful of rows: too few to calibrate lambda by cross-validation
        "0.5",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 0
    assert "trained on 6 queries (0 from the decision log) x 2 models x 1 budgets" in capsys.readouterr().out
    loaded = R2Router.from_pretrained(tmp_path / "o", embedder="auto")
    assert loaded.route_text("question 3").model == "big"


def test_train_needs_data_or_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path / "o")]) != 0
    assert "--store" in capsys.readouterr().err
