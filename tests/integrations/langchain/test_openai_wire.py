"""The real langchain-openai ChatOpenAI client as pool models, over httpx.MockTransport.

Asserts what goes over the wire: the routed budget as ``max_completion_tokens``,
the length instruction, the fallback model's own budget, streaming, tools in
OpenAI's format, and usage counted once.
"""

from __future__ import annotations

import json
import traceback
from typing import Any

import httpx
import openai
import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr

from r2router_core import ConstraintError, R2Router
from r2router_integrations.langchain import METADATA_KEY, R2RouterChatModel
from r2router_integrations.langchain.testing import FakePoolChatModel

from .conftest import CHAT, LONG_ANSWER, MATH


class FakeOpenAI:
    """An in-memory OpenAI chat-completions endpoint that honours ``max_completion_tokens``."""

    def __init__(self, *, failing: tuple[str, ...] = ()) -> None:
        self.failing = set(failing)
        self.bodies: list[dict[str, Any]] = []
        self.usage: dict[str, dict[str, int]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        model = body["model"]
        if model in self.failing:
            return httpx.Response(500, json={"error": {"message": f"{model} is down", "type": "server_error"}})
        words = LONG_ANSWER.split()
        cap, finish = body.get("max_completion_tokens"), "stop"
        if cap is not None and len(words) > cap:
            words, finish = words[:cap], "length"
        n_in = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        usage = {"prompt_tokens": n_in, "completion_tokens": len(words), "total_tokens": n_in + len(words)}
        totals = self.usage.setdefault(model, {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0})
        for key, value in zip(totals, usage.values(), strict=True):
            totals[key] += value
        if body.get("stream"):
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=_sse(model, words, finish, usage)
            )
        content = " ".join(words)
        if body.get("response_format", {}).get("type") in ("json_schema", "json_object"):
            content = json.dumps({"setup": "why?", "punchline": "because"})
        message = {"role": "assistant", "content": content}
        return httpx.Response(
            200,
            json={
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            },
        )


def _sse(model: str, words: list[str], finish: str, usage: dict[str, int]) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model}
    events = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": w + " "}, "finish_reason": None}]}
        for w in words
    ]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    events.append({**base, "choices": [], "usage": usage})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode() + b"data: [DONE]\n\n"


def openai_llm(router: R2Router, server: FakeOpenAI, **settings: Any) -> R2RouterChatModel:
    transport = httpx.MockTransport(server)
    models: dict[str, BaseChatModel] = {
        name: ChatOpenAI(
            model=f"gpt-{name}",
            api_key=SecretStr("test"),
            base_url="http://openai.test/v1",
            http_client=httpx.Client(transport=transport),
            http_async_client=httpx.AsyncClient(transport=transport),
            max_retries=0,
            stream_usage=True,
        )
        for name in router.config.model_names
    }
    # these tests pin what one answer sends and bills; escalation is tested in test_learning.py
    return R2RouterChatModel(router=router, models=models, **{"escalation": False, **settings})


