"""The gateway drives the core's call plan: its steps, the prompt's input tokens, and every paid call logged."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.execute import CallPlan
from r2router_core.store import DecisionRecord
from r2router_core.store.decision_log import DecisionLog
from r2router_core.testing import HashEmbedder

from .support import (
    MATH_PROMPT,
    Behaviour,
    ServerThread,
    Stub,
    metric_delta,
    metric_samples,
    start_gateway,
    write_upstreams,
)

MESSAGES = [{"role": "user", "content": MATH_PROMPT}]  # candidates: large@400, then medium, then small


@pytest.fixture
def logged(router: R2Router, upstreams_file: Path, tmp_path: Path) -> Iterator[tuple[ServerThread, DecisionLog]]:
    log = DecisionLog(tmp_path / "log.db")
    server = start_gateway(router, upstreams_file, store=log)
    yield server, log
    server.__exit__()


def _row(log: DecisionLog, decision_id: str, timeout: float = 10.0) -> DecisionRecord | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log.flush(timeout=timeout)
        row = log.store.decision(decision_id)
        if row is not None:
            return row
        time.sleep(0.02)
    return None


@pytest.fixture
def plan_steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every CallPlan.next() the process makes, by the kind of step it returned."""
    steps: list[str] = []
    original = CallPlan.next

    def counting(self: CallPlan) -> Any:
        step = original(self)
        steps.append(type(step).__name__ if not hasattr(step, "kind") else step.kind)
        return step

    monkeypatch.setattr(CallPlan, "next", counting)
    return steps


# -- the plan drives the calls -------------------------------------------------------------
@pytest.mark.parametrize(("failing", "attempts"), [((), 1), (("large",), 2), (("large", "medium"), 3)])
def test_the_gateway_drives_the_cores_plan(
    client: OpenAI, stub: Stub, plan_steps: list[str], failing: tuple[str, ...], attempts: int
) -> None:
    """One plan step per upstream call, plus the one that says the call is done: no loop of the gateway's own."""
    for name in failing:
        stub.behaviour[name].status = 503
    raw = client.chat.completions.with_raw_response.create(model="r2router", messages=MESSAGES)
    assert raw.headers["x-r2router-fallbacks"] == str(len(failing))
    assert len(stub.requests) == attempts
    assert plan_steps == ["first", *["fallback"] * (attempts - 1), "Done"]  # attempts + 1


def test_a_stream_and_a_bypass_are_driven_by_the_plan_too(client: OpenAI, stub: Stub, plan_steps: list[str]) -> None:
    stub.behaviour["large"].status = 503
    with client.chat.completions.with_streaming_response.create(
        model="r2router", messages=MESSAGES, stream=True
    ) as resp:
        assert resp.headers["x-r2router-model"] == "medium"
        list(resp.iter_lines())
    assert plan_steps == ["first", "fallback"]  # the stream committed: its end is reported, not asked for
    plan_steps.clear()
    raw = client.chat.completions.with_raw_response.create(model="small", messages=MESSAGES, max_tokens=33)
    assert raw.headers["x-r2router-model"] == "small" and raw.headers["x-r2router-budget"] == "33"
    assert "x-r2router-decision-id" not in raw.headers  # routing bypassed: no decision, nothing logged
    assert plan_steps == ["first", "Done"]


def test_an_escalation_is_one_more_plan_step(client: OpenAI, stub: Stub, plan_steps: list[str]) -> None:
    for how in stub.behaviour.values():
        how.cut_below = 256
    raw = client.chat.completions.with_raw_response.create(
        model="r2router", messages=MESSAGES, extra_body={"r2router": {"lambda": 1.0}}
    )
    assert raw.headers["x-r2router-budget"] == "400"
    assert plan_steps == ["first", "escalation", "Done"]


