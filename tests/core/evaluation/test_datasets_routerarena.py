"""load_routerarena on the real shared files and on small broken copies of them."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from r2router_core.errors import DataError
from r2router_core.evaluation import RoutingDataset
from r2router_core.evaluation.datasets import load_routerarena

HAIKU, GEMINI = "claude-3-haiku-20240307", "gemini-2.0-flash-001"


@pytest.fixture(scope="module")
def arena(shared_data_dir: Path) -> RoutingDataset:
    return load_routerarena(shared_data_dir)


def _lines(shared_data_dir: Path, model: str, n: int | None = None) -> list[str]:
    lines = (shared_data_dir / "routerarena_sub10" / f"{model}.jsonl").read_text(encoding="utf-8").splitlines()
    return lines[:n]


def _copy(shared_data_dir: Path, tmp_path: Path, haiku: list[str], gemini: list[str]) -> Path:
    folder = tmp_path / "routerarena_sub10"
    folder.mkdir()
    (folder / f"{HAIKU}.jsonl").write_text("\n".join(haiku) + "\n", encoding="utf-8")
    (folder / f"{GEMINI}.jsonl").write_text("\n".join(gemini) + "\n", encoding="utf-8")
    cost = (shared_data_dir / "routerarena_sub10" / "cost.json").read_text(encoding="utf-8")
    (folder / "cost.json").write_text(cost, encoding="utf-8")
    return folder


def test_joined_queries_models_and_budget(arena: RoutingDataset) -> None:
    assert arena.name == "routerarena_sub10" and not arena.synthetic
    assert arena.n_queries == 809 and arena.meta["dropped"] == {HAIKU: 0, GEMINI: 0}
    assert arena.model_names == (HAIKU, GEMINI)
    assert arena.budgets == (None,)
    assert arena.quality.shape == arena.tokens.shape == arena.cost.shape == (809, 2, 1)
    assert arena.input_tokens is not None and arena.input_tokens.shape == (809, 2)
    assert arena.query_ids[0] == "AIME_112" and arena.prompts[0].startswith("Please solve")
    assert np.all((arena.quality >= -0.05) & (arena.quality <= 1))  # one raw METEOR is -0.033, see below


def test_facts_of_the_data_readme(arena: RoutingDataset) -> None:
    accuracy = arena.quality[:, :, 0].mean(axis=0)
    cost_per_1k = arena.cost[:, :, 0].mean(axis=0) * 1000
    assert np.round(accuracy, 3).tolist() == [0.523, 0.690]
    assert np.round(cost_per_1k, 3).tolist() == [0.176, 0.047]
    assert round(float(arena.quality[:, :, 0].max(axis=1).mean()), 3) == 0.741  # per-query oracle of the two
    assert np.median(arena.tokens[:, :, 0], axis=0).tolist() == [73, 59]
    assert arena.tokens[:, :, 0].max(axis=0).tolist() == [569, 715]


def test_cost_is_the_charged_usd_and_matches_the_price_table(arena: RoutingDataset, shared_data_dir: Path) -> None:
    table = json.loads((shared_data_dir / "routerarena_sub10" / "cost.json").read_text(encoding="utf-8"))
    assert arena.input_tokens is not None
    for m, spec in enumerate(arena.models):
        prices = table[spec.name]
        assert spec.output_price == prices["output_token_price_per_million"]
        assert spec.input_price == prices["input_token_price_per_million"]
        recomputed = (arena.input_tokens[:, m] * spec.input_price + arena.tokens[:, m, 0] * spec.output_price) / 1e6
        np.testing.assert_allclose(arena.cost[:, m, 0], recomputed, rtol=1e-9, atol=1e-15)


def test_negative_meteor_score_is_kept_as_routerarena_scores_it(arena: RoutingDataset, shared_data_dir: Path) -> None:
    # RouterArena's grader stores the raw metric value as the entry's accuracy and compute_scores.py averages
    # those values unclipped, so the dataset keeps the raw score and only reports it
    outside = arena.meta["scores_outside_0_1"]
    assert [(c["query_id"], c["model"]) for c in outside] == [("NarrativeQA_4102", HAIKU)]
    raw = next(
        json.loads(line)["evaluation_result"]["score"]
        for line in _lines(shared_data_dir, HAIKU)
        if json.loads(line)["global_index"] == "NarrativeQA_4102"
    )
    assert raw < 0
    row = arena.query_ids.index("NarrativeQA_4102")
    assert arena.quality[row, 0, 0] == raw


def test_folder_itself_or_its_parent(shared_data_dir: Path, arena: RoutingDataset) -> None:
    direct = load_routerarena(shared_data_dir / "routerarena_sub10")
    assert direct.query_ids == arena.query_ids
    np.testing.assert_array_equal(direct.quality, arena.quality)


def test_inner_join_drops_and_counts_unshared_queries(
    shared_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    haiku, gemini = _lines(shared_data_dir, HAIKU, 30), _lines(shared_data_dir, GEMINI, 30)
    folder = _copy(shared_data_dir, tmp_path, haiku[:25], gemini[3:])
    with caplog.at_level(logging.INFO):
        ds = load_routerarena(folder)
    expected = [json.loads(line)["global_index"] for line in haiku[3:25]]
    assert list(ds.query_ids) == expected
    assert ds.meta["dropped"] == {HAIKU: 3, GEMINI: 5}
    assert "dropped" in caplog.text


def _break(line: str, path: str, value: object) -> str:
    record = json.loads(line)
    *parents, last = path.split(".")
    node = record
    for part in parents:
        node = node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return json.dumps(record)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda lines: [*lines[:4], "{not json", *lines[4:]], r"claude-3-haiku-20240307.jsonl:5: not valid JSON"),
        (lambda lines: [*lines, lines[0]], r":11: global_index 'AIME_112' appears twice"),
        (
            lambda lines: [_break(lines[0], "token_usage.output_tokens", KeyError), *lines[1:]],
            "token_usage.output_tokens",
        ),
        (lambda lines: [_break(lines[0], "evaluation_result.score", "high"), *lines[1:]], ":1: a score"),
    ],
)
def test_malformed_files_name_file_line_and_field(
    shared_data_dir: Path, tmp_path: Path, edit: Callable[[list[str]], list[str]], match: str
) -> None:
    folder = _copy(
        shared_data_dir, tmp_path, edit(_lines(shared_data_dir, HAIKU, 10)), _lines(shared_data_dir, GEMINI, 10)
    )
    with pytest.raises(DataError, match=match):
        load_routerarena(folder)


def test_model_without_price_is_refused(shared_data_dir: Path, tmp_path: Path) -> None:
    folder = _copy(shared_data_dir, tmp_path, _lines(shared_data_dir, HAIKU, 5), _lines(shared_data_dir, GEMINI, 5))
    (folder / "mystery-model.jsonl").write_text("\n".join(_lines(shared_data_dir, GEMINI, 5)), encoding="utf-8")
    with pytest.raises(DataError, match=r"'mystery-model'.*no price in cost\.json"):
        load_routerarena(folder)


def test_folder_without_the_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no RouterArena cached results"):
        load_routerarena(tmp_path)
