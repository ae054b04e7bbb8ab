"""Graders: the rule graders on tricky answers, the judge (strict parse, its own calls stored and costed,
resumable), re-grading without calling a model again, and a LangChain pool called like R2RouterChatModel."""

from __future__ import annotations

from pathlib import Path

import pytest

from r2router_core import OPENAI_MESSAGES, add_length_instruction
from r2router_core.errors import ConfigError, DataError
from r2router_core.store import OutcomeStore, PromptRecord
from r2router_integrations.collect import JudgeGrader, chat_model_pool, collect, grade
from r2router_integrations.collect.graders import parse_judge_score, rule_grader
from r2router_integrations.collect.pool import ChatModelMember
from r2router_integrations.langchain.testing import FakePoolChatModel
from tests.integrations.collect.support import ENV, run_cli, stub_pool, write_prompts, write_upstreams


def _score(spec: str, answer: str, reference: str) -> float | None:
    grader = rule_grader(spec)
    assert grader is not None
    prompt = PromptRecord("p", "q", reference)
    grader.check(prompt)
    return grader.score(answer, prompt)


@pytest.mark.parametrize(
    ("spec", "answer", "reference", "expected"),
    [
        ("exact", "  **Paris.** ", "paris", 1.0),
        ("exact", "Paris, France", "Paris", 0.0),
        ("contains", "The capital is Paris, of course", "paris", 1.0),
        ("choice", "Let me think. The answer is (C).", "C", 1.0),
        ("choice", "answer: b", "(B)", 1.0),
        ("choice", "B", "C", 0.0),
        ("choice", "I am not sure", "C", 0.0),
        ("numeric", "so the total is 1,234.0 dollars", "1234", 1.0),
        ("numeric", "x = 3.1416", "3.14159", 0.0),
        ("numeric:0.001", "x = 3.1416", "3.14159", 1.0),
        ("numeric", "no number here", "4", 0.0),
        ("regex", "The result: 42 apples", r"\b42\b", 1.0),
        ("regex:#### (\\d+)", "work...\n#### 17", "17", 1.0),
        ("regex:#### (\\d+)", "work... 17", "17", 0.0),
        ("python:tests.integrations.collect.my_graders:starts_with_reference", "abc def", "abc", 1.0),
    ],
)
def test_rule_graders(spec: str, answer: str, reference: str, expected: float) -> None:
    assert _score(spec, answer, reference) == expected


def test_graders_refuse_unusable_references_and_unknown_specs() -> None:
    with pytest.raises(DataError, match="prompt 'p'"):
        _score("numeric", "1", "one")
    with pytest.raises(DataError, match="one letter"):
        _score("choice", "A", "AB")
    with pytest.raises(ConfigError, match="unknown grader 'fuzzy'; the graders are"):
        rule_grader("fuzzy")
    with pytest.raises(ConfigError, match="cannot import"):
        rule_grader("python:no_such_module_xyz:f")


@pytest.mark.parametrize(
    ("text", "score"),
    [("SCORE: 1", 1.0), ("SCORE: 0.25\n", 0.25), ("SCORE:0", 0.0), ("Score: 1", None), ("SCORE: 1.5", None),
     ("I think SCORE: 1", None), ("SCORE: 1\nbecause", None), ("", None), ("SCORE: 0.5 out of 1", None)],
)  # fmt: skip
def test_judge_answers_are_parsed_strictly(text: str, score: float | None) -> None:
    assert parse_judge_score(text) == score


@pytest.fixture
def collected(tmp_path: Path):
    """A store collected over the stub pool (exact grader), and the stub still running."""
    with stub_pool(tmp_path) as pool:
        upstreams = write_upstreams(tmp_path / "upstreams.yaml", pool.url)
        prompts = write_prompts(tmp_path / "prompts.jsonl", 2, 2)
        store = tmp_path / "runs.db"
        result = run_cli("collect", "run", str(prompts), "--upstreams", str(upstreams), "--budgets", "64,uncapped",
                         "--store", str(store), "--grader", "exact", "--yes", "--no-progress")  # fmt: skip
        assert result.returncode == 0, result.stderr
        yield pool, upstreams, store


