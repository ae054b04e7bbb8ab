"""Collect's graders on the decision log: kept-text answers graded once, as feedback, skipped rows counted,
a judge's worst case shown before it is called, and the grades labelling ``train --store`` rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from r2router_core.store import DecisionRecord, OutcomeStore, PromptRecord, training_data_from_decisions
from r2router_integrations.cli import main
from r2router_integrations.collect import JudgeGrader, grade_log
from r2router_integrations.collect.graders import JUDGE_RUBRIC, rule_grader
from r2router_integrations.collect.plan import DEFAULT_UNCAPPED_MAX_TOKENS, estimate_input_tokens
from r2router_integrations.collect.pool import ChatModelMember
from r2router_integrations.langchain.testing import FakePoolChatModel

# id -> (prompt, answer); None: logged without its text (privacy by default)
LOGGED: dict[str, tuple[str, str] | None] = {
    "d0": ("what is the capital of France?", "**Paris.**"),
    "d1": ("what is 2 plus 2?", "it is 4"),
    "d2": ("tell me a joke", "why did the chicken..."),  # no reference
    "d3": None,
    "d4": None,
}
REFERENCES = {"what is the capital of France?": "paris", "what is 2 plus 2?": "4"}


def _log(store: OutcomeStore) -> None:
    rows = []
    for i, (decision_id, text) in enumerate(LOGGED.items()):
        prompt, answer = text if text is not None else (None, None)
        embedding = np.random.default_rng(i).normal(size=8).astype(np.float32)
        rows.append(
            DecisionRecord(
                decision_id, "gateway", "small", 64, {}, output_tokens=9, prompt=prompt, answer=answer,
                embedder="hash-8", embedding=embedding,
            )
        )  # fmt: skip
    failed = DecisionRecord("d5", "gateway", "small", 64, {}, status="error", prompt="what is 2 plus 2?")
    store.record_decisions([*rows, failed])


def _oracle(spec: str, decision_id: str) -> float | None:
    prompt, answer = LOGGED[decision_id] or ("", "")
    grader = rule_grader(spec)
    assert grader is not None
    return grader.score(answer, PromptRecord(decision_id, prompt, REFERENCES[prompt]))


def test_logged_answers_are_graded_once_as_feedback_and_label_training_rows(store_url: str) -> None:
    with OutcomeStore(store_url) as store:
        _log(store)
        first = grade_log(store, ["exact", "regex:(\\d+)"], references=REFERENCES)
        exact = first.plans[0]
        assert [d.id for d, _ in exact.todo] == ["d0", "d1"]  # d2 has no reference; d5 failed
        assert (exact.no_text, exact.no_reference, exact.graded_before) == (2, 1, 0)
        assert (first.graded, first.ungraded, first.spent_usd) == (4, 0, 0.0)
        stored = {(f.decision_id, f.source): f.quality for f in store.feedback()}
        specs = ("exact", "regex:(\\d+)")
        assert stored == {(d, f"grader:{spec}"): _oracle(spec, d) for d in ("d0", "d1") for spec in specs}
        assert [stored[(d, f"grader:{s}")] for d in ("d0", "d1") for s in specs] == [1.0, 0.0, 0.0, 1.0]

        again = grade_log(store, ["exact"], references=REFERENCES)  # idempotent: nothing graded twice
        assert again.graded == 0 and again.plans[0].todo == () and again.plans[0].graded_before == 2
        assert len(store.feedback()) == 4

        data = training_data_from_decisions(store, ["small"], [64])  # what train --store reads
        assert data is not None and data.query_ids == ("d0", "d1")
        means = [np.mean([_oracle(s, d) for s in specs]) for d in ("d0", "d1")]  # feedback's mean labels a row
        np.testing.assert_array_equal(data.quality[:, 0, 0], means)


def _judge(output_price: float = 10.0) -> tuple[JudgeGrader, FakePoolChatModel]:
    model = FakePoolChatModel(model_name="judge", response="SCORE: 0.75")
    member = ChatModelMember("judge", model, output_price=output_price, input_price=1.0)
    return JudgeGrader("judge:paid", member), model


def test_a_judge_shows_its_worst_case_first_and_is_not_called_unless_confirmed(tmp_path: Path) -> None:
    judge, model = _judge()
    with OutcomeStore(tmp_path / "s.db") as store:
        _log(store)
        shown: list = []
        refused = grade_log(store, [judge], confirm=lambda plans: shown.append(plans) or False)
        assert model.calls == [] and store.feedback() == [] and refused.graded == 0
        (plan,) = shown[0]
        want = 0.0
        for decision_id in ("d0", "d1", "d2"):  # a judge needs no reference
            prompt, answer = LOGGED[decision_id] or ("", "")
            text = JUDGE_RUBRIC.format(prompt=prompt, reference="", answer=answer)  # no references given
            want += (estimate_input_tokens(text) * 1.0 + DEFAULT_UNCAPPED_MAX_TOKENS * 10.0) / 1e6
        assert plan.worst_case_usd == pytest.approx(want)
        assert f"${want:.4f}" in plan.describe()

        done = grade_log(store, [judge], references=REFERENCES, confirm=lambda plans: True)
        assert done.graded == 3 and len(model.calls) == 3
        assert {(f.decision_id, f.source, f.quality) for f in store.feedback()} == {
            (d, "grader:judge:paid", 0.75) for d in ("d0", "d1", "d2")
        }
        assert 0 < done.spent_usd <= want
        assert grade_log(store, [judge], confirm=lambda plans: True).graded == 0 and len(model.calls) == 3


def test_max_usd_stops_a_judge_before_its_worst_case_would_pass_it(tmp_path: Path) -> None:
    judge, model = _judge(output_price=1000.0)  # one answer's worst case: over $4
    with OutcomeStore(tmp_path / "s.db") as store:
        _log(store)
        result = grade_log(store, [judge], max_usd=1.0)
        assert result.stopped_at_max_usd and result.graded == 0 and model.calls == []


def test_the_cli_grades_the_log_once_and_asks_before_a_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with OutcomeStore(url) as store:
        _log(store)
    refs = tmp_path / "refs.jsonl"
    rows = [{"id": f"p{i}", "prompt": p, "reference": r} for i, (p, r) in enumerate(REFERENCES.items())]
    refs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    grade = ["collect", "grade-log", "--store", url, "--references", str(refs)]
    assert main([*grade, "--grader", "exact", "--dry-run"]) == 0
    assert "2 logged answers to grade" in capsys.readouterr().out
    assert main([*grade, "--grader", "exact"]) == 0
    out = capsys.readouterr().out
    assert "2 without kept text, 1 without a reference" in out and "2 logged answers graded" in out
    assert main([*grade, "--grader", "exact"]) == 0
    assert "0 logged answers graded" in capsys.readouterr().out
    judge = "judge:tests.integrations.collect.my_graders:judge_model"
    assert main([*grade, "--grader", judge, "--yes"]) == 1  # a LangChain judge's price must be given
    assert "--judge-price IN,OUT" in capsys.readouterr().err
    grade += ["--judge-price", "1,2"]
    assert main([*grade, "--grader", judge]) == 1  # stdin is no terminal: confirm with --yes
    assert "--yes" in capsys.readouterr().err
    with OutcomeStore(url) as store:
        assert {f.source for f in store.feedback()} == {"grader:exact"}
    assert main([*grade, "--grader", judge, "--yes"]) == 0
    assert "3 logged answers graded" in capsys.readouterr().out
