"""The collector drives the core's call plan: a cell answered 5xx or 429 is retried on the same arm, through
the plan (its steps counted), and is never answered by another model or budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from r2router_core.execute import CallPlan
from r2router_core.store import OutcomeStore, PromptRecord
from r2router_integrations.collect import Limits, collect
from r2router_integrations.collect import runner as collect_runner
from tests.integrations.collect.support import ENV, stub_pool, write_upstreams


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> list[CallPlan]:
    """Every call plan the collector builds."""
    built: list[CallPlan] = []
    fixed = CallPlan.fixed

    def spy(*args, **kwargs) -> CallPlan:
        plan = fixed(*args, **kwargs)
        built.append(plan)
        return plan

    monkeypatch.setattr(collect_runner.CallPlan, "fixed", spy)
    return built


def test_a_cell_answered_5xx_or_429_is_retried_on_the_same_arm_through_the_plan(
    tmp_path: Path, plans: list[CallPlan]
) -> None:
    faults = {"server_errors": {"big": 2}, "rate_limited": {"small": 1}, "retry_after": 0.1}
    prompt = PromptRecord("m0", "math: what is 10 plus 1", "11")
    with stub_pool(tmp_path, **faults) as pool, OutcomeStore(tmp_path / "runs.db") as store:
        upstreams = write_upstreams(tmp_path / "upstreams.yaml", pool.url)
        limits = Limits(max_attempts=4, backoff=0.05, concurrency=1)
        result = collect([prompt], upstreams, (64,), store, prompt_set="p", graders=["exact"], limits=limits,
                         environ=ENV, preflight=False)  # fmt: skip
        requests = pool.requests()
        calls = {c.call.model: c.call for c in store.calls("p")}
    assert result.calls == 2 and result.errors == 0
    by_model = {p.outcome.answered.model: p for p in plans if p.outcome.answered is not None}
    # big: attempt (503), sleep, attempt (503), sleep, attempt (200), done
    assert by_model["big"].steps == 6 and by_model["big"].outcome.attempts == 3
    # small: attempt (429, Retry-After 0.1 s), sleep, attempt (200), done
    assert by_model["small"].steps == 4 and by_model["small"].outcome.attempts == 2
    assert len(plans) == 2 and all(p.outcome.status == "ok" for p in plans)
    for plan in plans:
        answered = plan.outcome.answered
        assert answered is not None and answered.kind == "retry" and answered.cap == 64
        assert {f.model for f in plan.outcome.failures} == {answered.model}  # never another model
        assert {f.token_limit for f in plan.outcome.failures} == {64}  # never another budget
    assert [r["status"] for r in requests if r["model"] == "big"] == [503, 503, 200]
    assert [r["status"] for r in requests if r["model"] == "small"] == [429, 200]
    for r in requests:  # every attempt is the same request: the arm's model, its cap, its length instruction
        cap = r["body"].get("max_tokens", r["body"].get("max_completion_tokens"))
        assert r["body"]["model"] == f"acme/{r['model']}-1" and cap == 64
        assert "64 tokens" in r["body"]["messages"][0]["content"]
    assert (calls["big"].attempts, calls["big"].output_tokens) == (3, 64)
    assert calls["big"].cost_usd == pytest.approx(by_model["big"].outcome.cost_usd)  # the plan's cost record
    assert calls["small"].attempts == 2
