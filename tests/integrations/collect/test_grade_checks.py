"""Graders you can trust: an all-zero grader is reported and blocks export and train, a prompts file grades each
row with its own grader, and a python: grader imports from the current directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r2router_core.errors import DataError
from r2router_core.store import OutcomeStore
from r2router_integrations.collect import chat_model_pool, collect, export_store, read_prompts
from r2router_integrations.collect.graders import rule_grader
from r2router_integrations.langchain.testing import FakePoolChatModel
from tests.integrations.collect.support import cli_env, run_cli, stub_pool, write_prompts, write_upstreams


def _sentence_pool() -> list:
    """Two models that answer every question right, in a sentence ('exact' cannot see it)."""
    models = {name: FakePoolChatModel(model_name=name, response="The answer is 42, as the sum shows.")
              for name in ("small", "big")}  # fmt: skip
    prices = {"small": {"input_price": 0.5, "output_price": 1}, "big": {"input_price": 2, "output_price": 10}}
    return chat_model_pool(models, prices)


def test_an_all_zero_grader_is_reported_and_blocks_export_and_train(tmp_path: Path) -> None:
    from r2router_core.store import PromptRecord

    prompts = [PromptRecord(f"q{i}", f"What is {40 + i % 3} plus {2 - i % 3}?", "42") for i in range(12)]
    store_path = tmp_path / "runs.db"
    with OutcomeStore(store_path) as store:
        result = collect(prompts, _sentence_pool(), (64,), store, prompt_set="p", graders=["exact", "contains"])
        exact, contains = result.checks
        assert exact.degenerate and (exact.scored, exact.top_score, exact.top_share) == (24, 0.0, 1.0)
        assert "'exact' compares the whole answer with the reference, and these answers are free text" in (
            result.describe()
        )
        assert contains.scored == 24 and contains.top_score == 1.0 and contains.degenerate  # everything right
        with pytest.raises(DataError, match=r"grader 'exact' gives 0 to 100% of 24 answers.*accept-degenerate"):
            export_store(store, tmp_path / "out", _hash(), grader="exact")
        assert not (tmp_path / "out").exists()
        export_store(store, tmp_path / "out", _hash(), grader="exact", accept_degenerate_grades=True)
        assert (tmp_path / "out" / "config.json").is_file()
    refused = run_cli("collect", "export", "--store", str(store_path), "--out", str(tmp_path / "cli"),
                      "--grader", "exact", "--embedder", "r2router-hash-embedder-64")  # fmt: skip
    assert refused.returncode == 1 and "grader 'exact' gives 0 to 100%" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "cli").exists()
    accepted = run_cli("collect", "export", "--store", str(store_path), "--out", str(tmp_path / "cli"),
                       "--grader", "exact", "--embedder", "r2router-hash-embedder-64",
                       "--accept-degenerate-grades")  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
    assert "prices used: small ($0.5/$1 per 1M in/out), big ($2/$10 per 1M in/out)" in accepted.stdout
    train = ["train", "--store", str(store_path), "--grader", "exact", "--embedder", "r2router-hash-embedder-64",
             "--out", str(tmp_path / "router"), "--lambda", "0.5", "--k", "3"]  # fmt: skip
    refused_train = run_cli(*train)
    assert refused_train.returncode == 1 and "grader 'exact' gives 0 to 100%" in refused_train.stderr
    assert run_cli(*train, "--accept-degenerate-grades").returncode == 0


def _hash():
    from r2router_core.embedders import load_embedder

    return load_embedder("r2router-hash-embedder-64")


def test_a_per_row_grader_file_grades_each_row_with_its_own_grader(tmp_path: Path) -> None:
    prompts_path = write_prompts(tmp_path / "prompts.jsonl", 3, 3)
    rows = [json.loads(line) for line in prompts_path.read_text().splitlines()]
    for row in rows:  # numeric for maths, contains for the rest
        row["grader"] = "numeric" if row["category"] == "math" else "contains"
    prompts_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with stub_pool(tmp_path) as pool:
        upstreams = write_upstreams(tmp_path / "upstreams.yaml", pool.url)
        result = run_cli(
            "collect",
            "run",
            str(prompts_path),
            "--upstreams",
            str(upstreams),
            "--budgets",
            "64,256",
            "--store",
            str(tmp_path / "runs.db"),
            "--yes",
            "--no-progress",
        )  # no --grader: per-row
        assert result.returncode == 0, result.stderr
    prompts = {p.id: p for p in read_prompts(prompts_path)}
    with OutcomeStore(tmp_path / "runs.db") as store:
        assert store.graders() == ["per-row"]
        grades = store.grades("per-row")
        calls = store.calls("prompts", status="ok")
        assert len(calls) == 24 and set(grades) == {c.id for c in calls}
        for stored in calls:
            prompt = prompts[stored.call.prompt_id]
            own = rule_grader(prompt.grader)
            assert own is not None and grades[stored.id].score == own.score(stored.call.answer or "", prompt)
        assert {prompts[c.call.prompt_id].grader for c in calls} == {"numeric", "contains"}
        math_cut = [c for c in calls if c.call.prompt_id.startswith("m") and c.call.finish_reason == "length"]
        assert math_cut and all(grades[c.id].score == 0.0 for c in math_cut)
    regrade = ["collect", "grade", "--store", str(tmp_path / "runs.db"), "--grader", "per-row"]
    with_rows = run_cli(*regrade, "--prompts", str(prompts_path))  # the rows' graders come from the file
    assert with_rows.returncode == 0 and "0 grades stored" in with_rows.stdout  # graded during the run already
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**rows[0], "grader": "fuzzy"}) + "\n" + json.dumps({**rows[1], "grader": None}) + "\n")
    refused = run_cli("collect", "run", str(bad), "--upstreams", str(upstreams), "--budgets", "64",
                      "--store", str(tmp_path / "bad.db"), "--yes", "--no-progress")  # fmt: skip
    assert refused.returncode == 1 and "unknown grader 'fuzzy'" in refused.stderr


def test_a_python_grader_imports_from_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "team_graders.py").write_text(
        "def first_word(answer, reference, prompt):\n    return answer.split()[0] == reference\n"
    )
    code = (
        "import sys; from r2router_integrations.collect.graders import rule_grader; "
        "from r2router_core.store import PromptRecord; "
        "g = rule_grader('python:team_graders:first_word'); "
        "print(g.score('apple pie', PromptRecord('p', 'q', 'apple')))"
    )
    env = {**cli_env(), "PYTHONSAFEPATH": "1"}  # no current directory on sys.path, as in the r2router script
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1.0"
    assert str(tmp_path) not in os.environ.get("PYTHONPATH", "")
