"""The real llama-index-llms-openai ``OpenAI`` class over an httpx.MockTransport: what reaches the wire.

Shows the pitfall the integration works around (a per-call ``max_tokens=`` is
overridden by the instance's) and that the routed budget is the ``max_tokens``
of the request actually sent.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from llama_index.core import SummaryIndex
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RouterQueryEngine
from llama_index.llms.openai import OpenAI

from r2router_core import R2Router
from r2router_integrations.llamaindex import (
    R2RouterLLM,
    R2RouterSelector,
    R2RouterSelectorResult,
    budgeted_query_engine_tools,
    with_budget,
)

from .conftest import BUDGETS, MATH, POEM


class Wire:
    """Records each request body; answers like the Chat Completions API (SSE when streaming)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if body.get("stream"):
            chunk = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            }
            sse = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
            return httpx.Response(200, content=sse.encode(), headers={"content-type": "text/event-stream"})
        return httpx.Response(
            200,
            json={
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            },
        )

    @property
    def last(self) -> tuple[str, int | None]:
        return self.bodies[-1]["model"], self.bodies[-1].get("max_tokens")


@pytest.fixture
def wire() -> Wire:
    return Wire()


def openai(wire: Wire, model: str, max_tokens: int | None = None) -> OpenAI:
    transport = httpx.MockTransport(wire)
    return OpenAI(
        model=model,
        api_key="sk-test",
        max_tokens=max_tokens,
        max_retries=0,
        http_client=httpx.Client(transport=transport),
        async_http_client=httpx.AsyncClient(transport=transport),
    )


def test_pitfall_per_call_max_tokens_is_overridden_by_the_instance(wire: Wire) -> None:
    llm = openai(wire, "gpt-4o-mini", max_tokens=1000)
    llm.complete("hi", max_tokens=50)
    assert wire.last == ("gpt-4o-mini", 1000)  # the per-call 50 never reaches the wire


def test_with_budget_puts_the_budget_on_the_wire_and_leaves_the_original(wire: Wire) -> None:
    llm = openai(wire, "gpt-4o-mini", max_tokens=1000)
    with_budget(llm, 50).complete("hi")
    assert wire.last == ("gpt-4o-mini", 50)
    llm.complete("hi")
    assert wire.last == ("gpt-4o-mini", 1000)
    with_budget(llm, None).complete("hi")  # uncapped keeps the LLM's own cap
    assert wire.last == ("gpt-4o-mini", 1000)
    with_budget(openai(wire, "gpt-4o-mini"), None).complete("hi")
    assert wire.last == ("gpt-4o-mini", None)  # and no cap at all when it has none


@pytest.fixture
def routed(router: R2Router, wire: Wire) -> R2RouterLLM:
    return R2RouterLLM(router, {"small": openai(wire, "gpt-4o-mini", 2000), "big": openai(wire, "gpt-4o", 2000)})


@pytest.mark.parametrize("question", [MATH, POEM])
def test_r2router_llm_sends_the_decided_model_and_budget(
    question: str, router: R2Router, routed: R2RouterLLM, wire: Wire
) -> None:
    decision = router.route_text(question)
    expected = ({"small": "gpt-4o-mini", "big": "gpt-4o"}[decision.model], decision.token_limit)
    response = routed.chat([ChatMessage(content=question)])
    assert wire.last == expected
    assert response.additional_kwargs["r2router"]["token_limit"] == decision.token_limit
    assert response.message.content == "ok"
    list(routed.stream_chat([ChatMessage(content=question)]))
    assert wire.last == expected and wire.bodies[-1]["stream"] is True


async def test_r2router_llm_async_sends_the_decided_budget(router: R2Router, routed: R2RouterLLM, wire: Wire) -> None:
    response = await routed.achat([ChatMessage(content=MATH)])
    assert wire.last == ("gpt-4o", router.route_text(MATH).token_limit)
    assert response.additional_kwargs["r2router"]["model"] == "big"
    await routed.acomplete(POEM)
    assert wire.last == ("gpt-4o-mini", router.route_text(POEM).token_limit)


def test_router_query_engine_over_openai_sends_the_choice_budget(
    router: R2Router, wire: Wire, summary_index: SummaryIndex
) -> None:
    pool = {"small": openai(wire, "gpt-4o-mini", 2000), "big": openai(wire, "gpt-4o", 2000)}
    tools = budgeted_query_engine_tools(pool, BUDGETS, lambda llm: summary_index.as_query_engine(llm=llm))
    engine = RouterQueryEngine(selector=R2RouterSelector(router), query_engine_tools=tools, llm=MockLLM())
    result = R2RouterSelectorResult.from_response(engine.query(MATH))
    assert wire.bodies and {(b["model"], b.get("max_tokens")) for b in wire.bodies} == {
        ("gpt-4o", result.choice_budget)
    }
    assert result.choice_budget == router.route_text(MATH).token_limit


# -- agents: R2RouterLLM is a function-calling LLM when every pool LLM is ------------------------
class ToolWire(Wire):
    """Calls the tool ``get_weather`` while the conversation has no tool result, then answers."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if not body.get("tools") or any(m.get("role") == "tool" for m in body["messages"]):
            return super().__call__(request)
        self.bodies.append(body)
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
        if body.get("stream"):
            delta = {"role": "assistant", "tool_calls": [{"index": 0, **call}]}
            chunk = {
                "id": "c2",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": "tool_calls"}],
            }
            sse = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
            return httpx.Response(200, content=sse.encode(), headers={"content-type": "text/event-stream"})
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return httpx.Response(
            200,
            json={
                "id": "c2",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
            },
        )


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_a_pool_of_function_calling_llms_makes_a_function_calling_router(router: R2Router) -> None:
    from llama_index.core.llms.mock import MockLLM

    wire = ToolWire()
    llm = R2RouterLLM(router, {"small": openai(wire, "gpt-4o-mini"), "big": openai(wire, "gpt-4o")})
    assert llm.metadata.is_function_calling_model
    mixed = R2RouterLLM(router, {"small": openai(wire, "gpt-4o-mini"), "big": MockLLM()})
    assert not mixed.metadata.is_function_calling_model


def test_chat_with_tools_routes_under_the_floor_and_reads_its_own_tool_calls(router: R2Router) -> None:
    from llama_index.core.tools import FunctionTool

    wire = ToolWire()
    llm = R2RouterLLM(router, {"small": openai(wire, "gpt-4o-mini"), "big": openai(wire, "gpt-4o")})
    tool = FunctionTool.from_defaults(fn=get_weather)
    response = llm.chat_with_tools([tool], user_msg=MATH)
    expected = router.route_text(MATH, min_budget=1024)  # the structured-output floor: never cut the JSON
    body = wire.bodies[-1]
    assert (
        body["model"] == {"small": "gpt-4o-mini", "big": "gpt-4o"}[expected.model]
        and body.get("max_tokens") == expected.max_tokens
    )
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    (selection,) = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("get_weather", {"city": "Paris"})


async def test_a_function_agent_runs_on_the_router(router: R2Router) -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    wire = ToolWire()
    llm = R2RouterLLM(router, {"small": openai(wire, "gpt-4o-mini"), "big": openai(wire, "gpt-4o")})
    agent = FunctionAgent(tools=[get_weather], llm=llm)
    answer = await agent.run(user_msg="What is the weather in Paris?")
    assert str(answer) == "ok"  # the final answer after the tool ran
    assert any(
        m.get("role") == "tool" and "sunny in Paris" in str(m.get("content")) for m in wire.bodies[-1]["messages"]
    )
