"""Hostile input and hostile upstreams, each sent to a running gateway: a 4xx naming the problem, never a 500.

Client side: NaN/Infinity, lone surrogates, absurd nesting, a client that leaves
mid-upload (499, no ERROR log), a client too slow to send its body (408). Upstream
side: a lone surrogate escape in a 200 or in a stream chunk (relayed, re-encoded),
a slow drip past the call's deadline, an answer over the size limit, 4xx counted.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from r2router_core import R2Router

from .support import (
    MATH_PROMPT,
    ServerThread,
    Stub,
    chunk,
    metric_delta,
    metric_samples,
    start_gateway,
    write_upstreams,
)

CHAT = "/v1/chat/completions"
SURROGATE_BODY = (
    b'{"id":"c","object":"chat.completion","model":"upstream-large-id","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"half \\ud800 pair"},"finish_reason":"stop"}]}'
)


def _post_raw(gateway: ServerThread, content: bytes, path: str = CHAT) -> httpx.Response:
    return httpx.post(f"{gateway.url}{path}", content=content, headers={"content-type": "application/json"}, timeout=5)


def _bad_request(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_json"
    return dict(error)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_400s_naming_the_field(gateway: ServerThread, stub: Stub, literal: str) -> None:
    body = f'{{"model": "r2router", "messages": [{{"role": "user", "content": "hi"}}], "temperature": {literal}}}'
    error = _bad_request(_post_raw(gateway, body.encode()))
    assert error["param"] == "temperature" and literal in error["message"]
    chat = '"model": "r2router", "messages": [{"role": "user", "content": "hi"}]'
    nested = f'{{{chat}, "r2router": {{"lambda": {literal}}}}}'
    assert _bad_request(_post_raw(gateway, nested.encode()))["param"] == "r2router.lambda"
    assert stub.requests == []


@pytest.mark.parametrize("path", [CHAT, "/v1/route"])
def test_a_lone_surrogate_is_a_400_naming_the_field(gateway: ServerThread, stub: Stub, path: str) -> None:
    body = b'{"model": "r2router", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}'
    error = _bad_request(_post_raw(gateway, body, path))
    assert error["param"] == "messages[0].content" and "surrogate" in error["message"]
    in_a_key = b'{"model": "r2router", "messages": [{"role": "user", "content": "hi", "\\udfff": 1}]}'
    assert _bad_request(_post_raw(gateway, in_a_key, path))["param"] == "messages[0]"
    paired = b'{"model": "r2router", "messages": [{"role": "user", "content": "smile \\ud83d\\ude00"}]}'
    assert _post_raw(gateway, paired, path).status_code == 200  # a valid pair is text
    assert stub.requests == [] or all(r.body["messages"][-1]["content"].startswith("smile") for r in stub.requests)


@pytest.mark.parametrize("depth", [1100, 5000, 9000])  # 9000: 18 kB, within the test gateway's 20 kB
def test_absurd_nesting_is_a_400(gateway: ServerThread, depth: int) -> None:
    body = b'{"model": "r2router", "messages": [{"role": "user", "content": "hi"}], "x": ' + b"[" * depth
    body += b"]" * depth + b"}"
    error = _bad_request(_post_raw(gateway, body))
    assert "levels deep" in error["message"] or "depth" in error["message"]
    assert httpx.get(f"{gateway.url}/health", timeout=5).status_code == 200


def test_an_upstream_200_with_a_lone_surrogate_reaches_the_client(gateway: ServerThread, stub: Stub) -> None:
    stub.behaviour["large"].raw = (SURROGATE_BODY,)
    resp = httpx.post(
        f"{gateway.url}{CHAT}", json={"model": "r2router", "messages": [{"role": "user", "content": MATH_PROMPT}]}
    )
    assert resp.status_code == 200, resp.text
    assert b"\\ud800" in resp.content  # re-encoded as the escape the provider sent
    data = json.loads(resp.content)
    assert data["model"] == "acme/large-1" and data["choices"][0]["message"]["content"] == "half \ud800 pair"


def test_a_stream_chunk_with_a_lone_surrogate_is_relayed(gateway: ServerThread, stub: Stub) -> None:
    event = b'data: {"model":"upstream-large-id","choices":[{"index":0,"delta":{"content":"a \\ud800 b"}}]}\n\n'
    stub.behaviour["large"].raw = (event, chunk("upstream-large-id", None, "stop"), b"data: [DONE]\n\n")
    stub.behaviour["large"].raw_media_type = "text/event-stream"
    events = _stream(gateway)
    assert events[-1] == "[DONE]"
    first = json.loads(events[0])
    assert first["model"] == "acme/large-1" and first["choices"][0]["delta"]["content"] == "a \ud800 b"


def _stream(gateway: ServerThread) -> list[str]:
    body = {"model": "r2router", "stream": True, "messages": [{"role": "user", "content": MATH_PROMPT}]}
    with httpx.stream("POST", f"{gateway.url}{CHAT}", json=body, timeout=10) as resp:
        assert resp.status_code == 200
        text = resp.read().decode()
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def test_upstream_4xx_and_429_are_counted(gateway: ServerThread, stub: Stub) -> None:
    before = metric_samples(gateway.url)
    stub.behaviour["large"].status = 400
    math = {"model": "r2router", "messages": [{"role": "user", "content": MATH_PROMPT}]}
    assert httpx.post(f"{gateway.url}{CHAT}", json=math).status_code == 400  # the client's problem: no fallback
    for name in ("small", "medium", "large"):
        stub.behaviour[name].status = 429
        stub.behaviour[name].headers = {"retry-after": "30", "x-ratelimit-remaining-requests": "0"}
    resp = httpx.post(f"{gateway.url}{CHAT}", json=math)
    assert resp.status_code == 429 and resp.headers["retry-after"] == "30"
    assert resp.headers["x-ratelimit-remaining-requests"] == "0"
    after = metric_samples(gateway.url)
    assert metric_delta(before, after, "r2router_upstream_errors_total", model="large", reason="http_4xx") == 1
    total_429 = sum(
        metric_delta(before, after, "r2router_upstream_errors_total", model=name, reason="http_429")
        for name in ("small", "medium", "large")
    )
    assert total_429 == 3  # the routed model and its 2 fallbacks


def test_a_client_leaving_mid_upload_is_a_quiet_499(
    gateway: ServerThread, stub: Stub, caplog: pytest.LogCaptureFixture
) -> None:
    before = metric_samples(gateway.url)
    head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    with caplog.at_level(logging.DEBUG):
        with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
            sock.sendall(head.encode() + b'{"model": "r2router", "messages": [')
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            after = metric_samples(gateway.url)
            if metric_delta(before, after, "r2router_requests_total", route=CHAT, status="499") == 1:
                break
            time.sleep(0.05)
    assert metric_delta(before, after, "r2router_requests_total", route=CHAT, status="499") == 1
    assert metric_delta(before, after, "r2router_requests_total", route=CHAT, status="500") == 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert stub.requests == []


# -- a gateway with tight limits -----------------------------------------------------------
@pytest.fixture(scope="module")
def strict(
    router: R2Router, stub_server: tuple[Stub, ServerThread], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    """Upstream calls limited to 0.6 s in all and 4,000 bytes; clients to 0.3 s for their body."""
    path = write_upstreams(
        tmp_path_factory.mktemp("strict") / "upstreams.yaml", stub_server[1].url, deadline=0.6, max_response_bytes=4000
    )
    server = start_gateway(router, path, body_timeout=0.3)
    yield server
    server.__exit__()


def _math(server: ServerThread) -> httpx.Response:
    body = {"model": "r2router", "messages": [{"role": "user", "content": MATH_PROMPT}]}
    return httpx.post(f"{server.url}{CHAT}", json=body, timeout=10)


def test_a_slow_drip_passes_the_deadline_and_falls_back(strict: ServerThread, stub: Stub) -> None:
    # every part well within the 1 s between-bytes timeout, the whole far past the 0.6 s deadline
    stub.behaviour["large"].raw = (*(b" " for _ in range(30)), SURROGATE_BODY)
    stub.behaviour["large"].event_delay = 0.1
    resp = _math(strict)
    assert resp.status_code == 200 and resp.headers["x-r2router-model"] == "medium"
    (failed,) = json.loads(resp.headers["x-r2router-failed-attempts"])
    assert failed["model"] == "large" and failed["kind"] == "timeout" and "deadline of 0.6 s" in failed["error"]


def test_an_answer_over_the_size_limit_falls_back(strict: ServerThread, stub: Stub) -> None:
    stub.behaviour["large"].raw = (b'{"model": "x", "pad": "', b"a" * 5000, b'"}')
    resp = _math(strict)
    assert resp.status_code == 200 and resp.headers["x-r2router-model"] == "medium"
    (failed,) = json.loads(resp.headers["x-r2router-failed-attempts"])
    assert failed["kind"] == "invalid_response" and "4000 bytes" in failed["error"]


def test_a_stream_past_its_deadline_ends_with_an_error_event(strict: ServerThread, stub: Stub) -> None:
    stub.behaviour["large"].raw = tuple(chunk("upstream-large-id", f"t{i} ") for i in range(30))
    stub.behaviour["large"].raw_media_type = "text/event-stream"
    stub.behaviour["large"].event_delay = 0.1
    events = _stream(strict)
    assert 1 <= len(events) < 30
    error = json.loads(events[-1])["error"]
    assert error["code"] == "stream_timeout" and "deadline" in error["message"]


def test_a_stream_over_the_size_limit_ends_with_an_error_event(strict: ServerThread, stub: Stub) -> None:
    stub.behaviour["large"].raw = tuple(chunk("upstream-large-id", "x" * 500) for _ in range(20))
    stub.behaviour["large"].raw_media_type = "text/event-stream"
    events = _stream(strict)
    assert json.loads(events[-1])["error"]["code"] == "stream_response_too_large"


def test_a_client_too_slow_with_its_body_gets_a_408(strict: ServerThread, stub: Stub) -> None:
    head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", strict.port), timeout=10) as sock:
        sock.sendall(head.encode() + b'{"model": ')
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer
    assert stub.requests == []


def test_the_strict_gateway_still_serves(strict: ServerThread, stub: Stub) -> None:
    resp = _math(strict)
    assert resp.status_code == 200 and resp.headers["x-r2router-model"] == "large"
