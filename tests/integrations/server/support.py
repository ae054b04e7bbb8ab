"""Helpers of the gateway tests: real uvicorn servers on loopback, stub upstreams that record what they get.

One stub server serves every pool model under its own path prefix
(``http://127.0.0.1:PORT/<model>/v1/chat/completions``); each test sets how
each model behaves (answer, fail with a status, stall, stream, break mid-stream)
and reads back the requests it recorded. The gateways run in the same process,
each in its own thread, so tests reach them with the official ``openai`` client.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.testing import HashEmbedder
from r2router_integrations.server import create_app, load_upstreams

POOL = ("small", "medium", "large")
PARAMS = {"small": "max_tokens", "medium": "max_output_tokens", "large": "max_completion_tokens"}
KEYS = {name: f"sk-test-{name}-0123456789abcdef" for name in POOL}
MATH_PROMPT = "math question about algebra"
POEM_PROMPT = "poem question about the sea"
UPSTREAM_TIMEOUT = 1.0


# -- servers in threads -------------------------------------------------------------------
class ServerThread:
    """A uvicorn server on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(self, app: Any, **config_options: Any) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1, **config_options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- the stub upstream --------------------------------------------------------------------
@dataclass
class Behaviour:
    """How one stub model answers.

    Attributes:
        status: HTTP status of the answer (non-2xx: an OpenAI error body).
        delay: Seconds to wait before answering (the stub notices a disconnect meanwhile).
        events: Content chunks of a streamed answer.
        event_delay: Seconds between streamed chunks.
        break_after: Raise after this many streamed chunks (the connection drops mid-stream).
        echo_key: Put the received Authorization header into an error message.
        garbage: Answer 200 with a body that is not JSON.
        headers: Extra response headers of a failing answer (``Retry-After``, ``x-ratelimit-*``...).
        fail_times: Fail with ``status`` only this many times, then answer normally (``None``: always).
        raw: Answer 200 with these body chunks, as given (``event_delay`` apart), instead of a completion.
        raw_media_type: The content type of a ``raw`` answer.
        fail_rate: Fail with ``status`` (at least 500) at this rate, drawn from ``rng`` (``None``: ``status`` decides).
        cut_below: Answer with finish reason ``length`` (and as many completion tokens as the cap)
            when the request's output cap is below this (``None``: never cut).
        usage: Report usage (``False``: a provider that reports no token counts).
        stream_usage: Each streamed chunk carries the usage so far (5 prompt tokens, one per chunk).
    """

    status: int = 200
    delay: float = 0.0
    events: int = 3
    event_delay: float = 0.0
    break_after: int | None = None
    echo_key: bool = False
    garbage: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    fail_times: int | None = None
    raw: tuple[bytes, ...] | None = None
    raw_media_type: str = "application/json"
    fail_rate: float | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    failed: int = 0
    cut_below: int | None = None
    usage: bool = True
    stream_usage: bool = False


@dataclass
class Recorded:
    model: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Stub:
    """Behaviours, recorded requests and observations of the stub upstream."""

    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    observed: list[tuple[str, str]] = field(default_factory=list)
    emitted: list[float] = field(default_factory=list)

    def reset(self) -> None:
        self.behaviour = {name: Behaviour() for name in POOL}
        self.requests.clear()
        self.observed.clear()
        self.emitted.clear()

    def calls(self, model: str) -> list[Recorded]:
        return [r for r in self.requests if r.model == model]

    def wait_for(self, what: tuple[str, str], timeout: float = 3.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if what in self.observed:
                return True
            time.sleep(0.02)
        return False


def completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


def chunk(model: str, text: str | None, finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    delta = {} if text is None else {"content": text}
    data: dict[str, Any] = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def stub_app(stub: Stub) -> Starlette:
    async def chat(request: Request) -> Response:
        name = request.path_params["model"]
        body = await request.json()
        stub.requests.append(Recorded(name, dict(request.headers), body))
        how = stub.behaviour[name]
        if how.fail_rate is not None:
            if how.rng.random() < how.fail_rate:
                how.failed += 1
                return JSONResponse({"error": {"message": "stub fails at random"}}, status_code=how.status)
            return JSONResponse(completion(body["model"], f"answer from {name}"))
        if how.delay and await _sleep_unless_disconnected(request, how.delay):
            stub.observed.append(("disconnected", name))
            return Response(status_code=499)
        if how.status >= 400:
            message = f"stub {name} fails with {how.status}"
            if how.echo_key:
                message += f"; you sent {request.headers.get('authorization')}"
            err = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "stub"}}
            if how.fail_times is None or how.fail_times > 0:
                if how.fail_times is not None:
                    how.fail_times -= 1
                return JSONResponse(err, status_code=how.status, headers=how.headers)
        if how.raw is not None:
            return StreamingResponse(_drip(how.raw, how.event_delay), media_type=how.raw_media_type)
        if how.garbage:
            return Response(b"<html>upstream proxy page</html>", media_type="text/html")
        if body.get("stream"):
            return StreamingResponse(_events(stub, name, body["model"], how), media_type="text/event-stream")
        answer = completion(body["model"], f"answer from {name}")
        cap = next((body[k] for k in ("max_tokens", "max_completion_tokens", "max_output_tokens") if k in body), None)
        if how.cut_below is not None and cap is not None and cap < how.cut_below:
            answer["choices"][0]["finish_reason"] = "length"
            answer["choices"][0]["message"]["content"] = f"cut answer from {name}"
            answer["usage"] = {"prompt_tokens": 5, "completion_tokens": cap, "total_tokens": 5 + cap}
        if not how.usage:
            del answer["usage"]
        return JSONResponse(answer)

    return Starlette(routes=[Route("/{model}/v1/chat/completions", chat, methods=["POST"])])


