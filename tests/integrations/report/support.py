"""A gateway on loopback logging to a store, and traffic through it (the dashboard and browser tests)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from r2router_core import DecisionLog, R2Router
from tests.integrations.server.support import ServerThread, start_gateway

KEY = "sk-dashboard-test"
PROMPTS = ("math question number 3", "poem question about the sea", "math question number 11", "poem question number 2")


@contextmanager
def logged_gateway(
    router: R2Router, upstreams_file: Path, store: Path, *, api_key: str | None = KEY
) -> Iterator[tuple[ServerThread, DecisionLog]]:
    """A gateway whose decision log writes to ``store``."""
    log = DecisionLog(store)
    server = start_gateway(router, upstreams_file, store=log, api_key=api_key)
    try:
        yield server, log
    finally:
        server.__exit__()
        log.close()


def headers(key: str | None = KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


def send_traffic(server: ServerThread, log: DecisionLog, n: int, *, feedback_every: int = 2) -> list[str]:
    """``n`` routed chats (and feedback on every ``feedback_every``-th); returns their decision ids, once logged."""
    ids = []
    with httpx.Client(base_url=server.url, headers=headers(), timeout=10) as client:
        for i in range(n):
            body = {"model": "r2router", "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}
            answer = client.post("/v1/chat/completions", json=body)
            assert answer.status_code == 200, answer.text
            ids.append(answer.headers["x-r2router-decision-id"])
        deadline = time.monotonic() + 10
        while log.store.count_decisions() < n and time.monotonic() < deadline:
            log.flush(timeout=5)
            time.sleep(0.02)
        assert log.store.count_decisions() >= n
        for i, decision_id in enumerate(ids):
            if i % feedback_every == 0:
                sent = client.post("/v1/feedback", json={"id": decision_id, "quality": 0.25 + 0.5 * (i % 3 == 0)})
                assert sent.status_code == 204, sent.text
    return ids
