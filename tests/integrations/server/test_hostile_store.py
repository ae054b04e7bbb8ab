"""Hostile values through the gateway's log and /v1/feedback, on SQLite and PostgreSQL (issue 23 items 3 and 6).

An upstream answering a ``finish_reason`` of 500 characters or with NUL, or
``completion_tokens`` of 3e9, and a prompt holding NUL (``keep_text``), each
lost 12-19 rows of other requests on PostgreSQL; bad feedback fields answered 500.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from r2router_core import R2Router
from r2router_core.store.decision_log import DecisionLog

from .support import POOL, Samples, ServerThread, Stub, completion, start_gateway

KEY = "sk-hostile-store"
MATH = "math question number 3"


@pytest.fixture
def logged(router: R2Router, upstreams_file: Path, store_url: str) -> Iterator[tuple[ServerThread, DecisionLog]]:
    log = DecisionLog(store_url, keep_text=True)
    server = start_gateway(router, upstreams_file, store=log, api_key=KEY, escalation=False)
    yield server, log
    server.__exit__()


def _post(server: ServerThread, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers={"authorization": f"Bearer {KEY}"}, timeout=20)


def _chat(server: ServerThread, prompt: str) -> httpx.Response:
    return _post(
        server, "/v1/chat/completions", {"model": "r2router", "messages": [{"role": "user", "content": prompt}]}
    )


def _metrics(server: ServerThread) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{server.url}/metrics", headers={"authorization": f"Bearer {KEY}"}, timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _hostile_answer(**change: Any) -> bytes:
    answer = completion("upstream", "a hostile answer\x00 with NUL")
    answer["choices"][0]["finish_reason"] = change.get("finish_reason", "stop")
    answer["usage"] = {"prompt_tokens": 5, "completion_tokens": change.get("completion_tokens", 3)}
    return json.dumps(answer).encode()


def _rows(log: DecisionLog, ids: set[str], timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log.flush(timeout=timeout)
        rows = {r.id: r for r in log.store.decisions() if r.id in ids}
        if len(rows) == len(ids):
            return rows
        time.sleep(0.05)
    return {r.id: r for r in log.store.decisions() if r.id in ids}


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("long_finish_reason", {"finish_reason": "x" * 500}),
        ("nul_finish_reason", {"finish_reason": "st\x00p"}),
        ("huge_completion_tokens", {"completion_tokens": 3_000_000_000}),
    ],
)
def test_a_hostile_upstream_answer_loses_no_other_row(
    logged: tuple[ServerThread, DecisionLog], stub: Stub, name: str, change: dict[str, Any]
) -> None:
    server, log = logged
    for model in POOL:  # every arm answers the hostile body
        stub.behaviour[model].raw = (_hostile_answer(**change),)
    prompts = [f"{MATH} \x00 hostile {i}" if i % 3 == 0 else f"{MATH} {i}" for i in range(18)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda p: _chat(server, p), prompts))
    assert [a.status_code for a in answers] == [200] * len(prompts)
    ids = {a.headers["x-r2router-decision-id"] for a in answers}
    rows = _rows(log, ids)
    assert set(rows) == ids  # every request's row, none lost to a neighbour's bad value
    stats = log.stats
    assert (stats.failed, stats.rejected) == (0, 0)
    some = next(iter(rows.values()))
    assert some.finish_reason is not None and len(some.finish_reason) <= 40 and "\x00" not in some.finish_reason
    assert some.answer is not None and "\x00" not in some.answer
    if name == "huge_completion_tokens":
        assert some.output_tokens == 2**31 - 1
    nul_prompts = [r.prompt for r in rows.values() if r.prompt is not None and "hostile" in r.prompt]
    assert len(nul_prompts) == 6 and all("\x00" not in p and "\ufffd" in p for p in nul_prompts)
    counted = _metrics(server)
    assert counted[("r2router_decision_log_total", (("outcome", "written"),))] == len(prompts)
    assert counted[("r2router_decision_log_total", (("outcome", "rejected"),))] == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"source": "s" * 201}, "source"),
        ({"source": "user\x00x"}, "source"),
        ({"source": ""}, "source"),
        ({"source": ["a", "list"]}, "source"),
        ({"source": "grader:numeric"}, "source"),  # only collect's graders write grader:*
        ({"source": "Grader:exact"}, "source"),
        ({"id": "d\x00x"}, "id"),
        ({"id": "d" * 65}, "id"),
        ({"quality": "high"}, "quality"),
    ],
)
def test_bad_feedback_is_a_400_naming_the_field(
    logged: tuple[ServerThread, DecisionLog], stub: Stub, body: dict[str, Any], param: str
) -> None:
    server, log = logged
    answer = _chat(server, MATH)
    decision_id = answer.headers["x-r2router-decision-id"]
    response = _post(server, "/v1/feedback", {"id": decision_id, "quality": 0.5, **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert log.store.feedback() == []
    ok = _post(server, "/v1/feedback", {"id": decision_id, "quality": 0.5, "source": "user:" + "u" * 195})
    assert ok.status_code == 204
    assert len(log.store.feedback()) == 1