async def _sleep_unless_disconnected(request: Request, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(0.02)
    return False


async def _drip(chunks: tuple[bytes, ...], delay: float) -> AsyncIterator[bytes]:
    for i, part in enumerate(chunks):
        if i and delay:
            await asyncio.sleep(delay)
        yield part


async def _events(stub: Stub, name: str, model: str, how: Behaviour) -> AsyncIterator[bytes]:
    try:
        for i in range(how.events):
            if how.break_after is not None and i == how.break_after:
                raise RuntimeError("stub drops the stream")
            if i and how.event_delay:
                await asyncio.sleep(how.event_delay)
            stub.emitted.append(time.monotonic())
            usage = {"prompt_tokens": 5, "completion_tokens": i + 1} if how.stream_usage else None
            yield chunk(model, f"tok{i} ", usage=usage)
        yield chunk(model, None, "stop")
        yield b"data: [DONE]\n\n"
        stub.observed.append(("stream_done", name))
    except (asyncio.CancelledError, GeneratorExit):
        stub.observed.append(("stream_cancelled", name))
        raise


# -- the router and the gateways ----------------------------------------------------------
def build_router() -> R2Router:
    """Three models, two topics: math needs the large model at 400 tokens, poems are fine on the small one at 100.

    On math the medium model is best uncapped, the small one at 400 (its 400 and uncapped arms tie).
    """
    embedder = HashEmbedder(dim=32)
    prompts = [f"{topic} question number {i}" for topic in ("math", "poem") for i in range(20)]
    quality = np.zeros((40, 3, 3))
    # budgets (100, 400, uncapped); models small, medium, large
    quality[:20] = [[0.10, 0.15, 0.15], [0.30, 0.40, 0.45], [0.50, 0.95, 0.90]]
    quality[20:] = 0.9
    config = RouterConfig(
        models=(
            ModelSpec("small", output_price=0.5, full_name="acme/small-1"),
            ModelSpec("medium", output_price=2.0, full_name="acme/medium-1"),
            ModelSpec("large", output_price=10.0, full_name="acme/large-1"),
        ),
        budgets=(100, 400, None),
        lambda_=0.9,
        k=5,
        embedder=embedder.id,
    )
    data = TrainingData(embedder.embed(prompts), POOL, (100, 400, None), quality, np.full((40, 3), 300.0))
    return R2Router(config, data, embedder=embedder)


def write_upstreams(
    path: Path, base_url: str, *, timeout: float = UPSTREAM_TIMEOUT, models: tuple[str, ...] = POOL, **limits: float
) -> Path:
    """An upstreams file pointing every pool model at the stub; ``limits``: more defaults (deadline, ...)."""
    lines = [
        "defaults:",
        f"  timeout: {timeout}",
        *(f"  {key}: {value}" for key, value in limits.items()),
        "upstreams:",
    ]
    for name in models:
        lines += [
            f"  {name}:",
            f"    base_url: {base_url}/{name}/v1",
            f"    model: upstream-{name}-id",
            f"    api_key_env: STUB_KEY_{name.upper()}" if name in KEYS else "",
            f"    max_tokens_param: {PARAMS.get(name, 'max_tokens')}",
            "    headers: {X-Stub: stub-1}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


ENV = {f"STUB_KEY_{name.upper()}": key for name, key in KEYS.items()}


def start_gateway(router: R2Router, upstreams_file: Path, **options: Any) -> ServerThread:
    upstreams = load_upstreams(upstreams_file, router.config, environ=ENV)
    return ServerThread(create_app(router, upstreams, **options)).__enter__()


# -- reading /metrics ---------------------------------------------------------------------
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metric_samples(url: str) -> Samples:
    """Every sample of the gateway's ``/metrics``, keyed by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    resp = httpx.get(f"{url}/metrics", timeout=5)
    assert resp.status_code == 200
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric_delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)