def test_metrics_count_the_spend_of_every_paid_answer_and_the_escalations(
    client: OpenAI, gateway: ServerThread, stub: Stub
) -> None:
    for how in stub.behaviour.values():
        how.cut_below = 256
    before = metric_samples(gateway.url)
    raw = client.chat.completions.with_raw_response.create(
        model="r2router", messages=MESSAGES, extra_body={"r2router": {"lambda": 1.0}}
    )
    after = metric_samples(gateway.url)
    cut = json.loads(raw.headers["x-r2router-escalations"])[0]
    model, budget = raw.headers["x-r2router-model"], raw.headers["x-r2router-budget"]
    assert metric_delta(before, after, "r2router_escalations_total", model=cut["model"]) == 1
    final = float(raw.headers["x-r2router-cost-usd"]) - cut["cost_usd"]
    spent = metric_delta(before, after, "r2router_spend_usd_total", model=model, budget=budget)
    assert spent == pytest.approx(final) and spent > 0
    cut_budget = "uncapped" if cut["token_limit"] is None else str(cut["token_limit"])
    cut_spent = metric_delta(before, after, "r2router_spend_usd_total", model=cut["model"], budget=cut_budget)
    assert cut_spent == pytest.approx(cut["cost_usd"])


# -- the prompt's input tokens -------------------------------------------------------------
def _priced_router() -> R2Router:
    """Two models alike but for quality and input price: 'good' (0.9) costs 100x 'cheap' (0.5) per input token."""
    embedder = HashEmbedder(dim=16)
    prompts = [f"question number {i}" for i in range(10)]
    quality = np.empty((10, 2, 1))
    quality[:, 0], quality[:, 1] = 0.5, 0.9
    config = RouterConfig(
        models=(
            ModelSpec("cheap", output_price=1.0, input_price=1.0),
            ModelSpec("good", output_price=1.0, input_price=100.0),
        ),
        budgets=(None,),
        lambda_=0.99,
        k=3,
        embedder=embedder.id,
    )
    data = TrainingData(embedder.embed(prompts), ("cheap", "good"), (None,), quality, np.full((10, 2), 100.0))
    return R2Router(config, data, embedder=embedder)


@pytest.fixture(scope="module")
def priced(
    stub_server: tuple[Stub, ServerThread], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[R2Router, ServerThread]]:
    router = _priced_router()
    path = write_upstreams(
        tmp_path_factory.mktemp("priced") / "upstreams.yaml", stub_server[1].url, models=("cheap", "good")
    )
    server = start_gateway(router, path)
    yield router, server
    server.__exit__()


def test_the_prompts_tokens_are_priced_when_routing_and_in_the_cost(
    priced: tuple[R2Router, ServerThread], stub: Stub
) -> None:
    """A long prompt goes to the model whose input is cheap, a short one to the better model; the costs
    in the headers are the counted tokens at the pool's prices."""
    router, server = priced
    for name in ("cheap", "good"):
        stub.behaviour[name] = Behaviour(usage=False)  # a provider that reports no usage: the count is priced
    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=10)
    short = "what is two plus two"
    long = " ".join(f"word{i}" for i in range(300))
    prices = {m.name: m for m in router.config.models}
    for prompt, want in ((short, "good"), (long, "cheap")):
        tokens = router.count_tokens([prompt])[0]
        oracle = router.route_text(prompt, input_tokens=tokens)
        assert oracle.model == want and router.route_text(prompt, input_tokens=0).model == "good"  # input unpriced
        raw = client.chat.completions.with_raw_response.create(
            model="r2router", messages=[{"role": "user", "content": prompt}]
        )
        headers = raw.headers
        assert headers["x-r2router-model"] == want
        spec = prices[want]
        predicted = (tokens * spec.input_price + oracle.predicted_tokens * spec.output_price) / 1e6
        assert float(headers["x-r2router-predicted-cost"]) == pytest.approx(predicted, rel=1e-5)
        assert float(headers["x-r2router-input-cost-usd"]) == pytest.approx(tokens * spec.input_price / 1e6, rel=1e-5)
        assert float(headers["x-r2router-output-cost-usd"]) == 0.0  # no usage reported: no output tokens known
        assert float(headers["x-r2router-cost-usd"]) == pytest.approx(tokens * spec.input_price / 1e6, rel=1e-5)
    # a request that states its own input tokens is routed on them
    raw = client.chat.completions.with_raw_response.create(
        model="r2router", messages=[{"role": "user", "content": short}], extra_body={"r2router": {"input_tokens": 400}}
    )
    assert raw.headers["x-r2router-model"] == "cheap"


def test_every_message_of_the_conversation_is_counted(priced: tuple[R2Router, ServerThread], stub: Stub) -> None:
    router, server = priced
    for name in ("cheap", "good"):
        stub.behaviour[name] = Behaviour()
    history = [{"role": "system", "content": " ".join(["context"] * 300)}, {"role": "user", "content": "and now?"}]
    body = {"model": "r2router", "messages": history}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10)
    assert answer.headers["x-r2router-model"] == "cheap"  # the long system message is paid for too
    assert router.route_text("and now?", input_tokens=router.count_tokens(["and now?"])[0]).model == "good"