def aggregate(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


@pytest.mark.parametrize(("prompt", "model", "budget"), [(CHAT, "gpt-small", 32), (MATH, "gpt-large", 256)])
def test_the_routed_budget_is_sent_as_max_completion_tokens(
    router: R2Router, prompt: str, model: str, budget: int
) -> None:
    decision = router.route_text(prompt)
    assert (f"gpt-{decision.model}", decision.token_limit) == (model, budget)
    server = FakeOpenAI()
    message = openai_llm(router, server).invoke(prompt)
    (body,) = server.bodies
    assert body["model"] == model
    assert body["max_completion_tokens"] == budget
    assert "max_tokens" not in body
    assert body["messages"] == [
        {"role": "system", "content": f"Use at most {budget} tokens."},
        {"role": "user", "content": prompt},
    ]
    assert len(message.text.split()) == min(budget, 100)
    assert message.response_metadata["model_name"] == model
    assert message.response_metadata[METADATA_KEY]["budget_exhausted"] is (budget < 100)


def test_without_the_instruction_only_the_cap_is_sent(router: R2Router) -> None:
    server = FakeOpenAI()
    openai_llm(router, server, length_instruction=False).invoke(CHAT)
    assert server.bodies[0]["messages"] == [{"role": "user", "content": CHAT}]
    assert server.bodies[0]["max_completion_tokens"] == 32


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
async def test_fallback_sends_the_second_model_its_own_budget(router: R2Router, mode: str) -> None:
    decision = router.route_text(CHAT)
    second = next(c for c in decision.candidates if c.model != decision.model and c.eligible)
    server = FakeOpenAI(failing=("gpt-small",))
    llm = openai_llm(router, server)
    message: AIMessage
    if mode == "invoke":
        message = llm.invoke(CHAT)
    elif mode == "ainvoke":
        message = await llm.ainvoke(CHAT)
    elif mode == "stream":
        message = aggregate(list(llm.stream(CHAT)))
    else:
        message = aggregate([c async for c in llm.astream(CHAT)])
    sent = [(b["model"], b["max_completion_tokens"]) for b in server.bodies]
    assert sent == [("gpt-small", 32), ("gpt-large", second.token_limit)]
    assert server.bodies[1]["messages"][0] == {"role": "system", "content": f"Use at most {second.token_limit} tokens."}
    info = message.response_metadata[METADATA_KEY]
    assert (info["model"], info["token_limit"]) == ("large", second.token_limit)
    assert info["fallbacks"][0]["model"] == "small"
    assert "Error code: 500" in info["fallbacks"][0]["error"]
    assert message.response_metadata["model_name"] == "gpt-large"


def test_when_every_upstream_fails_the_openai_error_is_raised(router: R2Router) -> None:
    server = FakeOpenAI(failing=("gpt-small", "gpt-large"))
    with pytest.raises(openai.InternalServerError) as caught:
        openai_llm(router, server).invoke(CHAT)
    assert [b["model"] for b in server.bodies] == ["gpt-small", "gpt-large"]
    assert "all 2 attempts failed" in "".join(traceback.format_exception(caught.value))


async def test_streaming_sends_the_cap_and_streams_the_answer(router: R2Router) -> None:
    server = FakeOpenAI()
    llm = openai_llm(router, server)
    chunks = list(llm.stream(CHAT))
    achunks = [c async for c in llm.astream(MATH)]
    assert [(b["stream"], b["model"], b["max_completion_tokens"]) for b in server.bodies] == [
        (True, "gpt-small", 32),
        (True, "gpt-large", 256),
    ]
    for parts, n_words, exhausted in ((chunks, 32, True), (achunks, 100, False)):
        assert len(parts) > n_words  # really streamed, word by word
        assert METADATA_KEY in parts[0].response_metadata
        full = aggregate(parts)
        assert len(full.text.split()) == n_words
        assert full.response_metadata[METADATA_KEY]["budget_exhausted"] is exhausted
        assert full.usage_metadata is not None and full.usage_metadata["output_tokens"] == n_words


async def test_usage_callback_equals_what_the_upstreams_billed(router: R2Router) -> None:
    server = FakeOpenAI()
    llm = openai_llm(router, server)
    with get_usage_metadata_callback() as usage:
        llm.invoke(CHAT)
        list(llm.stream(MATH))
        await llm.ainvoke(MATH)
        await llm.abatch([CHAT, MATH])
    counted = {
        model: {k: u[k] for k in ("input_tokens", "output_tokens", "total_tokens")}
        for model, u in usage.usage_metadata.items()
    }
    assert len(server.bodies) == 5
    assert counted == server.usage


def test_tools_are_converted_by_chatopenai_itself(router: R2Router) -> None:
    @tool
    def get_weather(city: str) -> str:
        """Get the weather in a city."""
        return "sunny"

    server = FakeOpenAI()
    openai_llm(router, server).bind_tools([get_weather], tool_choice="any").invoke(MATH)
    (body,) = server.bodies
    assert body["tool_choice"] == "required"  # ChatOpenAI's own translation of "any"
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    # the tool call's JSON must not be cut: the floor leaves only the uncapped arm, so no cap and no instruction
    assert "max_completion_tokens" not in body and "max_tokens" not in body
    assert not any("Use at most" in str(m.get("content")) for m in body["messages"])


# -- structured output with the method the caller asked for ---------------------------------------
class Joke(BaseModel):
    """A joke."""

    setup: str
    punchline: str


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
def test_json_schema_and_json_mode_are_honoured_not_turned_into_tools(router: R2Router, method: str) -> None:
    server = FakeOpenAI()
    structured = openai_llm(router, server).with_structured_output(Joke, method=method)
    assert structured.invoke(MATH) == Joke(setup="why?", punchline="because")
    (body,) = server.bodies
    assert "tools" not in body
    wanted = "json_schema" if method == "json_schema" else "json_object"
    assert body["response_format"]["type"] == wanted
    if method == "json_schema":
        assert body["response_format"]["json_schema"]["name"] == "Joke"
    # the JSON is never cut: the structured-output floor leaves only the uncapped arm in this pool
    assert "max_completion_tokens" not in body
    raw = openai_llm(router, FakeOpenAI()).with_structured_output(Joke, method=method, include_raw=True).invoke(MATH)
    assert raw["parsed"] == Joke(setup="why?", punchline="because") and raw["parsing_error"] is None
    assert raw["raw"].response_metadata[METADATA_KEY]["token_limit"] is None


def test_json_schema_routes_only_among_models_that_accept_it(router: R2Router) -> None:
    server = FakeOpenAI()
    llm = openai_llm(router, server)
    fake = FakePoolChatModel(model_name="fake-large")
    mixed = R2RouterChatModel(router=router, models={"small": llm.models["small"], "large": fake})
    out = mixed.with_structured_output(Joke, method="json_schema", include_raw=True).invoke(MATH)
    assert out["raw"].response_metadata[METADATA_KEY]["model"] == "small" and fake.calls == []
    none_can = R2RouterChatModel(router=router, models={"large": fake})
    with pytest.raises(ConstraintError, match="method='function_calling'"):
        none_can.with_structured_output(Joke, method="json_schema").invoke(MATH)
    assert fake.calls == []
