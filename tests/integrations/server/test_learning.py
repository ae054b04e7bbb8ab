"""The gateway's decision ids, decision log (--store) and POST /v1/feedback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray

from r2router_core import R2Router
from r2router_core.store import DecisionRecord
from r2router_core.store.decision_log import DecisionLog

from .support import ServerThread, Stub, start_gateway

MATH = "math question number 3"
KEY = "sk-gateway-test"


@pytest.fixture
def logged(router: R2Router, upstreams_file: Path, tmp_path: Path) -> Iterator[tuple[ServerThread, DecisionLog]]:
    log = DecisionLog(tmp_path / "log.db")
    server = start_gateway(router, upstreams_file, store=log, api_key=KEY)
    yield server, log
    server.__exit__()


class CountingEmbedder:
    """Wraps an embedder and records the texts of every call."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.id = inner.id
        self.dim = inner.dim
        self.texts: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.texts.append(list(texts))
        return np.asarray(self._inner.embed(texts), dtype=np.float32)


def _row(log: DecisionLog, decision_id: str, timeout: float = 10.0) -> DecisionRecord | None:
    """The logged row, once the gateway queued it (after the answer went out) and the writer wrote it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log.flush(timeout=timeout)
        row = log.store.decision(decision_id)
        if row is not None:
            return row
        time.sleep(0.02)
    return None


def _post(server: ServerThread, path: str, body: dict, key: str | None = KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=10)


def _chat(server: ServerThread, stream: bool = False) -> httpx.Response:
    body = {"model": "r2router", "messages": [{"role": "user", "content": MATH}], "stream": stream}
    return _post(server, "/v1/chat/completions", body)


def test_the_answer_carries_its_decision_id_in_body_header_and_stream(
    logged: tuple[ServerThread, DecisionLog], stub: Stub
) -> None:
    server, log = logged
    answer = _chat(server)
    assert answer.status_code == 200
    decision_id = answer.headers["x-r2router-decision-id"]
    assert answer.json()["id"] == decision_id and len(decision_id) == 32
    streamed = _chat(server, stream=True)
    stream_id = streamed.headers["x-r2router-decision-id"]
    ids = {json.loads(line[6:])["id"] for line in streamed.text.splitlines() if line.startswith("data: {")}
    assert ids == {stream_id} and stream_id != decision_id
    row = _row(log, decision_id)
    assert row is not None and row.source == "gateway"
    assert (row.model, row.budget) == (answer.headers["x-r2router-model"], 400)
    assert (row.input_tokens, row.output_tokens, row.finish_reason) == (5, 3, "stop")
    assert row.prompt is None and row.answer is None and row.embedding is not None
    stream_row = _row(log, stream_id)
    assert stream_row is not None and stream_row.finish_reason == "stop"


def test_feedback_is_stored_and_validated_behind_the_key(logged: tuple[ServerThread, DecisionLog], stub: Stub) -> None:
    server, log = logged
    decision_id = _chat(server).headers["x-r2router-decision-id"]
    assert _post(server, "/v1/feedback", {"id": decision_id, "quality": 0.8}).status_code == 204
    assert [f.quality for f in log.store.feedback(decision_id)] == [0.8]
    unknown = _post(server, "/v1/feedback", {"id": "0" * 32, "quality": 0.8})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "decision_not_found"
    for bad in (1.5, -1, "high", None):
        response = _post(server, "/v1/feedback", {"id": decision_id, "quality": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["param"] == "quality"
    assert _post(server, "/v1/feedback", {"id": decision_id, "quality": 0.1}, key=None).status_code == 401
    assert len(log.store.feedback(decision_id)) == 1
    metrics = httpx.get(f"{server.url}/metrics", headers={"authorization": f"Bearer {KEY}"}).text
    assert 'r2router_decision_log_total{outcome="written"}' in metrics


def test_a_gateway_without_a_store_still_gives_ids_and_refuses_feedback(gateway: ServerThread, stub: Stub) -> None:
    answer = _chat(gateway)
    assert answer.json()["id"] == answer.headers["x-r2router-decision-id"]
    refused = _post(gateway, "/v1/feedback", {"id": answer.json()["id"], "quality": 1.0}, key=None)
    assert refused.status_code == 404 and "--store" in refused.json()["error"]["message"]


def test_a_cut_answer_is_asked_again_with_more_room(
    logged: tuple[ServerThread, DecisionLog], stub: Stub, router: R2Router
) -> None:
    server, log = logged
    for how in stub.behaviour.values():
        how.cut_below = 256  # the stub cuts maths answers below 256 tokens
    body = {"model": "r2router", "messages": [{"role": "user", "content": MATH}], "r2router": {"lambda": 1.0}}
    answer = _post(server, "/v1/chat/completions", body)  # lambda 1: the cheapest arm, small @ 100
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["finish_reason"] == "stop"
    assert answer.json()["choices"][0]["message"]["content"] == "answer from small"
    (cut,) = json.loads(answer.headers["x-r2router-escalations"])
    assert (cut["model"], cut["token_limit"], cut["finish_reason"]) == ("small", 100, "length")
    assert (answer.headers["x-r2router-model"], answer.headers["x-r2router-budget"]) == ("small", "400")
    assert [c.body["max_tokens"] for c in stub.calls("small")] == [100, 400]
    small = router.config.models[0]
    want = (5 * small.input_price + 100 * small.output_price + 5 * small.input_price + 3 * small.output_price) / 1e6
    assert float(answer.headers["x-r2router-cost-usd"]) == pytest.approx(want, rel=1e-5)
    final = _row(log, answer.headers["x-r2router-decision-id"])
    assert final is not None and final.budget == 400 and final.cost_usd == pytest.approx(want)
    first = log.store.decision(final.escalated_from or "")
    assert first is not None and (first.budget, first.finish_reason, first.output_tokens) == (100, "length", 100)


def test_streams_are_not_escalated(logged: tuple[ServerThread, DecisionLog], stub: Stub) -> None:
    server, _ = logged
    for how in stub.behaviour.values():
        how.cut_below = 10_000
    streamed = _chat(server, stream=True)
    assert streamed.status_code == 200 and "x-r2router-escalations" not in streamed.headers
    assert sum(len(stub.calls(m)) for m in ("small", "medium", "large")) == 1


def test_reload_swaps_in_a_router_that_learned_from_feedback(
    router: R2Router, upstreams_file: Path, stub: Stub, tmp_path: Path
) -> None:
    """Adaptation: the large model turns bad on maths, the medium one good; feedback and reloads move the traffic."""
    server = start_gateway(router, upstreams_file, store=tmp_path / "log.db", api_key=KEY)
    try:
        shares = []
        for round_ in range(8):
            models = []
            for i in range(10):
                prompt = f"math question number {100 + 10 * round_ + i}"
                body = {"model": "r2router", "messages": [{"role": "user", "content": prompt}]}
                answer = _post(server, "/v1/chat/completions", body)
                model = answer.headers["x-r2router-model"]
                models.append(model)
                quality = {"large": 0.0, "medium": 1.0}.get(model, 0.2)  # the users' verdict, after the change
                feedback = {"id": answer.headers["x-r2router-decision-id"], "quality": quality}
                assert _post(server, "/v1/feedback", feedback).status_code == 204
            shares.append(models.count("medium") / len(models))
            reloaded = _post(server, "/admin/reload", {})
            assert reloaded.status_code == 200 and reloaded.json()["logged_rows"] == 10 * (round_ + 1)
        assert shares[0] == 0.0  # before any feedback: the large model, as trained
        # after 50 feedback events (5 reloads) most maths goes to medium, and stays there
        assert all(share >= 0.6 for share in shares[5:]), shares
    finally:
        server.__exit__()


def test_reload_needs_a_store_and_the_key(gateway: ServerThread, logged: tuple[ServerThread, DecisionLog]) -> None:
    assert _post(gateway, "/admin/reload", {}, key=None).status_code == 404
    server, _ = logged
    assert _post(server, "/admin/reload", {}, key=None).status_code == 401
    assert _post(server, "/admin/reload", {}).json() == {"logged_rows": 0, "training_rows": 40}


def test_a_router_of_fitted_weights_alone_logs_but_refuses_reloads(
    router: R2Router, upstreams_file: Path, tmp_path: Path
) -> None:
    """A router converted from the research release has no rows to add logged outcomes to: a 409 that says
    what to do, not a 500; a reload schedule is refused before the gateway starts."""
    import shutil

    from r2router_core import ConfigError
    from r2router_integrations.server import create_app, load_upstreams

    from .support import ENV

    saved = router.with_settings(predictor="ridge").save(tmp_path / "ridge")
    shutil.rmtree(saved / "training_data")
    weights = R2Router.from_pretrained(saved, embedder=router.embedder)
    assert not weights.has_training_data
    with pytest.raises(ConfigError, match="--reload-every needs a router with training rows"):
        upstreams = load_upstreams(upstreams_file, weights.config, environ=ENV)
        create_app(weights, upstreams, store=tmp_path / "refused.db", reload_every=60)
    server = start_gateway(weights, upstreams_file, store=tmp_path / "log.db", api_key=KEY)
    try:
        body = {"model": "r2router", "messages": [{"role": "user", "content": "math question number 1"}]}
        assert _post(server, "/v1/chat/completions", body).status_code == 200
        refused = _post(server, "/admin/reload", {})
    finally:
        server.__exit__()
    assert refused.status_code == 409
    assert "r2router train --store URL" in refused.json()["error"]["message"]


def test_exploration_sends_a_share_elsewhere_and_logs_its_propensity(
    router: R2Router, upstreams_file: Path, stub: Stub, tmp_path: Path
) -> None:
    log = DecisionLog(tmp_path / "log.db")
    server = start_gateway(router, upstreams_file, store=log, explore=0.5)
    try:
        ids, models = [], []
        for i in range(40):
            body = {"model": "r2router", "messages": [{"role": "user", "content": f"math question number {i}"}]}
            answer = _post(server, "/v1/chat/completions", body, key=None)
            ids.append(answer.headers["x-r2router-decision-id"])
            models.append(answer.headers["x-r2router-model"])
        rows = [_row(log, i) for i in ids]
    finally:
        server.__exit__()
    assert all(r is not None for r in rows)
    best = router.route_text("math question number 0").model
    explored = [r for r in rows if r is not None and r.propensity < 0.5]
    assert 5 <= len(explored) <= 35 and all(r.model != best or r.budget != 400 for r in explored)
    assert {r.propensity for r in rows if r is not None and r not in explored} == {0.5}
    assert len(set(models)) > 1


def test_a_logged_request_embeds_its_prompt_once(
    router: R2Router, upstreams_file: Path, stub: Stub, tmp_path: Path
) -> None:
    """The log stores the embedding the batcher routed on: one embedder call per request, not two."""
    counting = CountingEmbedder(router.embedder)
    copy = router.with_settings()
    copy.embedder = counting
    log = DecisionLog(tmp_path / "log.db")
    server = start_gateway(copy, upstreams_file, store=log)
    try:
        ids = []
        for _ in range(3):
            answer = _post(
                server,
                "/v1/chat/completions",
                {"model": "r2router", "messages": [{"role": "user", "content": MATH}]},
                key=None,
            )
            assert answer.status_code == 200
            ids.append(answer.headers["x-r2router-decision-id"])
        rows = [_row(log, i) for i in ids]
    finally:
        server.__exit__()
    assert counting.texts == [[MATH]] * 3
    want = router.embed([MATH])[0]
    for row in rows:
        assert row is not None and row.embedding is not None
        np.testing.assert_allclose(row.embedding, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("upstream", "answered"), [(503, 502), (429, 429)])
def test_a_request_whose_every_upstream_failed_is_logged(
    logged: tuple[ServerThread, DecisionLog], stub: Stub, upstream: int, answered: int
) -> None:
    server, log = logged
    for how in stub.behaviour.values():
        how.status = upstream
    failed = _chat(server)
    assert failed.status_code == answered  # a last 429 goes back as the provider sent it
    decision_id = failed.headers["x-r2router-decision-id"]
    row = _row(log, decision_id)
    assert row is not None
    assert (row.status, row.finish_reason, row.output_tokens, row.cost_usd) == ("error", "error", None, 0.0)
    tried = [(a["model"], a["status"]) for a in row.failed_attempts]
    assert tried == [(r.model, upstream) for r in stub.requests] and len(tried) == 3  # every attempt, in order
    last = row.failed_attempts[-1]
    assert (row.model, row.budget) == (last["model"], last["token_limit"])
    assert row.embedding is not None and row.prompt is None
    assert log.store.decisions() == [row]  # one row per request; training skips it (no answer)


@pytest.mark.parametrize("content", ["plain answer", "lone \ud800 surrogate"])
def test_an_answers_facts_are_read_from_the_proxys_object(content: str) -> None:
    """The driver reads finish reason, usage and text from the object the proxy decoded (no second parse)."""
    from r2router_integrations.server.proxy import answer_facts

    choice = {"message": {"content": content}, "finish_reason": "length"}
    data: dict[str, Any] = {"id": "up-1", "model": "m", "choices": [choice]}
    data["usage"] = {"prompt_tokens": 3, "completion_tokens": 7}
    facts = answer_facts(data, keep_text=True)
    assert (facts.finish_reason, facts.input_tokens, facts.output_tokens, facts.text) == ("length", 3, 7, content)
    assert answer_facts(data).text is None
    data["usage"] = {"prompt_tokens": True, "completion_tokens": "7"}  # not counts: unknown, never priced
    assert (answer_facts(data).input_tokens, answer_facts(data).output_tokens) == (None, None)