# -- every paid call is logged -------------------------------------------------------------
def test_a_stream_the_client_abandons_is_logged_with_its_usage_and_takes_feedback(
    logged: tuple[ServerThread, DecisionLog], stub: Stub, router: R2Router
) -> None:
    server, log = logged
    stub.behaviour["large"].events = 40
    stub.behaviour["large"].event_delay = 0.05
    stub.behaviour["large"].stream_usage = True
    body = {"model": "r2router", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=10) as resp:
        decision_id = resp.headers["x-r2router-decision-id"]
        seen = 0
        for line in resp.iter_lines():
            seen += line.startswith("data: {")
            if seen == 2:
                break  # leaving the block closes the connection mid-stream
    assert stub.wait_for(("stream_cancelled", "large"))
    row = _row(log, decision_id)
    assert row is not None
    assert (row.status, row.finish_reason, row.model, row.budget) == ("abandoned", "abandoned", "large", 400)
    assert row.input_tokens == 5 and row.output_tokens is not None and 2 <= row.output_tokens < 40
    large = router.config.models[2]
    assert row.cost_usd == pytest.approx((5 * large.input_price + row.output_tokens * large.output_price) / 1e6)
    feedback = httpx.post(f"{server.url}/v1/feedback", json={"id": decision_id, "quality": 0.3}, timeout=10)
    assert feedback.status_code == 204
    assert [f.quality for f in log.store.feedback(decision_id)] == [0.3]


def test_a_call_whose_client_left_during_the_upstream_call_is_logged_and_takes_feedback(
    logged: tuple[ServerThread, DecisionLog], stub: Stub
) -> None:
    server, log = logged
    stub.behaviour["large"].delay = 0.8  # within the upstream timeout: only the client's leaving stops it
    impatient = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="r2router", messages=MESSAGES)
    assert stub.wait_for(("disconnected", "large"), timeout=2.0)
    log.flush(timeout=5)
    (row,) = [r for r in log.store.decisions() if r.status == "abandoned"]
    assert (row.model, row.budget, row.finish_reason) == ("large", 400, "abandoned")
    assert (row.input_tokens, row.output_tokens) == (None, None)  # the upstream reported nothing before we left
    assert row.embedding is not None and len(stub.calls("medium")) == 0
    feedback = httpx.post(f"{server.url}/v1/feedback", json={"id": row.id, "quality": 0.0}, timeout=10)
    assert feedback.status_code == 204


def test_a_stream_broken_after_its_first_bytes_is_logged_as_an_error_with_its_failed_attempt(
    logged: tuple[ServerThread, DecisionLog], stub: Stub
) -> None:
    """Committed, so no fallback: the client gets an error event, the log one error row naming the break."""
    server, log = logged
    stub.behaviour["large"].events = 5
    stub.behaviour["large"].break_after = 2
    body = {"model": "r2router", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=10) as resp:
        decision_id = resp.headers["x-r2router-decision-id"]
        text = "".join(resp.iter_text())
    assert "stream_interrupted" in text and stub.calls("medium") == []
    row = _row(log, decision_id)
    assert row is not None
    assert (row.status, row.finish_reason, row.model, row.cost_usd) == ("error", "error", "large", 0.0)
    assert [(a["model"], a["kind"]) for a in row.failed_attempts] == [("large", "connection")]


def test_an_upstream_4xx_is_returned_as_is_and_logged_as_an_error(
    logged: tuple[ServerThread, DecisionLog], stub: Stub
) -> None:
    server, log = logged
    stub.behaviour["large"].status = 422
    answer = httpx.post(
        f"{server.url}/v1/chat/completions", json={"model": "r2router", "messages": MESSAGES}, timeout=10
    )
    assert answer.status_code == 422 and answer.json()["error"]["message"] == "stub large fails with 422"
    assert answer.headers["x-r2router-model"] == "large" and "x-r2router-cost-usd" not in answer.headers
    row = _row(log, answer.headers["x-r2router-decision-id"])
    assert row is not None and (row.status, row.model, row.failed_attempts) == ("error", "large", ())
