"""load_long_format (CSV/JSONL) and R2-Bench judge directories, with round-trip oracles."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from r2router_core.engine.config import ModelSpec
from r2router_core.errors import DataError
from r2router_core.evaluation import RoutingDataset
from r2router_core.evaluation.datasets import (
    load_long_format,
    load_r2bench_judge_dir,
    make_synthetic_pool,
    parse_budget,
)

SMALL = ModelSpec("small", output_price=1.0, input_price=0.5)
BIG = ModelSpec("big", output_price=10.0)
FIELDS = ["query_id", "query", "model", "budget", "quality", "output_tokens"]


def _write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _long_rows(ds: RoutingDataset) -> list[dict[str, Any]]:
    """The dataset as long-format rows (repr keeps floats exact)."""
    rows = []
    for i, (qid, text) in enumerate(zip(ds.query_ids, ds.prompts, strict=True)):
        for m, spec in enumerate(ds.models):
            for b, budget in enumerate(ds.budgets):
                if np.isnan(ds.quality[i, m, b]):
                    continue
                rows.append(
                    {
                        "query_id": qid,
                        "query": text,
                        "model": spec.name,
                        "budget": "" if budget is None else budget,
                        "quality": repr(float(ds.quality[i, m, b])),
                        "output_tokens": repr(float(ds.tokens[i, m, b])),
                    }
                )
    return rows


def test_round_trip_of_a_dataset_through_csv(tmp_path: Path) -> None:
    ds, _ = make_synthetic_pool(30, seed=4)
    rows = _long_rows(ds)
    rng = np.random.default_rng(0)
    rng.shuffle(rows)  # row order does not matter
    loaded = load_long_format(_write_csv(tmp_path / "outcomes.csv", rows), models=ds.models)
    assert loaded.name == "outcomes" and loaded.budgets == ds.budgets and loaded.models == ds.models
    order = [loaded.query_ids.index(q) for q in ds.query_ids]
    np.testing.assert_array_equal(loaded.quality[order], ds.quality)
    np.testing.assert_array_equal(loaded.tokens[order], ds.tokens)
    np.testing.assert_allclose(loaded.cost[order], ds.cost)
    assert [loaded.prompts[i] for i in order] == list(ds.prompts)


def test_jsonl_with_missing_arms_cost_and_input_tokens(tmp_path: Path) -> None:
    rows = [
        {"query": "q1", "model": "small", "budget": None, "quality": 0.5, "output_tokens": 80, "cost": 0.001},
        {"query": "q1", "model": "big", "budget": 200, "quality": 1, "output_tokens": 150, "cost": 0.002},
        {"query": "q2", "model": "small", "budget": "400", "quality": 0.0, "output_tokens": 0, "cost": 0.0},
    ]
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ds = load_long_format(path, models={"small": SMALL, "big": BIG}, name="mine")
    assert ds.name == "mine" and ds.query_ids == ("q1", "q2") and ds.budgets == (200, 400, None)
    assert ds.quality[0, 0, 2] == 0.5 and ds.quality[0, 1, 0] == 1.0 and ds.cost[0, 1, 0] == 0.002
    assert np.isnan(ds.quality[1, 1]).all() and ds.meta["missing_cells"] == 12 - 3


def test_prices_from_columns_and_computed_cost(tmp_path: Path) -> None:
    fields = [*FIELDS, "input_tokens", "output_price", "input_price"]
    rows = [
        {"query_id": "a", "query": "hi", "model": "m", "budget": "default", "quality": 1, "output_tokens": 100,
         "input_tokens": 10, "output_price": 2.0, "input_price": 1.0},
        {"query_id": "a", "query": "hi", "model": "m", "budget": 50, "quality": 0.5, "output_tokens": 50,
         "input_tokens": 10, "output_price": 2.0, "input_price": 1.0},
    ]  # fmt: skip
    ds = load_long_format(_write_csv(tmp_path / "p.csv", rows, fields))
    assert ds.models == (ModelSpec("m", output_price=2.0, input_price=1.0),)
    np.testing.assert_allclose(ds.cost[0, 0], [(50 * 2 + 10) / 1e6, (100 * 2 + 10) / 1e6])


def _base(**changes: Any) -> dict[str, Any]:
    row = {"query_id": "q", "query": "text", "model": "small", "budget": 100, "quality": 0.5, "output_tokens": 10}
    return {**row, **changes}


@pytest.mark.parametrize(
    ("bad", "kwargs", "match"),
    [
        (_base(quality=1.2), {}, r"p\.csv:3: quality must lie in \[0, 1\], got '1\.2'"),
        (_base(budget="lots"), {}, r"p\.csv:3: budget must be a number, got 'lots'"),
        (_base(budget=-5), {}, r"p\.csv:3: budget must be a positive int"),
        (
            _base(budget=300),
            {"budgets": [100, None]},
            r"p\.csv:3: unknown budget 300; allowed budgets are \[100, None\]",
        ),
        (_base(model="huge"), {}, r"p\.csv:3: unknown model 'huge'"),
        (_base(output_tokens="many"), {}, r"p\.csv:3: output_tokens must be a number"),
        (_base(), {}, r"p\.csv:3: duplicate row for \('q', small, 100\); first at .*p\.csv:2"),
        (_base(query="other text"), {}, r"p\.csv:3: query_id 'q' has two different query texts"),
    ],
)
def test_bad_rows_are_named(tmp_path: Path, bad: dict[str, Any], kwargs: dict[str, Any], match: str) -> None:
    path = _write_csv(tmp_path / "p.csv", [_base(), bad], FIELDS)
    with pytest.raises(DataError, match=match):
        load_long_format(path, models=[SMALL, BIG], **kwargs)


def test_missing_columns_prices_and_files(tmp_path: Path) -> None:
    no_tokens = _write_csv(tmp_path / "a.csv", [{"query": "x", "model": "m", "budget": 1, "quality": 1}])
    with pytest.raises(DataError, match=r"a\.csv:2: missing columns \['output_tokens'\]"):
        load_long_format(no_tokens, models=[SMALL])
    unpriced = _write_csv(tmp_path / "b.csv", [_base()], FIELDS)
    with pytest.raises(DataError, match=r"b\.csv:2: no output_price for 'small'"):
        load_long_format(unpriced)
    with pytest.raises(DataError, match=r"\.csv or \.jsonl"):
        load_long_format(_write_csv(tmp_path / "c.tsv", [_base()], FIELDS), models=[SMALL])
    with pytest.raises(DataError, match="no long-format file"):
        load_long_format(tmp_path / "nothing.csv", models=[SMALL])


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("Default", None), (" none ", None), ("uncapped", None), ("400", 400), (400.0, 400)],
)
def test_parse_budget(value: object, expected: int | None) -> None:
    assert parse_budget(value) == expected


@pytest.mark.parametrize("value", ["4.5", 0, True, "unlimited", float("nan")])
def test_parse_budget_refuses(value: object) -> None:
    with pytest.raises(DataError, match="budget"):
        parse_budget(value)


def _judge(path: Path, rows: list[tuple[str, int, float]], model: str | None = None) -> None:
    fields = ["original_prompt", "actual_token_count", "correctness_score", *(["model"] if model else [])]
    extra = {"model": model} if model else {}
    records = [{"original_prompt": p, "actual_token_count": t, "correctness_score": s, **extra} for p, t, s in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(path, records, fields)


def test_r2bench_single_model_directory(tmp_path: Path) -> None:
    _judge(tmp_path / "bench" / "100_judge.csv", [("What is 2+2?", 12, 1.0), ("Prove it.", 100, 0.0)])
    _judge(tmp_path / "bench" / "default_judge.csv", [("Prove it.", 640, 1.0), ("What is 2+2?", 30, 1.0)])
    ds = load_r2bench_judge_dir(tmp_path / "bench", models=SMALL)
    assert ds.name == "bench" and ds.model_names == ("small",) and ds.budgets == (100, None)
    assert ds.prompts == ("What is 2+2?", "Prove it.")
    np.testing.assert_array_equal(ds.quality[:, 0], [[1.0, 1.0], [0.0, 1.0]])
    np.testing.assert_array_equal(ds.tokens[:, 0], [[12, 30], [100, 640]])
    same = load_long_format(tmp_path / "bench", models=SMALL)  # a directory is read the same way
    np.testing.assert_array_equal(same.quality, ds.quality)


def test_r2bench_per_model_subdirectories_and_model_column(tmp_path: Path) -> None:
    _judge(tmp_path / "bench" / "small" / "200_judge.csv", [("q", 150, 0.5)])
    _judge(tmp_path / "bench" / "big" / "200_judge.csv", [("q", 180, 1.0)])
    ds = load_r2bench_judge_dir(tmp_path / "bench", models=[SMALL, BIG])
    assert ds.model_names == ("small", "big") and ds.quality[0, :, 0].tolist() == [0.5, 1.0]
    _judge(tmp_path / "flat" / "50_judge.csv", [("q", 40, 0.25)], model="big")
    flat = load_r2bench_judge_dir(tmp_path / "flat", models=[SMALL, BIG])
    assert flat.quality[0, 1, 0] == 0.25 and np.isnan(flat.quality[0, 0, 0])


def test_r2bench_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no <budget>_judge\.csv files"):
        load_r2bench_judge_dir(tmp_path)
    _judge(tmp_path / "one" / "100_judge.csv", [("q", 10, 1.0)])
    with pytest.raises(DataError, match="no model column"):
        load_r2bench_judge_dir(tmp_path / "one", models=[SMALL, BIG])
    _judge(tmp_path / "two" / "100_judge.csv", [("q", 10, 7.0)])
    with pytest.raises(DataError, match=r"100_judge\.csv:2: quality must lie in \[0, 1\], got '7\.0'"):
        load_r2bench_judge_dir(tmp_path / "two", models=SMALL)
    _judge(tmp_path / "three" / "lots_judge.csv", [("q", 10, 1.0)])
    with pytest.raises(DataError, match="budget must be a number, got 'lots'"):
        load_r2bench_judge_dir(tmp_path / "three", models=SMALL)
