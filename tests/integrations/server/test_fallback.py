"""Upstream faults: timeouts, connection errors and 5xx fall back to the next candidate; 4xx do not."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from r2router_core import R2Router
from r2router_integrations.server import Upstream, create_app, load_upstreams

from .support import ENV, MATH_PROMPT, ServerThread, Stub, start_gateway

MESSAGES = [{"role": "user", "content": MATH_PROMPT}]  # candidates: large@400, then medium, then small


def _create(client: OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.with_raw_response.create(model="r2router", messages=MESSAGES, **kwargs)


@pytest.mark.parametrize(
    "failure",
    [{"status": 500}, {"status": 502}, {"status": 503}, {"delay": 3.0}, {"garbage": True}],
    ids=["500", "502", "503", "timeout", "not-json"],
)
def test_a_failed_upstream_falls_back_to_the_next_best_model(
    client: OpenAI, stub: Stub, router: R2Router, failure: dict[str, object]
) -> None:
    for key, value in failure.items():
        setattr(stub.behaviour["large"], key, value)
    raw = _create(client)
    second = next(c for c in router.route_text(MATH_PROMPT).candidates if c.model != "large")  # the oracle
    assert [r.model for r in stub.requests] == ["large", second.model]
    assert raw.headers["x-r2router-model"] == second.model
    assert raw.headers["x-r2router-fallbacks"] == "1"
    assert raw.headers["x-r2router-budget"] == str(second.token_limit).replace("None", "uncapped")
    assert raw.parse().model == "acme/medium-1"


def test_two_failures_use_the_third_model(client: OpenAI, stub: Stub) -> None:
    stub.behaviour["large"].status = 500
    stub.behaviour["medium"].status = 503
    raw = _create(client)
    assert [r.model for r in stub.requests] == ["large", "medium", "small"]
    assert raw.headers["x-r2router-fallbacks"] == "2"
    assert stub.requests[2].body["max_tokens"] == 400  # small's best budget on math (its 400 and uncapped tie)


def test_all_failing_is_a_502_naming_what_was_tried(client: OpenAI, stub: Stub) -> None:
    for name in ("large", "medium", "small"):
        stub.behaviour[name].status = 500
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="r2router", messages=MESSAGES)
    assert info.value.status_code == 502
    error = info.value.body
    assert isinstance(error, dict) and error["code"] == "upstream_unavailable" and error["type"] == "server_error"
    assert all(name in error["message"] for name in ("large", "medium", "small"))
    assert len(stub.requests) == 3


def test_all_timing_out_is_a_504(client: OpenAI, stub: Stub) -> None:
    for name in ("large", "medium", "small"):
        stub.behaviour[name].delay = 3.0
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="r2router", messages=MESSAGES, extra_body={"r2router": {"allowed_models": ["large"]}}
        )
    assert info.value.status_code == 504
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "upstream_timeout"


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_a_4xx_is_returned_as_is_without_fallback(client: OpenAI, stub: Stub, status: int) -> None:
    stub.behaviour["large"].status = status
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="r2router", messages=MESSAGES)
    assert info.value.status_code == status
    assert info.value.body == {
        "message": f"stub large fails with {status}",
        "type": "invalid_request_error",
        "param": None,
        "code": "stub",
    }
    assert info.value.response.headers["x-r2router-model"] == "large"
    assert [r.model for r in stub.requests] == ["large"]


RATE_HEADERS = {"retry-after": "30", "x-ratelimit-remaining-requests": "0", "x-request-id": "req-abc"}


def test_a_429_with_a_long_retry_after_falls_back_at_once(client: OpenAI, stub: Stub) -> None:
    stub.behaviour["large"].status = 429
    stub.behaviour["large"].headers = RATE_HEADERS
    raw = client.chat.completions.with_raw_response.create(model="r2router", messages=MESSAGES)
    assert raw.headers["x-r2router-model"] == "medium" and raw.headers["x-r2router-fallbacks"] == "1"
    (failed,) = json.loads(raw.headers["x-r2router-failed-attempts"])
    assert failed == {
        "model": "large",
        "token_limit": 400,
        "kind": "http_429",
        "error": "large: HTTP 429",
        "status": 429,
    }
    assert [r.model for r in stub.requests] == ["large", "medium"]


def test_a_429_with_a_short_retry_after_is_retried_once_on_the_same_arm(client: OpenAI, stub: Stub) -> None:
    stub.behaviour["large"].status = 429
    stub.behaviour["large"].headers = {"retry-after": "0.2"}
    stub.behaviour["large"].fail_times = 1
    raw = client.chat.completions.with_raw_response.create(model="r2router", messages=MESSAGES)
    assert raw.headers["x-r2router-model"] == "large"
    assert [r.model for r in stub.requests] == ["large", "large"]


def test_the_last_429_reaches_the_client_with_its_rate_limit_headers(client: OpenAI, stub: Stub) -> None:
    for name in ("large", "medium", "small"):
        stub.behaviour[name].status = 429
        stub.behaviour[name].headers = RATE_HEADERS
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="r2router", messages=MESSAGES)
    headers = info.value.response.headers
    assert headers["retry-after"] == "30" and headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-request-id"] == "req-abc"
    assert [r.model for r in stub.requests] == ["large", "medium", "small"]


def test_a_bypassed_model_does_not_fall_back(client: OpenAI, stub: Stub) -> None:
    stub.behaviour["large"].status = 500
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="large", messages=MESSAGES)
    assert [r.model for r in stub.requests] == ["large"]


@pytest.fixture(scope="module")
def one_fallback(router: R2Router, upstreams_file: Path) -> Iterator[ServerThread]:
    server = start_gateway(router, upstreams_file, max_fallbacks=1)
    yield server
    server.__exit__()


def test_fallbacks_are_bounded(one_fallback: ServerThread, stub: Stub) -> None:
    stub.behaviour["large"].status = 500
    stub.behaviour["medium"].status = 500
    client = OpenAI(base_url=f"{one_fallback.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="r2router", messages=MESSAGES)
    assert [r.model for r in stub.requests] == ["large", "medium"]


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_falls_back(router: R2Router, upstreams_file: Path, stub: Stub) -> None:
    live = load_upstreams(upstreams_file, router.config, environ=ENV)
    dead = Upstream("large", f"http://127.0.0.1:{_dead_port()}/v1", "upstream-large-id", timeout=1.0)
    app = create_app(router, [dead, live["medium"], live["small"]])
    with ServerThread(app) as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="r2router", messages=MESSAGES)
    assert raw.headers["x-r2router-model"] == "medium" and raw.headers["x-r2router-fallbacks"] == "1"
    assert [r.model for r in stub.requests] == ["medium"]
