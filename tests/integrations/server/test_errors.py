"""Bad input gets a 4xx in OpenAI's error shape; an unexpected exception is a 500 and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from numpy.typing import NDArray
from openai import OpenAI

from r2router_core import R2Router
from r2router_integrations.server import create_app, load_upstreams

from .support import ENV, MATH_PROMPT, ServerThread, Stub

ERROR_KEYS = {"message", "type", "param", "code"}
JSON = "application/json"


def _post(
    gateway: ServerThread, path: str, content: bytes, content_type: str | None = "application/json"
) -> httpx.Response:
    headers = {} if content_type is None else {"content-type": content_type}
    return httpx.post(f"{gateway.url}{path}", content=content, headers=headers, timeout=5)


def _error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/route"])
@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2, 3]", b"\xff\xfe\x00"])
def test_malformed_json_is_a_400(gateway: ServerThread, stub: Stub, path: str, content: bytes) -> None:
    err = _error(_post(gateway, path, content), 400)
    assert (err["type"], err["code"]) == ("invalid_request_error", "invalid_json")
    assert stub.requests == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_wrong_content_type_is_a_415(gateway: ServerThread, content_type: str | None) -> None:
    err = _error(_post(gateway, "/v1/chat/completions", b'{"model": "r2router"}', content_type), 415)
    assert err["code"] == "unsupported_media_type"


def test_json_with_a_charset_is_accepted(gateway: ServerThread, stub: Stub) -> None:
    body = b'{"model": "r2router", "messages": [{"role": "user", "content": "hi"}]}'
    assert _post(gateway, "/v1/chat/completions", body, "application/json; charset=utf-8").status_code == 200


def test_missing_or_empty_messages_are_400s(client: OpenAI, gateway: ServerThread) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="r2router", messages=[])
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "messages"
    err = _error(_post(gateway, "/v1/chat/completions", b'{"model": "r2router"}'), 400)
    assert err["param"] == "messages" and "required" in err["message"]


def test_an_unknown_model_is_a_404_listing_the_pool(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_found" and body["param"] == "model"
    assert all(name in body["message"] for name in ("r2router", "small", "medium", "large"))


def test_no_user_message_is_a_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="role 'user'"):
        client.chat.completions.create(model="r2router", messages=[{"role": "system", "content": "be brief"}])


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"allowed_models": ["gpt-4o"]}, "model_not_found"),
        ({"max_cost": 0.0}, "no_candidate"),
        ({"lambda": 3}, None),
    ],
)
def test_impossible_routing_options_are_400s(client: OpenAI, stub: Stub, options: dict[str, Any], code: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="r2router", messages=[{"role": "user", "content": "hi"}], extra_body={"r2router": options}
        )
    body = info.value.body
    assert isinstance(body, dict) and body["param"].startswith("r2router")
    if code is not None:
        assert body["code"] == code
    assert stub.requests == []


def test_an_oversized_body_is_a_413(client: OpenAI, gateway: ServerThread, stub: Stub) -> None:
    big = "word " * 5000  # 25 kB, over the test gateway's 20 kB
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="r2router", messages=[{"role": "user", "content": big}])
    assert info.value.status_code == 413
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no content-length: counted while reading
        yield b'{"model": "r2router", "messages": [{"role": "user", "content": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}]}'

    resp = httpx.post(
        f"{gateway.url}/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}, timeout=5
    )
    assert "transfer-encoding" in resp.request.headers
    assert _error(resp, 413)["code"] == "request_too_large"
    assert stub.requests == []


def test_unknown_paths_and_methods_answer_in_the_error_shape(gateway: ServerThread) -> None:
    assert _error(httpx.get(f"{gateway.url}/v1/nothing", timeout=5), 404)["code"] == "not_found"
    assert _error(httpx.get(f"{gateway.url}/v1/chat/completions", timeout=5), 405)["code"] == "method_not_allowed"


def test_the_server_survives_every_bad_request(client: OpenAI, gateway: ServerThread, stub: Stub) -> None:
    for content in (b"{", b"null", b'{"messages": 5}', b'{"model": 1, "messages": []}', b"\x00" * 100):
        assert 400 <= _post(gateway, "/v1/chat/completions", content).status_code < 500
    assert httpx.get(f"{gateway.url}/health", timeout=5).status_code == 200
    completion = client.chat.completions.create(model="r2router", messages=[{"role": "user", "content": MATH_PROMPT}])
    assert completion.choices[0].message.content == "answer from large"


class _ExplodingEmbedder:
    """The router's own embedder, except that it raises on prompts containing 'explode'."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.id = inner.id
        self.dim = inner.dim

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if any("explode" in t for t in texts):
            raise RuntimeError("embedder crashed")
        return np.asarray(self._inner.embed(texts), dtype=np.float32)


def test_an_unexpected_exception_is_a_500_and_the_server_keeps_serving(
    router: R2Router, upstreams_file: Path, stub: Stub, caplog: pytest.LogCaptureFixture
) -> None:
    fragile = router.with_settings()
    fragile.embedder = _ExplodingEmbedder(router.embedder)
    app = create_app(fragile, load_upstreams(upstreams_file, router.config, environ=ENV))
    with ServerThread(app) as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="r2router", messages=[{"role": "user", "content": "explode now"}])
        assert isinstance(info.value.body, dict) and info.value.body["code"] == "internal_error"
        assert "crashed" not in info.value.body["message"]  # internals stay in the log
        ok = client.chat.completions.create(model="r2router", messages=[{"role": "user", "content": MATH_PROMPT}])
        assert ok.choices[0].message.content == "answer from large"
        route = httpx.post(f"{server.url}/v1/route", json={"prompt": "explode"}, timeout=5)
        assert _error(route, 500)["type"] == "server_error"
    assert "embedder crashed" in caplog.text
