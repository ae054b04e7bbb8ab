"""A client trickling a body after the gateway answered is disconnected, whatever the status (issue 23 item 6).

Before: a client without the key announcing a 100 MB body and sending a few bytes
a second got its 401 at once, and then kept the connection for as long as it
trickled (300 of 300 still open after 75 s). Raw sockets on 127.0.0.1, bounded.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from r2router_core import R2Router

from .support import ServerThread, start_gateway

KEY = "sk-trickle"
BODY_TIMEOUT = 1.5
CONNECTIONS = 20


@pytest.fixture
def gateway_with_key(router: R2Router, upstreams_file: Path) -> Iterator[ServerThread]:
    server = start_gateway(router, upstreams_file, api_key=KEY, body_timeout=BODY_TIMEOUT)
    yield server
    server.__exit__()


def _open(port: int, path: str, key: str | None, content_type: str = "application/json") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    auth = f"authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: {content_type}\r\n{auth}"
        f"content-length: {100 * 1024 * 1024}\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"model": "r2router", ')
    return sock


def _closed_within(socks: list[socket.socket], seconds: float) -> tuple[list[bytes], int]:
    """Trickle one byte per socket every 0.1 s for up to ``seconds``; ``(first bytes read, sockets still open)``."""
    first = [b""] * len(socks)
    open_ = set(range(len(socks)))
    deadline = time.monotonic() + seconds
    for sock in socks:
        sock.settimeout(0.01)
    while open_ and time.monotonic() < deadline:
        for i in list(open_):
            try:
                data = socks[i].recv(65536)
                if not data:  # the server closed it
                    open_.discard(i)
                    continue
                first[i] = first[i] or data
            except TimeoutError:
                pass
            except OSError:  # reset by the server
                open_.discard(i)
                continue
            try:
                socks[i].send(b" ")
            except OSError:
                open_.discard(i)
        time.sleep(0.1)
    for sock in socks:
        sock.close()
    return first, len(open_)


@pytest.mark.parametrize(
    ("path", "key", "content_type", "status"),
    [
        ("/v1/chat/completions", None, "application/json", b"401"),  # no key: answered at once
        ("/v1/chat/completions", KEY, "text/plain", b"415"),  # answered before the body was read
        ("/v1/nowhere", KEY, "application/json", b"404"),
        ("/v1/route", KEY, "application/json", b"413"),  # content-length over the limit
    ],
)
def test_a_trickled_body_after_the_answer_is_closed(
    gateway_with_key: ServerThread, path: str, key: str | None, content_type: str, status: bytes
) -> None:
    socks = [_open(gateway_with_key.port, path, key, content_type) for _ in range(CONNECTIONS)]
    first, still_open = _closed_within(socks, BODY_TIMEOUT + 3)
    assert still_open == 0
    assert all(f.startswith(b"HTTP/1.1 " + status) for f in first), first[0][:80]


def test_a_body_trickled_slower_than_the_body_timeout_gets_408_and_is_closed(
    router: R2Router, upstreams_file: Path
) -> None:
    server = start_gateway(router, upstreams_file, api_key=KEY, body_timeout=BODY_TIMEOUT, max_body_bytes=200 * 2**20)
    try:
        socks = [_open(server.port, "/v1/chat/completions", KEY) for _ in range(CONNECTIONS)]
        started = time.monotonic()
        first, still_open = _closed_within(socks, BODY_TIMEOUT + 3)
        assert still_open == 0
        assert time.monotonic() - started < BODY_TIMEOUT + 3
        assert all(f.startswith(b"HTTP/1.1 408") for f in first), first[0][:80]
    finally:
        server.__exit__()


def test_the_h11_parser_closes_a_trickled_body_too(router: R2Router, upstreams_file: Path) -> None:
    """The close comes from the app (``connection: close``), so uvicorn's other HTTP parser honours it as well."""
    from r2router_integrations.server import create_app, load_upstreams

    from .support import ENV

    upstreams = load_upstreams(upstreams_file, router.config, environ=ENV)
    app = create_app(router, upstreams, api_key=KEY, body_timeout=BODY_TIMEOUT)
    with ServerThread(app, http="h11") as server:
        socks = [_open(server.port, "/v1/chat/completions", None) for _ in range(CONNECTIONS)]
        first, still_open = _closed_within(socks, BODY_TIMEOUT + 3)
    assert still_open == 0
    assert all(f.startswith(b"HTTP/1.1 401") for f in first), first[0][:80]
