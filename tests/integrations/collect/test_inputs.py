"""Money first (--dry-run, --max-usd) and every bad input: a clear error before anything is called."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r2router_core.errors import ConfigError, DataError
from r2router_core.store import OutcomeStore
from r2router_integrations.collect import EXIT_MAX_USD
from r2router_integrations.collect.plan import build_plan, estimate_input_tokens, parse_budgets
from r2router_integrations.collect.prompts import read_prompts
from tests.integrations.collect.support import PRICES, run_cli, stub_pool, write_prompts, write_upstreams


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("inputs")
    with stub_pool(tmp) as stub:
        yield tmp, stub


def _args(tmp: Path, url: str, store: Path, n: int = 3) -> list[str]:
    upstreams = write_upstreams(tmp / "upstreams.yaml", url)
    prompts = write_prompts(tmp / "prompts.jsonl", n, n)
    return ["collect", "run", str(prompts), "--upstreams", str(upstreams), "--budgets", "64,256,uncapped",
            "--store", str(store), "--grader", "exact", "--no-progress"]  # fmt: skip


def test_dry_run_prints_only_the_plan_and_its_worst_case(pool, tmp_path: Path) -> None:
    _tmp, stub = pool
    before = len(stub.requests())
    store = tmp_path / "runs.db"
    result = run_cli(*_args(tmp_path, stub.url, store), "--dry-run", "--uncapped-max-tokens", "1000")
    assert result.returncode == 0, result.stderr
    prompts = read_prompts(tmp_path / "prompts.jsonl")
    inputs = sum(estimate_input_tokens(p.text) for p in prompts)
    worst = sum(
        (estimate_input_tokens(p.text) * PRICES[m][0] + out * PRICES[m][1]) / 1e6
        for p in prompts for m in ("small", "big") for out in (64, 256, 1000)
    )  # fmt: skip
    assert "36 calls to make" in result.stdout
    assert f"estimated input tokens: {2 * 3 * inputs:,}" in result.stdout
    assert f"worst-case cost: ${worst:.4f}" in result.stdout and "uncapped answers at 1,000 tokens" in result.stdout
    assert len(stub.requests()) == before and not store.exists()


def test_without_yes_and_no_terminal_nothing_is_called(pool, tmp_path: Path) -> None:
    _tmp, stub = pool
    before = len(stub.requests())
    result = run_cli(*_args(tmp_path, stub.url, tmp_path / "runs.db"))
    assert result.returncode == 1 and "--yes" in result.stderr
    assert len(stub.requests()) == before


def test_max_usd_stops_before_the_ceiling_and_says_how_far_it_got(pool, tmp_path: Path) -> None:
    _tmp, stub = pool
    store = tmp_path / "runs.db"
    result = run_cli(*_args(tmp_path, stub.url, store), "--yes", "--max-usd", "0.002", "--concurrency", "1")
    assert result.returncode == EXIT_MAX_USD, result.stderr  # stopped: not every cell was called
    assert "Stopped at --max-usd" in result.stdout
    with OutcomeStore(store) as s:
        made = len(s.calls("prompts"))
        assert 0 < made < 36 and s.spend("prompts") <= 0.002
    assert f"{36 - made} calls not made" in result.stdout and f"{made} of 36 cells done" in result.stdout
    again = run_cli(*_args(tmp_path, stub.url, store), "--yes")  # no ceiling: the rest is done
    assert again.returncode == 0 and f"{36 - made} calls made" in again.stdout


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda a, t: [*a, "--models", "small,huge"], "no upstream for pool model(s) ['huge']"),
        (lambda a, t: [*a, "--grader", "fuzzy"], "unknown grader 'fuzzy'; the graders are"),
        (lambda a, t: [*a, "--budgets", "64,0"], "budget '0' is not a positive integer"),
        (lambda a, t: _replace_prompts(a, t, '{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n'),
         "prompts.jsonl:2: duplicate prompt id 'a' (first on line 1)"),
        (lambda a, t: _replace_prompts(a, t, '{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": ""}\n'),
         "prompts.jsonl:2: 'prompt' must be a non-empty string"),
        (lambda a, t: _replace_prompts(a, t, '{"id": "a", "prompt": "x"}\nnot json\n'), "prompts.jsonl:2: not a JSON"),
        (lambda a, t: _replace_prompts(a, t, '{"id": "a", "prompt": "x"}\n'),
         "grader 'exact' needs a 'reference' for every prompt; prompt 'a' has none"),
    ],
)  # fmt: skip
def test_bad_input_fails_before_any_call(pool, tmp_path: Path, edit, message: str) -> None:
    _tmp, stub = pool
    before = len(stub.requests())
    result = run_cli(*edit(_args(tmp_path, stub.url, tmp_path / "runs.db"), tmp_path), "--yes")
    assert result.returncode == 1, result.stdout
    assert message in result.stderr
    assert len(stub.requests()) == before


def _replace_prompts(args: list[str], tmp: Path, text: str) -> list[str]:
    (tmp / "prompts.jsonl").write_text(text, encoding="utf-8")
    return args


def test_an_unset_key_variable_is_named(pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tmp, stub = pool
    args = _args(tmp_path, stub.url, tmp_path / "runs.db")
    upstreams = tmp_path / "upstreams.yaml"
    upstreams.write_text(upstreams.read_text().replace("STUB_KEY_BIG", "UNSET_KEY_VAR"))
    result = run_cli(*args, "--yes")
    assert result.returncode == 1 and "'UNSET_KEY_VAR'" in result.stderr and "not set" in result.stderr


def test_csv_prompts_and_their_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text('id,prompt,reference\nq1,What is 2+2?,4\nq2,"Say, hi",hi\n', encoding="utf-8")
    assert [(p.id, p.text, p.reference) for p in read_prompts(path)] == [
        ("q1", "What is 2+2?", "4"),
        ("q2", "Say, hi", "hi"),
    ]
    path.write_text("id,text\nq1,x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"p.csv:1: the CSV header needs columns \['prompt'\]"):
        read_prompts(path)
    path.write_text("id,prompt\nq1,x,extra\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"p\.csv:2: more fields"):
        read_prompts(path)


def test_plan_skips_done_cells_and_counts_uncapped_at_the_stated_maximum() -> None:
    from r2router_core import ModelSpec
    from r2router_core.store import PromptRecord

    prompts = [PromptRecord("a", "x" * 40), PromptRecord("b", "y" * 8)]
    plan = build_plan("s", prompts, [ModelSpec("m", 2.0, 1.0)], (10, None), {("a", "m", 10)}, uncapped_max_tokens=100)
    assert [(c.prompt.id, c.budget) for c in plan.cells] == [("a", None), ("b", 10), ("b", None)]
    assert plan.done_cells == 1 and plan.total_cells == 4
    assert plan.worst_case_usd == pytest.approx(((26 + 18 + 18) * 1.0 + (100 + 10 + 100) * 2.0) / 1e6)
    assert parse_budgets("64, 256,uncapped") == (64, 256, None)
    with pytest.raises(ConfigError, match="repeat"):
        parse_budgets("64,64")
    assert json.dumps(plan.describe())  # printable
