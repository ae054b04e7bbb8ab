"""Slow clients against a running gateway: headers that never complete, and a body that stalls.

Each test runs under both of uvicorn's HTTP parsers (httptools, which the gateway
uses when installed, and h11). The header deadline is 0.5 s; every socket read
waits up to 10 s, so a gateway that never closes a stalled connection fails the
test instead of hanging it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from r2router_core import ConfigError, R2Router
from r2router_integrations.server import create_app
from r2router_integrations.server.header_timeout import header_timeout_protocol
from r2router_integrations.server.upstreams import load_upstreams

from .support import ENV, MATH_PROMPT, ServerThread, Stub, metric_delta, metric_samples

HEADER_TIMEOUT = 0.5
CHAT = "/v1/chat/completions"
READ_LIMIT = 10.0


@pytest.fixture(scope="module", params=["httptools", "h11"])
def slow_guard(request: pytest.FixtureRequest, router: R2Router, upstreams_file: Path) -> Iterator[ServerThread]:
    """A gateway with a 0.5 s header deadline and a 1 s body deadline, on one HTTP parser."""
    app = create_app(router, load_upstreams(upstreams_file, router.config, environ=ENV), body_timeout=1.0)
    with ServerThread(app, http=header_timeout_protocol(HEADER_TIMEOUT, http=request.param)) as server:
        yield server


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (10 s at most per read)."""
    sock.settimeout(READ_LIMIT)
    received = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return received
        received += data


def _chat(server: ServerThread) -> httpx.Response:
    body = {"model": "r2router", "messages": [{"role": "user", "content": MATH_PROMPT}]}
    return httpx.post(f"{server.url}{CHAT}", json=body, timeout=10)


def test_half_a_header_then_silence_is_closed_with_a_408(slow_guard: ServerThread, stub: Stub) -> None:
    with socket.create_connection(("127.0.0.1", slow_guard.port), timeout=READ_LIMIT) as sock:
        sock.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Ty".encode())
        answer = _until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"connection: close" in answer.lower()
    assert stub.requests == []


def test_a_connection_that_sends_nothing_is_closed(slow_guard: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", slow_guard.port), timeout=READ_LIMIT) as sock:
        assert _until_closed(sock).startswith(b"HTTP/1.1 408")


def test_others_are_served_while_a_slow_client_stalls(slow_guard: ServerThread, stub: Stub) -> None:
    with socket.create_connection(("127.0.0.1", slow_guard.port), timeout=READ_LIMIT) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHo")
        answers = [_chat(slow_guard) for _ in range(3)]
        assert _until_closed(sock).startswith(b"HTTP/1.1 408")
    assert [a.status_code for a in answers] == [200, 200, 200]


def test_a_stalled_body_gets_the_apps_408_not_the_header_one(slow_guard: ServerThread, stub: Stub) -> None:
    before = metric_samples(slow_guard.url)
    head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    with socket.create_connection(("127.0.0.1", slow_guard.port), timeout=READ_LIMIT) as sock:
        sock.sendall(head.encode() + b'{"model": ')  # headers complete, body stalls past 1 s
        sock.settimeout(READ_LIMIT)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer  # the app's JSON error: the header deadline did not cut in
    after = metric_samples(slow_guard.url)
    timeouts = metric_delta(
        before, after, "r2router_errors_total", type="invalid_request_error", code="request_timeout"
    )
    assert timeouts == 1
    assert stub.requests == []


def test_an_idle_keep_alive_connection_outlives_the_header_deadline(slow_guard: ServerThread, stub: Stub) -> None:
    body = b'{"model": "r2router", "messages": [{"role": "user", "content": "hi"}]}'
    request = (
        f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", slow_guard.port), timeout=READ_LIMIT) as sock:
        for _ in range(2):  # idle for twice the header deadline between them (uvicorn's keep-alive is 5 s)
            sock.sendall(request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(2 * HEADER_TIMEOUT)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), True, "10"])
def test_a_bad_header_timeout_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="header timeout"):
        header_timeout_protocol(bad)  # type: ignore[arg-type]


def test_an_unknown_parser_is_refused() -> None:
    with pytest.raises(ConfigError, match="'h11'"):
        header_timeout_protocol(1.0, http="zttp")
