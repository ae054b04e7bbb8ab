"""The call plan as a state machine: events in, steps out, no I/O (h11-style transition tests)."""

from __future__ import annotations

import numpy as np
import pytest

from r2router_core import R2Router
from r2router_core.execute import (
    AnswerFacts,
    Attempt,
    CallPlan,
    Done,
    FallbackPolicy,
    PlanStateError,
    ServingSettings,
    Sleep,
    adrive,
    drive,
    drive_stream,
)
from r2router_core.execute.records import call_cost


class Upstream(Exception):
    def __init__(self, status: int, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status

        class _Response:
            headers = {"retry-after": retry_after} if retry_after else {}
            status_code = status

        self.response = _Response()


def _decision(make_router, row: int = 0):  # type: ignore[no-untyped-def]
    router: R2Router = make_router()
    return router.route(router.training_data.embeddings[row])


def _spec(decision, model: str):  # type: ignore[no-untyped-def]
    return next(m for m in decision._table.config.models if m.name == model)


def test_first_attempt_is_the_chosen_arm_with_its_cap_and_instruction(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    plan = CallPlan.routed(decision, ServingSettings(), source="test")
    step = plan.next()
    assert isinstance(step, Attempt) and step.kind == "first" and step.number == 1
    assert step.arm == decision.chosen and step.cap == decision.max_tokens
    assert step.instruction_budget == decision.max_tokens
    no_instruction = CallPlan.routed(decision, ServingSettings(length_instruction=False), source="test").next()
    assert isinstance(no_instruction, Attempt) and no_instruction.instruction_budget is None


def test_a_provider_failure_moves_to_the_next_model_and_a_400_ends_the_call(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    plan = CallPlan.routed(decision, ServingSettings(fallbacks=2), source="test")
    first = plan.next()
    assert isinstance(first, Attempt)
    record = plan.failed(first, Upstream(503))
    assert record is not None and record.kind == "http_5xx"
    second = plan.next()
    assert isinstance(second, Attempt) and second.kind == "fallback" and second.model != first.model
    assert second.failures == (record,)
    bad_request = Upstream(400)
    assert plan.failed(second, bad_request) is None
    done = plan.next()
    assert isinstance(done, Done) and done.outcome.status == "error" and done.outcome.error is bad_request
    assert len(done.outcome.records) == 1 and done.outcome.records[0].status == "error"


def test_every_attempt_failing_gives_one_error_row_with_every_attempt(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    plan = CallPlan.routed(decision, ServingSettings(fallbacks=1), source="test")
    tried = []
    while isinstance(step := plan.next(), Attempt):
        tried.append(step.model)
        plan.failed(step, TimeoutError("slow"))
    assert isinstance(step, Done) and len(tried) == 2
    outcome = step.outcome
    assert outcome.status == "error" and isinstance(outcome.error, TimeoutError)
    assert [f.model for f in outcome.failures] == tried and outcome.cost_usd == 0.0
    (row,) = outcome.records
    assert row.status == "error" and row.model == tried[-1] and len(row.failed_attempts) == 2


def test_a_short_retry_after_sleeps_then_retries_the_same_arm_once(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    plan = CallPlan.routed(decision, ServingSettings(fallbacks=0), source="test")
    first = plan.next()
    assert isinstance(first, Attempt)
    plan.failed(first, Upstream(429, "1.5"))
    assert plan.next() == Sleep(1.5)
    retry = plan.next()
    assert isinstance(retry, Attempt) and retry.kind == "retry" and retry.arm == first.arm
    plan.failed(retry, Upstream(429, "1.5"))
    assert isinstance(plan.next(), Done)  # once only, then no fallback left


def test_same_arm_retries_back_off_for_the_collector() -> None:
    from r2router_core import ModelSpec

    spec = ModelSpec("m", output_price=2.0, input_price=1.0)
    policy = FallbackPolicy(max_fallbacks=0, retries=2, backoff=0.5, max_wait=10)
    plan = CallPlan.fixed(spec, 100, cap=100, policy=policy, rng=np.random.default_rng(0))
    kinds, waits = [], []
    while not isinstance(step := plan.next(), Done):
        if isinstance(step, Sleep):
            waits.append(step.seconds)
            continue
        kinds.append(step.kind)
        plan.failed(step, ConnectionError("refused"))
    assert kinds == ["first", "retry", "retry"] and len(waits) == 2
    assert 0 <= waits[0] <= 0.5 and 0 <= waits[1] <= 1.0
    assert all(f.model == "m" for f in step.outcome.failures) and step.outcome.records == ()


def test_a_cut_answer_escalates_once_and_costs_add_up(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    plan = CallPlan.routed(decision, ServingSettings(), source="test")
    first = plan.next()
    assert isinstance(first, Attempt)
    plan.answered(first, AnswerFacts("length", 10, first.cap, "cut"))
    again = plan.next()
    assert isinstance(again, Attempt) and again.kind == "escalation"
    plan.answered(again, AnswerFacts("length", 10, 7, "still cut"))
    done = plan.next()
    assert isinstance(done, Done)
    outcome = done.outcome
    expected = call_cost(_spec(decision, first.model), 10, first.cap) + call_cost(_spec(decision, again.model), 10, 7)
    assert outcome.cost_usd == pytest.approx(expected)
    assert outcome.input_cost_usd + outcome.output_cost_usd == pytest.approx(expected)
    assert outcome.answered is again and len(outcome.truncated) == 1
    cut_cost = call_cost(_spec(decision, first.model), 10, first.cap)
    assert [(m, b) for m, b, _ in outcome.paid] == [(first.model, first.token_limit), (again.model, again.token_limit)]
    assert outcome.paid[0][2] == pytest.approx(cut_cost) and sum(c for *_, c in outcome.paid) == pytest.approx(expected)
    cut, final = outcome.records
    assert final.escalated_from == cut.id and final.id == plan.decision_id
    assert final.cost_usd == pytest.approx(expected)


def test_a_failed_escalation_returns_the_cut_answer(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    plan = CallPlan.routed(decision, ServingSettings(), source="test")
    first = plan.next()
    assert isinstance(first, Attempt)
    plan.answered(first, AnswerFacts("length", 5, 5))
    again = plan.next()
    assert isinstance(again, Attempt)
    plan.failed(again, Upstream(500))
    done = plan.next()
    assert isinstance(done, Done) and done.outcome.status == "ok" and done.outcome.answered is first
    assert done.outcome.truncated == () and len(done.outcome.records) == 1


def test_streams_never_escalate_and_fail_loudly_after_the_first_chunk(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    plan = CallPlan.routed(decision, ServingSettings(), source="test", stream=True)
    first = plan.next()
    assert isinstance(first, Attempt)
    plan.committed(first)
    error = ConnectionError("cut")
    plan.failed(first, error)
    done = plan.next()
    assert isinstance(done, Done) and done.outcome.status == "error" and done.outcome.error is error
    plan2 = CallPlan.routed(decision, ServingSettings(), source="test", stream=True)
    step = plan2.next()
    assert isinstance(step, Attempt)
    plan2.answered(step, AnswerFacts("length", 1, 1))
    assert isinstance(plan2.next(), Done)


def test_exploration_leads_with_the_drawn_arm_and_records_its_propensity(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    settings = ServingSettings(explore=0.5, fallbacks=1)
    seen = {}
    for seed in range(40):
        plan = CallPlan.routed(decision, settings, source="test", rng=np.random.default_rng(seed))
        first = plan.next()
        assert isinstance(first, Attempt)
        seen[(first.model, first.token_limit)] = plan.propensity
        plan.answered(first, AnswerFacts("stop", 1, 1))
        done = plan.next()
        assert isinstance(done, Done) and done.outcome.records[0].propensity == plan.propensity
    assert seen[(decision.model, decision.token_limit)] == pytest.approx(0.5)
    options = settings.exploration.alternatives(decision)
    chosen = (decision.model, decision.token_limit)
    assert len(seen) > 1
    assert all(p == pytest.approx(0.5 / len(options)) for arm, p in seen.items() if arm != chosen)


def test_calls_out_of_turn_are_refused(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    plan = CallPlan.routed(decision, ServingSettings(), source="test")
    step = plan.next()
    assert isinstance(step, Attempt)
    with pytest.raises(PlanStateError, match="not been reported"):
        plan.next()
    with pytest.raises(PlanStateError):
        _ = plan.outcome
    other = CallPlan.routed(decision, ServingSettings(), source="test").next()
    assert isinstance(other, Attempt)
    with pytest.raises(PlanStateError, match="not the attempt under way"):
        plan.answered(other)


def test_the_provider_silent_on_input_tokens_is_priced_on_the_counted_prompt(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    plan = CallPlan.routed(decision, ServingSettings(), source="test", prompt_tokens=300)
    step = plan.next()
    assert isinstance(step, Attempt)
    plan.answered(step, AnswerFacts("stop", None, 20))
    outcome = plan.next()
    assert isinstance(outcome, Done)
    spec = _spec(decision, step.model)
    assert outcome.outcome.input_cost_usd == pytest.approx(300 * spec.input_price / 1e6)


def test_the_drivers_count_the_plans_steps(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    calls = []

    def call(attempt: Attempt) -> str:
        calls.append(attempt.model)
        if len(calls) == 1:
            raise Upstream(502)
        return f"answer of {attempt.model}"

    plan = CallPlan.routed(decision, ServingSettings(), source="test")
    answer, outcome = drive(plan, call, lambda a: AnswerFacts("stop", 3, 4, a))
    assert answer == f"answer of {calls[-1]}" and len(calls) == 2 and plan.steps == 3
    assert outcome.status == "ok" and len(outcome.failures) == 1

    async def acall(attempt: Attempt) -> str:
        return call(attempt)

    import asyncio

    calls.clear()
    plan = CallPlan.routed(decision, ServingSettings(), source="test")
    answer, outcome = asyncio.run(adrive(plan, acall, lambda a: AnswerFacts("stop", 3, 4, a)))
    assert outcome.answered is not None and answer.endswith(outcome.answered.model) and plan.steps == 3

    plan = CallPlan.routed(decision, ServingSettings(), source="test", stream=True)
    chunks = list(drive_stream(plan, lambda a: iter(["a", "b"]), lambda a: AnswerFacts("stop", 1, 2, "ab")))
    assert chunks == ["a", "b"] and plan.outcome.status == "ok"


def test_a_stream_the_caller_abandons_is_logged_as_abandoned(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    plan = CallPlan.routed(decision, ServingSettings(), source="test", stream=True)
    stream = drive_stream(plan, lambda a: iter(["a", "b", "c"]), lambda a: AnswerFacts(None, 4, 1, "a"))
    assert next(stream) == "a"
    stream.close()
    outcome = plan.outcome
    assert outcome.status == "abandoned" and outcome.records[0].status == "abandoned"
    assert outcome.cost_usd > 0


def test_shadow_the_baseline_answers_as_a_plain_proxy_and_the_row_holds_the_routers_choice(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    config = decision._table.config
    baseline = config.model_names[-1]
    settings = ServingSettings(shadow=baseline)
    assert not settings.router_answers(np.random.default_rng(0))
    plan = CallPlan.shadowed(settings, config.models, source="test", max_tokens=77, prompt_tokens=40)
    step = plan.next()
    assert isinstance(step, Attempt) and step.model == baseline and step.cap == 77
    assert step.instruction_budget is None and step.kind == "first"
    plan.answered(step, AnswerFacts("length", 40, 77, "the baseline's answer"))  # a cut is never escalated
    done = plan.next()
    assert isinstance(done, Done) and done.outcome.records == ()  # no decision yet: nothing to log
    plan.decided(decision)
    (row,) = plan.outcome.records
    spec = _spec(decision, baseline)
    assert (row.model, row.budget) == (decision.model, decision.token_limit)
    assert row.predicted_cost == decision.predicted_cost and row.cost_usd == pytest.approx(call_cost(spec, 40, 77))
    shadow = row.options["shadow"]
    assert shadow["baseline"] == baseline and shadow["answered_by"] == "baseline" and row.propensity == 1.0
    mine = [c for c in decision.candidates if c.model == baseline]
    assert shadow["baseline_predicted_cost"] in {c.predicted_cost for c in mine}


def test_shadow_baseline_failures_are_not_retried_elsewhere(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    config = decision._table.config
    plan = CallPlan.shadowed(ServingSettings(shadow=config.model_names[0]), config.models, source="test")
    step = plan.next()
    assert isinstance(step, Attempt)
    plan.failed(step, Upstream(503))
    done = plan.next()
    assert isinstance(done, Done) and done.outcome.status == "error" and done.outcome.attempts == 1
    plan.decided(decision)
    assert plan.outcome.records[0].status == "error" and plan.outcome.records[0].cost_usd == 0.0


def test_shadow_sample_lets_the_router_answer_a_share_with_propensities(make_router) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(make_router)
    baseline = decision._table.config.model_names[0]
    settings = ServingSettings(shadow=baseline, shadow_sample=0.25, seed=3)
    rng = np.random.default_rng(3)
    draws = [settings.router_answers(rng) for _ in range(4000)]
    assert 0.22 < sum(draws) / len(draws) < 0.28
    plan = CallPlan.routed(decision, settings, source="test")
    step = plan.next()
    assert isinstance(step, Attempt) and step.arm == decision.chosen  # the router's own plan
    plan.answered(step, AnswerFacts("stop", 1, 1))
    done = plan.next()
    assert isinstance(done, Done)
    (row,) = done.outcome.records
    assert row.propensity == pytest.approx(0.25) and row.options["shadow"]["answered_by"] == "router"


def test_shadow_settings_are_checked() -> None:
    from r2router_core import ConfigError

    with pytest.raises(ConfigError, match="shadow_sample needs shadow"):
        ServingSettings(shadow_sample=0.1)
    with pytest.raises(ConfigError, match=r"in \[0, 1\)"):
        ServingSettings(shadow="a", shadow_sample=1.0)


def test_a_shadow_model_outside_the_pool_names_the_pool(make_router) -> None:  # type: ignore[no-untyped-def]
    from r2router_core import UnknownModelError

    config = _decision(make_router)._table.config
    with pytest.raises(UnknownModelError, match="not in the pool"):
        CallPlan.shadowed(ServingSettings(shadow="gpt-4o"), config.models, source="test")