def test_regrading_with_an_upstream_judge_calls_no_pool_model_and_stores_unparseable_as_ungraded(collected) -> None:
    pool, upstreams, store = collected
    before = len(pool.requests())
    # the stub answers the rubric with its last word ("1>"): not the rubric's format
    args = ["collect", "grade", "--store", str(store), "--grader", "judge:small", "--judge-upstreams", str(upstreams)]
    refused = run_cli(*args)  # a judge is a paid model: its plan is shown, and nothing is called without --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr and len(pool.requests()) == before
    assert "judge small ($0.5/$1 per 1M in/out): 16 calls, worst-case cost $" in refused.stdout
    result = run_cli(*args, "--yes")
    assert result.returncode == 0, result.stderr
    assert "16 answers the judge did not score" in result.stdout
    judge_cost = 16 * (12 * 0.5 + 30 * 1.0) / 1e6
    assert f"judges spent ${judge_cost:.4f}" in result.stdout
    assert f"judges (not in the table): judge:small ${judge_cost:.4f}" in result.stdout
    judged = pool.requests()[before:]
    assert len(judged) == 16 and all(r["body"]["messages"][-1]["content"].startswith("You are grading") for r in judged)
    assert all("max_tokens" not in r["body"] for r in judged)  # the judge is not capped
    with OutcomeStore(store) as s:
        grades = s.grades("judge:small")
        assert len(grades) == 16
        assert all(g.score is None and g.reason.startswith("unparseable judge answer") for g in grades.values())
        assert all(g.raw == "1>" and g.grader_calls == 1 for g in grades.values())
        assert all(g.cost_usd == pytest.approx((12 * 0.5 + 30 * 1.0) / 1e6) for g in grades.values())
        exact = s.grades("exact")
        assert len(exact) == 16 and all(g.score is not None for g in exact.values())
        pool_spend = sum(c.call.cost_usd for c in s.calls())
    status = run_cli("collect", "status", "--store", str(store))  # the judge's spend apart from the pool's
    assert f"(pool ${pool_spend:.4f}, judges ${judge_cost:.4f})" in status.stdout
    # resumable: graded calls are not judged again
    assert run_cli(*args, "--yes").returncode == 0
    assert len(pool.requests()) == before + 16


def test_a_langchain_judge_grades_with_its_own_cost_and_export_can_use_it(collected) -> None:
    _, _, store = collected
    with OutcomeStore(store) as s:
        result = grade(s, ["judge:tests.integrations.collect.my_graders:judge_model"], judge_price=(1.0, 2.0))
        assert result.graded == 16 and result.unscored == 0 and result.judge_spent_usd > 0
        scores = s.grades("judge:tests.integrations.collect.my_graders:judge_model")
        assert {g.score for g in scores.values()} == {0.75}
        assert {g.input_tokens for g in scores.values()} != {None}


def test_a_langchain_pool_is_capped_and_instructed_like_r2routerchatmodel(tmp_path: Path) -> None:
    small = FakePoolChatModel(model_name="small", response=" ".join(["word"] * 50))
    big = FakePoolChatModel(model_name="big", response="right")
    judge = FakePoolChatModel(model_name="judge", response="SCORE: 1")
    pool = chat_model_pool(
        {"small": small, "big": big},
        {"small": {"input_price": 1.0, "output_price": 2.0}, "big": {"input_price": 0, "output_price": 5.0}},
    )
    prompts = [PromptRecord("a", "hello there", "right")]
    with OutcomeStore(tmp_path / "s.db") as store:
        result = collect(
            prompts,
            pool,
            (8, None),
            store,
            prompt_set="lc",
            graders=["exact", JudgeGrader("judge", ChatModelMember("j", judge, output_price=0))],
        )
        assert result.calls == 4 and result.errors == 0 and result.graded == 8
        capped = next(c for c in small.calls if c.max_tokens == 8)
        expected = add_length_instruction([{"role": "user", "content": "hello there"}], 8, OPENAI_MESSAGES)
        assert [m.text for m in capped.messages] == [m["content"] for m in expected]
        uncapped = next(c for c in small.calls if c.max_tokens is None)
        assert [m.text for m in uncapped.messages] == ["hello there"]
        calls = {(c.call.model, c.call.budget): c.call for c in store.calls("lc")}
        assert calls[("small", 8)].finish_reason == "length" and calls[("small", 8)].output_tokens == 8
        assert calls[("small", 8)].cost_usd == pytest.approx((calls[("small", 8)].input_tokens * 1.0 + 8 * 2.0) / 1e6)
        assert store.grades("exact")[store.calls("lc")[0].id] is not None
        assert ENV  # the stub's keys are not needed by a Python pool
    with pytest.raises(
        ConfigError, match=r"no prices for pool model\(s\) \['big'\]; give input_price and output_price"
    ):
        chat_model_pool({"small": small, "big": big}, {"small": {"input_price": 1, "output_price": 2},
                                                       "big": {"output_price": 5.0}})  # fmt: skip
