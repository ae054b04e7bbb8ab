"""The experiment runner: one table, curves, files; operating points chosen without the test fold."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from r2router_core.evaluation.baselines import RouterMethod, flat_outcomes
from r2router_core.evaluation.datasets import make_synthetic_pool
from r2router_core.evaluation.metrics import arena_score
from r2router_core.evaluation.runner import EvalResult, evaluate, held_out_choices, write_results


@pytest.fixture(scope="module")
def result() -> tuple[EvalResult, object, np.ndarray]:
    data, emb = make_synthetic_pool(500, seed=5)
    return evaluate(data, emb, n_folds=4, inner_folds=3, k=20, seed=0), data, emb


def test_table_has_every_method_and_labels_synthetic_data(result: tuple) -> None:
    res, data, _ = result
    names = [m.name for m in res.methods]
    assert names[:5] == ["R2-Router", "point router (uncapped)", "oracle", "random", "best single (chosen on train)"]
    assert len(names) == 5 + len(data.models) * len(data.budgets)
    table = res.table()
    assert "SYNTHETIC" in table.splitlines()[0]
    for name in names:
        assert name in table
    for column in ("accuracy", "USD/1K", "arena", "AUDC", "QNC"):
        assert column in table.splitlines()[1]


def test_the_oracle_bounds_every_method(result: tuple) -> None:
    res, _, _ = result
    oracle = res.method("oracle")
    for m in res.methods:
        assert m.peak_quality <= oracle.peak_quality + 1e-12  # max-quality oracle on quality
        assert m.audc <= oracle.audc + 1e-12 or (m.kind in ("arm", "random") and math.isnan(m.audc))
        if math.isfinite(m.qnc):
            assert oracle.qnc <= m.qnc + 1e-12


def test_rows_are_consistent_with_their_definitions(result: tuple) -> None:
    res, data, _ = result
    quality, cost = flat_outcomes(data)
    for m in res.methods:
        assert m.arena_score == pytest.approx(arena_score(m.accuracy, m.cost_per_1k))
        if m.kind == "arm":  # a single arm's row is its mean true outcome
            arm = next(i for i in range(quality.shape[1]) if m.curve.quality[0] == pytest.approx(quality[:, i].mean()))
            assert m.cost_per_1k == pytest.approx(cost[:, arm].mean() * 1000)
        if m.kind == "router":
            assert len(m.fold_lambdas) == 4 and all(0 <= lam <= 1 for lam in m.fold_lambdas)
            assert np.mean(m.fold_accuracy) == pytest.approx(m.accuracy, abs=0.02)
    assert res.matched is not None and res.matched["methods"] == ["R2-Router", "point router (uncapped)"]
    r2, point = res.method("R2-Router"), res.method("point router (uncapped)")
    assert res.matched["quality"] == pytest.approx(min(r2.peak_quality, point.peak_quality))
    assert "matched quality" in res.table()
    best = res.method(f"always {res.reference_arm}")
    assert best.qnc == pytest.approx(1.0) and best.accuracy == pytest.approx(res.reference_quality)


def test_held_out_choices_reproduce_the_router_row(result: tuple) -> None:
    res, data, emb = result
    row = res.method("R2-Router")
    arms = held_out_choices(data, emb, RouterMethod(k=20), row.fold_lambdas, n_folds=4, seed=0)
    quality, cost = flat_outcomes(data)
    assert quality[np.arange(data.n_queries), arms].mean() == pytest.approx(row.accuracy)
    assert cost[np.arange(data.n_queries), arms].mean() * 1000 == pytest.approx(row.cost_per_1k)


def test_write_results(result: tuple, tmp_path: Path) -> None:
    res, _, _ = result
    paths = write_results(res, tmp_path)
    assert {p.name for p in paths.values()} == {
        "eval_synthetic-pool.json",
        "eval_synthetic-pool.csv",
        "eval_synthetic-pool.png",
    }
    saved = json.loads(paths["json"].read_text())
    assert saved["synthetic"] is True and len(saved["methods"]) == len(res.methods)
    assert saved["methods"][0]["curve"]["quality"] == pytest.approx(res.methods[0].curve.quality.tolist())
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["name"] for r in rows] == [m.name for m in res.methods]
    assert float(rows[0]["accuracy"]) == pytest.approx(res.methods[0].accuracy)
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
