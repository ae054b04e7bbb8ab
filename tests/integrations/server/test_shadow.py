"""Shadow mode on the gateway: the baseline answers as a plain proxy would, the router decides beside it.

Over a loopback stub pool with known truth: every answer is the stub's own bytes, every request logs
the router's choice, the savings report's "had you switched" equals the sum computed by hand from the
log, and with ``shadow_sample`` the measured and the estimated comparisons cover the stub's truth.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.evaluation import report_from_store
from r2router_core.evaluation.savings import MEASURED, PREDICTED
from r2router_core.store.decision_log import DecisionLog
from r2router_core.testing import HashEmbedder

from .support import POOL, ServerThread, Stub, completion, start_gateway

BUDGETS = (100, 400, None)
# true quality of (topic, model, budget): the stub's answers are graded with it
QUALITY = {
    "math": np.array([[0.10, 0.15, 0.15], [0.30, 0.40, 0.45], [0.50, 0.95, 0.90]]),
    "poem": np.full((3, 3), 0.9),
}
TOKENS = 3.0  # the stub answers 3 completion tokens: the router is trained on the truth


def _router() -> R2Router:
    embedder = HashEmbedder(dim=32)
    prompts = [f"{topic} question number {i}" for topic in ("math", "poem") for i in range(20)]
    quality = np.concatenate([np.broadcast_to(QUALITY[t], (20, 3, 3)) for t in ("math", "poem")])
    config = RouterConfig(
        models=(
            ModelSpec("small", input_price=0.0, output_price=0.5, full_name="acme/small-1"),
            ModelSpec("medium", input_price=0.0, output_price=2.0, full_name="acme/medium-1"),
            ModelSpec("large", input_price=0.0, output_price=10.0, full_name="acme/large-1"),
        ),
        budgets=BUDGETS,
        lambda_=0.9,
        k=5,
        embedder=embedder.id,
    )
    data = TrainingData(embedder.embed(prompts), POOL, BUDGETS, quality, np.full((40, 3), TOKENS))
    return R2Router(config, data, embedder=embedder)


ROUTER = _router()
PROMPTS = [f"{topic} question number {i % 20}" for i in range(60) for topic in ("math", "poem")]


@pytest.fixture
def shadow_gateway(
    upstreams_file: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[ServerThread, DecisionLog]]:
    log = DecisionLog(tmp_path / "log.db")
    server = start_gateway(ROUTER, upstreams_file, store=log, shadow="large", **request.param)
    yield server, log
    server.__exit__()


def _chat(server: ServerThread, prompt: str) -> httpx.Response:
    body = {"model": "r2router", "messages": [{"role": "user", "content": prompt}]}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10)


def _rows(log: DecisionLog, n: int) -> list[Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log.flush(timeout=5)
        rows = log.store.decisions()
        if len(rows) >= n:
            return rows
        time.sleep(0.02)
    raise AssertionError(f"{n} rows expected in the log")


def _truth(model: str, cap: int | None, prompt: str) -> float:
    budget = BUDGETS.index(cap if cap in BUDGETS else None)
    return float(QUALITY[prompt.split()[0]][POOL.index(model), budget])


@pytest.mark.parametrize("shadow_gateway", [{}], indirect=True)
def test_the_baseline_answers_byte_for_byte_and_the_log_holds_the_routers_choice(
    shadow_gateway: tuple[ServerThread, DecisionLog], stub: Stub
) -> None:
    server, log = shadow_gateway
    prompts = PROMPTS[:20]
    for prompt in prompts:
        resp = _chat(server, prompt)
        assert resp.status_code == 200 and resp.headers["x-r2router-shadow"] == "baseline"
        expected = json.dumps(completion("upstream-large-id", "answer from large"), separators=(",", ":"))
        assert resp.content == expected.encode()  # the stub's answer, as a plain proxy returns it
    assert {r.model for r in stub.requests} == {"large"} and len(stub.requests) == len(prompts)
    for sent in stub.requests:  # no length instruction, no cap the client did not ask for
        assert sent.body["messages"] == [{"role": "user", "content": sent.body["messages"][0]["content"]}]
        assert not any(k in sent.body for k in ("max_tokens", "max_completion_tokens", "max_output_tokens"))
    rows = _rows(log, len(prompts))
    by_prompt = {p: ROUTER.route_text(p) for p in set(prompts)}
    large_cost = TOKENS * 10.0 / 1e6
    for row in rows:
        shadow = row.options["shadow"]
        assert shadow["baseline"] == "large" and shadow["answered_by"] == "baseline" and row.propensity == 1.0
        assert row.cost_usd == pytest.approx(large_cost) and row.output_tokens == 3
    chosen = sorted((r.model, r.budget, r.predicted_cost) for r in rows)
    routed = sorted((by_prompt[p].model, by_prompt[p].token_limit, by_prompt[p].predicted_cost) for p in prompts)
    assert chosen == routed  # the router's own decision for every request
    report = report_from_store(log.store, pool=ROUTER.config.models)
    switched = report.switched
    assert switched is not None and switched.sample == 0.0
    router_cost = sum(by_prompt[p].predicted_cost for p in prompts)
    baseline_cost = len(prompts) * large_cost
    (router_spend,) = [e for e in switched.router_spend if e.basis == PREDICTED]
    assert router_spend.value == pytest.approx(router_cost, rel=1e-9)
    (baseline_spend,) = [e for e in switched.baseline_spend if e.basis == MEASURED]
    assert baseline_spend.value == pytest.approx(baseline_cost, rel=1e-9)


@pytest.mark.parametrize("shadow_gateway", [{"shadow_sample": 0.2, "seed": 11}], indirect=True)
def test_a_sampled_share_answered_by_the_router_measures_what_switching_would_do(
    shadow_gateway: tuple[ServerThread, DecisionLog], stub: Stub
) -> None:
    server, log = shadow_gateway
    answered_by = []
    for prompt in PROMPTS:
        resp = _chat(server, prompt)
        assert resp.status_code == 200
        decision_id = resp.headers["x-r2router-decision-id"]
        router = resp.headers.get("x-r2router-shadow") != "baseline"
        answered_by.append(router)
        model = resp.headers["x-r2router-model"] if router else "large"
        cap = int(resp.headers["x-r2router-budget"]) if router and resp.headers["x-r2router-budget"].isdigit() else None
        quality = _truth(model, cap, prompt)  # the known truth, as feedback
        done = httpx.post(f"{server.url}/v1/feedback", json={"id": decision_id, "quality": quality}, timeout=10)
        assert done.status_code == 204
    assert 0.08 < sum(answered_by) / len(answered_by) < 0.35  # about the 20 % sampled
    rows = _rows(log, len(PROMPTS))
    assert {r.options["shadow"]["answered_by"] for r in rows} == {"baseline", "router"}
    assert {round(r.propensity, 6) for r in rows} == {0.2, 0.8}
    decisions = [ROUTER.route_text(p) for p in PROMPTS]
    truth_router_cost = sum(TOKENS * ROUTER.config.models[POOL.index(d.model)].output_price / 1e6 for d in decisions)
    truth_baseline_cost = len(PROMPTS) * TOKENS * 10.0 / 1e6
    pairs = zip(decisions, PROMPTS, strict=True)
    truth_router_quality = float(np.mean([_truth(d.model, d.token_limit, p) for d, p in pairs]))
    truth_baseline_quality = float(np.mean([_truth("large", None, p) for p in PROMPTS]))
    switched = report_from_store(log.store, pool=ROUTER.config.models).switched
    assert switched is not None and switched.sample == pytest.approx(0.2)
    for basis in (MEASURED, PREDICTED):
        cost = next(e for e in switched.cost_change if e.basis == basis)
        quality = next(e for e in switched.quality_change if e.basis == basis)
        assert cost.covers(truth_router_cost - truth_baseline_cost), (basis, cost)
        assert quality.covers(truth_router_quality - truth_baseline_quality), (basis, quality)
    measured = next(e for e in switched.cost_change if e.basis == MEASURED)
    assert measured.high < 0  # informative: switching is measured to save money
