"""The optional bearer token, and keys that never show in responses or logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from r2router_core import R2Router

from .support import KEYS, MATH_PROMPT, ServerThread, Stub, start_gateway

TOKEN = "gw-token-5f1c2a9e7b"
MESSAGES = [{"role": "user", "content": MATH_PROMPT}]


@pytest.fixture(scope="module")
def locked(router: R2Router, upstreams_file: Path) -> Iterator[ServerThread]:
    server = start_gateway(router, upstreams_file, api_key=TOKEN)
    yield server
    server.__exit__()


def _client(server: ServerThread, key: str) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=10)


def test_the_right_token_is_let_through_and_not_forwarded(locked: ServerThread, stub: Stub) -> None:
    completion = _client(locked, TOKEN).chat.completions.create(model="r2router", messages=MESSAGES)
    assert completion.choices[0].message.content == "answer from large"
    assert stub.requests[0].headers["authorization"] == f"Bearer {KEYS['large']}"  # the upstream's key, not ours
    assert TOKEN not in str(stub.requests[0].headers)


@pytest.mark.parametrize("key", ["wrong-token", TOKEN + "x", TOKEN[:-1]])
def test_a_wrong_token_is_a_401_on_every_protected_route(locked: ServerThread, stub: Stub, key: str) -> None:
    client = _client(locked, key)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="r2router", messages=MESSAGES)
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    headers = {"authorization": f"Bearer {key}"}
    for method, path in [("POST", "/v1/route"), ("GET", "/metrics"), ("GET", "/v1/nothing")]:
        resp = httpx.request(method, f"{locked.url}{path}", headers=headers, json={"prompt": "p"})
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
    assert stub.requests == []


@pytest.mark.parametrize("header", [None, "Basic abc", f"Token {TOKEN}", "Bearer"])
def test_a_missing_or_malformed_header_is_a_401(locked: ServerThread, header: str | None) -> None:
    headers = {} if header is None else {"authorization": header}
    resp = httpx.post(f"{locked.url}/v1/chat/completions", headers=headers, json={"model": "r2router"})
    assert resp.status_code == 401
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}


def test_health_needs_no_token(locked: ServerThread) -> None:
    assert httpx.get(f"{locked.url}/health").status_code == 200


def test_metrics_and_route_work_with_the_token(locked: ServerThread) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{locked.url}/metrics", headers=headers).status_code == 200
    assert httpx.post(f"{locked.url}/v1/route", headers=headers, json={"prompt": MATH_PROMPT}).status_code == 200


def test_keys_never_appear_in_responses_or_logs(
    locked: ServerThread, stub: Stub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = _client(locked, TOKEN)
    seen: list[str] = []

    def call(**kwargs: Any) -> None:
        try:
            raw = client.chat.completions.with_raw_response.create(model="r2router", messages=MESSAGES, **kwargs)
            seen.append(raw.http_response.text + str(raw.headers))
        except openai.APIStatusError as exc:
            seen.append(exc.response.text + str(exc.response.headers))

    stub.behaviour["large"].status = 401  # an upstream that echoes the key it got, as some providers partly do
    stub.behaviour["large"].echo_key = True
    call()
    assert "[redacted]" in seen[-1] and stub.requests[-1].headers["authorization"].endswith(KEYS["large"])
    stub.behaviour["large"].status = 500  # fallback, logged
    stub.behaviour["medium"].delay = 3.0  # timeout, logged
    call()
    for name in ("large", "medium", "small"):
        stub.behaviour[name].status = 503
    call()  # 502, every failure logged
    call(stream=True)
    call(extra_body={"r2router": {"allowed_models": ["nope"]}})
    seen.append(httpx.get(f"{locked.url}/metrics", headers={"authorization": f"Bearer {TOKEN}"}).text)
    seen.append(httpx.get(f"{locked.url}/metrics", headers={"authorization": "Bearer guess"}).text)
    assert len(stub.requests) >= 8
    assert "failed: large: HTTP 500" in caplog.text and "no answer within" in caplog.text  # logs were seen
    text = "\n".join(seen) + caplog.text
    for secret in (*KEYS.values(), TOKEN):
        assert secret not in text
