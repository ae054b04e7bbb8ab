"""Public outcome layouts: cost without tokens, no budget column, equal prices, RouterBench's wide columns."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from r2router_core import ModelSpec
from r2router_core.errors import DataError
from r2router_core.evaluation.datasets import COST_TOLERANCE, load_long_format, load_routerbench


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


POOL = [ModelSpec("a", output_price=2.0, input_price=1.0), ModelSpec("b", output_price=10.0)]


def test_cost_without_tokens_and_no_budget_column(tmp_path: Path) -> None:
    rows = [
        {"query": "q1", "model": "a", "quality": 1, "cost": 0.0004, "input_tokens": 100},
        {"query": "q1", "model": "b", "quality": 0, "cost": 0.001},
        {"query": "q2", "model": "a", "quality": 0.5, "cost": 0.0001, "input_tokens": 100},
        {"query": "q2", "model": "b", "quality": 1, "cost": 0.002},
    ]
    ds = load_long_format(write(tmp_path / "c.csv", rows), models=POOL)
    assert ds.budgets == (None,)  # no budget column: one uncapped budget
    np.testing.assert_allclose(ds.cost[:, :, 0], [[0.0004, 0.001], [0.0001, 0.002]])  # the cost is the cost
    # tokens from prices: (0.0004 - 100 x 1 / 1e6) / 2 x 1e6 = 150; 0.001 / 10 x 1e6 = 100
    np.testing.assert_allclose(ds.tokens[:, :, 0], [[150.0, 100.0], [0.0, 200.0]])
    assert ds.meta["tokens_from_cost"] is True and "cost_as_tokens" not in ds.meta


def test_cost_without_tokens_or_prices_is_used_directly(tmp_path: Path) -> None:
    rows = [{"query": "q", "model": m, "quality": 1, "cost": c} for m, c in (("a", 0.001), ("b", 0.003))]
    ds = load_long_format(write(tmp_path / "c.csv", rows))
    assert [m.output_price for m in ds.models] == [1.0, 1.0] and ds.meta["cost_as_tokens"] is True
    np.testing.assert_allclose(ds.tokens[0, :, 0], [1000.0, 3000.0])
    np.testing.assert_allclose(ds.cost[0, :, 0], [0.001, 0.003])


def test_a_cost_that_disagrees_with_tokens_times_price_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [
        {"query": "q", "model": "a", "budget": "", "quality": 1, "output_tokens": 100, "cost": 0.0002},  # exact
        {"query": "q", "model": "b", "budget": "", "quality": 1, "output_tokens": 100, "cost": 0.0015},  # 1e-3 due
    ]
    with caplog.at_level(logging.WARNING):
        ds = load_long_format(write(tmp_path / "m.csv", rows), models=POOL)
    assert ds.meta["cost_mismatch"] == 1
    assert f"more than {100 * COST_TOLERANCE:.0f}%" in caplog.text and "m.csv:3" in caplog.text
    assert ds.cost[0, 1, 0] == pytest.approx(0.0015)  # the recorded cost is kept


def test_equal_prices_and_graded_scores_read(tmp_path: Path) -> None:
    rows = [
        {"query": "q", "model": m, "quality": q, "output_tokens": 10, "output_price": 3.0}
        for m, q in (("a", 0.25), ("b", 0.75))
    ]
    ds = load_long_format(write(tmp_path / "e.csv", rows))
    assert [m.output_price for m in ds.models] == [3.0, 3.0]
    np.testing.assert_allclose(ds.quality[0, :, 0], [0.25, 0.75])


def test_routerbench_wide_columns(tmp_path: Path) -> None:
    rows = [
        {"sample_id": "mmlu.1", "prompt": "2+2?", "eval_name": "mmlu", "a": 1.0, "a|model_response": "4",
         "a|total_cost": 0.0002, "b": 0.0, "b|model_response": "5", "b|total_cost": 0.003},
        {"sample_id": "gsm.7", "prompt": "3+3?", "eval_name": "gsm8k", "a": 0.0, "a|model_response": "7",
         "a|total_cost": 0.0001, "b": 1.0, "b|model_response": "6", "b|total_cost": 0.002},
    ]  # fmt: skip
    path = write(tmp_path / "routerbench.csv", rows)
    ds = load_routerbench(path, models=POOL)
    assert ds.query_ids == ("mmlu.1", "gsm.7") and ds.model_names == ("a", "b") and ds.budgets == (None,)
    np.testing.assert_allclose(ds.quality[:, :, 0], [[1, 0], [0, 1]])
    np.testing.assert_allclose(ds.cost[:, :, 0], [[0.0002, 0.003], [0.0001, 0.002]])
    np.testing.assert_allclose(ds.tokens[:, :, 0], [[100, 300], [50, 200]])
    assert load_long_format(path, models=POOL).quality.shape == (2, 2, 1)  # detected by its |total_cost columns
    with pytest.raises(DataError, match="pickle runs code"):
        load_routerbench(tmp_path / "routerbench_0shot.pkl")


def test_neither_tokens_nor_cost_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "n.csv", [{"query": "q", "model": "a", "quality": 1}])
    with pytest.raises(DataError, match=r"n\.csv:2: missing columns \['output_tokens'\].*or a cost column"):
        load_long_format(path, models=POOL)
