"""/v1/route, /v1/models, /health and the Prometheus counters of /metrics."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from r2router_core import R2Router

from .support import MATH_PROMPT, POEM_PROMPT, POOL, ServerThread, Stub


def test_route_returns_the_decision_without_calling_an_llm(gateway: ServerThread, stub: Stub, router: R2Router) -> None:
    resp = httpx.post(f"{gateway.url}/v1/route", json={"messages": [{"role": "user", "content": MATH_PROMPT}]})
    assert resp.status_code == 200
    # the vector alone: the gateway does not count the prompt's tokens yet (route_text now does; issue 20)
    assert resp.json() == router.route(router.embed([MATH_PROMPT])[0]).to_dict(with_candidates=True)
    assert stub.requests == []


def test_route_takes_a_prompt_and_options(gateway: ServerThread, router: R2Router) -> None:
    body = {"prompt": MATH_PROMPT, "model": "r2router:lambda=0.99", "r2router": {"allowed_models": ["small", "medium"]}}
    resp = httpx.post(f"{gateway.url}/v1/route", json=body)
    expected = router.route(router.embed([MATH_PROMPT])[0], lambda_=0.99, allowed_models=["small", "medium"])
    data = resp.json()
    assert data == expected.to_dict(with_candidates=True)
    assert data["lambda"] == 0.99 and {c["model"] for c in data["candidates"] if c["eligible"]} == {"small", "medium"}


def test_models_lists_r2router_and_the_pool(client: OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["r2router", *POOL]
    assert all(m.object == "model" for m in models.data)


def test_health(gateway: ServerThread) -> None:
    resp = httpx.get(f"{gateway.url}/health")
    assert resp.status_code == 200 and resp.json() == {"status": "ok", "models": list(POOL)}


def _samples(gateway: ServerThread) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = httpx.get(f"{gateway.url}/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _delta(before: dict, after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_requests_decisions_latency_errors_and_fallbacks(
    client: OpenAI, gateway: ServerThread, stub: Stub
) -> None:
    before = _samples(gateway)
    math = [{"role": "user", "content": MATH_PROMPT}]
    client.chat.completions.create(model="r2router", messages=math)  # large @ 400
    client.chat.completions.create(model="r2router", messages=[{"role": "user", "content": POEM_PROMPT}])  # small @ 100
    httpx.post(f"{gateway.url}/v1/route", json={"prompt": POEM_PROMPT})  # small @ 100
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=math)
    stub.behaviour["large"].status = 503
    client.chat.completions.create(model="r2router", messages=math)  # large fails, medium answers
    after = _samples(gateway)

    assert _delta(before, after, "r2router_requests_total", route="/v1/chat/completions", status="200") == 3
    assert _delta(before, after, "r2router_requests_total", route="/v1/chat/completions", status="404") == 1
    assert _delta(before, after, "r2router_requests_total", route="/v1/route", status="200") == 1
    assert _delta(before, after, "r2router_decisions_total", model="large", budget="400") == 2
    assert _delta(before, after, "r2router_decisions_total", model="small", budget="100") == 2
    assert _delta(before, after, "r2router_upstream_latency_seconds_count", model="large") == 2  # the 503 too
    assert _delta(before, after, "r2router_upstream_latency_seconds_count", model="small") == 1
    assert _delta(before, after, "r2router_upstream_latency_seconds_count", model="medium") == 1
    assert _delta(before, after, "r2router_upstream_errors_total", model="large", reason="http_5xx") == 1
    assert _delta(before, after, "r2router_fallbacks_total", model="large") == 1
    assert _delta(before, after, "r2router_errors_total", type="invalid_request_error", code="model_not_found") == 1
    assert _delta(before, after, "r2router_routing_latency_seconds_count") == 4
    assert after[("r2router_upstream_latency_seconds_sum", (("model", "small"),))] > 0


def test_a_client_that_left_is_counted_as_499(gateway: ServerThread, stub: Stub) -> None:
    before = _samples(gateway)
    stub.behaviour["large"].delay = 0.8
    impatient = OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="r2router", messages=[{"role": "user", "content": MATH_PROMPT}])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        after = _samples(gateway)
        if _delta(before, after, "r2router_requests_total", route="/v1/chat/completions", status="499") == 1:
            break
        time.sleep(0.05)
    assert _delta(before, after, "r2router_requests_total", route="/v1/chat/completions", status="499") == 1
    assert stub.wait_for(("disconnected", "large"))
