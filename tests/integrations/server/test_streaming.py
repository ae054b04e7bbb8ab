"""stream: true is proxied chunk by chunk; a client that goes away cancels the upstream call."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from .support import MATH_PROMPT, ServerThread, Stub

MESSAGES = [{"role": "user", "content": MATH_PROMPT}]  # routed to the large model at 400 tokens


def _stream(client: OpenAI) -> Any:
    return client.chat.completions.with_streaming_response.create(model="r2router", messages=MESSAGES, stream=True)


def test_chunks_arrive_as_the_upstream_sends_them(client: OpenAI, stub: Stub) -> None:
    stub.behaviour["large"].events = 4
    stub.behaviour["large"].event_delay = 0.25
    start = time.monotonic()
    arrivals, texts, models = [], [], set()
    with _stream(client) as resp:
        headers_at = time.monotonic()
        assert resp.headers["x-r2router-model"] == "large" and resp.headers["x-r2router-budget"] == "400"
        assert resp.headers["content-type"].startswith("text/event-stream")
        for chunk in resp.parse():
            arrivals.append(time.monotonic())
            models.add(chunk.model)
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)
    emitted = stub.emitted
    assert texts == ["tok0 ", "tok1 ", "tok2 ", "tok3 "]
    assert models == {"acme/large-1"}  # each chunk names the pool model
    assert len(emitted) == 4 and emitted[0] >= start
    # headers and each content chunk reach the client before the upstream emits the next one
    assert headers_at < emitted[1]
    for i in range(3):
        assert arrivals[i] < emitted[i + 1], f"chunk {i} was held back until chunk {i + 1} existed"
    assert stub.requests[0].body["stream"] is True and stub.requests[0].body["max_completion_tokens"] == 400


def test_a_client_leaving_mid_stream_cancels_the_upstream_stream(client: OpenAI, stub: Stub) -> None:
    stub.behaviour["large"].events = 40
    stub.behaviour["large"].event_delay = 0.05
    with _stream(client) as resp:
        for i, _ in enumerate(resp.parse()):
            if i == 1:
                break  # leaving the block closes the connection
    assert stub.wait_for(("stream_cancelled", "large"))
    assert ("stream_done", "large") not in stub.observed
    assert len(stub.emitted) < 40


def test_a_client_leaving_before_the_answer_cancels_the_upstream_call(gateway: ServerThread, stub: Stub) -> None:
    stub.behaviour["large"].delay = 0.8  # within the upstream timeout: only the client's leaving stops it
    impatient = OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="r2router", messages=MESSAGES)
    assert stub.wait_for(("disconnected", "large"), timeout=2.0)
    assert len(stub.calls("medium")) == 0  # no fallback for a client who left


def test_a_stream_broken_after_the_first_bytes_ends_with_an_error_event(client: OpenAI, stub: Stub) -> None:
    stub.behaviour["large"].events = 5
    stub.behaviour["large"].break_after = 2
    texts = []
    with pytest.raises(openai.APIError, match="interrupted"):
        stream = client.chat.completions.create(model="r2router", messages=MESSAGES, stream=True)
        for chunk in stream:
            texts.append(chunk.choices[0].delta.content)
    assert texts == ["tok0 ", "tok1 "]
    assert stub.calls("medium") == []  # committed to the first upstream: no fallback


@pytest.mark.parametrize("failure", [{"status": 503}, {"delay": 3.0}], ids=["5xx", "timeout"])
def test_a_stream_falls_back_before_its_first_byte(client: OpenAI, stub: Stub, failure: dict[str, Any]) -> None:
    for key, value in failure.items():
        setattr(stub.behaviour["large"], key, value)
    with _stream(client) as resp:
        assert resp.headers["x-r2router-model"] == "medium" and resp.headers["x-r2router-fallbacks"] == "1"
        texts = [c.choices[0].delta.content for c in resp.parse() if c.choices and c.choices[0].delta.content]
    assert texts == ["tok0 ", "tok1 ", "tok2 "]
    assert [r.model for r in stub.requests] == ["large", "medium"]


def test_raw_sse_bytes_end_with_done(gateway: ServerThread, stub: Stub) -> None:
    body = {"model": "r2router", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=5) as resp:
        raw = b"".join(resp.iter_bytes())
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]" and len(events) == 5  # 3 tokens, the stop chunk, [DONE]
