"""Tools replayed on the chosen child, structured output, an agent loop, and fallback on faults."""

from __future__ import annotations

import traceback
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

from r2router_core import STRUCTURED_OUTPUT_MIN_BUDGET, ConstraintError, R2Router
from r2router_integrations.langchain import METADATA_KEY, R2RouterChatModel
from r2router_integrations.langchain.testing import FakePoolChatModel

from .conftest import CHAT, MATH, fake_pool
from .test_chat_model import RunCounter


@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return f"It is sunny in {city}."


class Joke(BaseModel):
    """A joke."""

    setup: str = Field(description="question to set up a joke")
    punchline: str = Field(description="answer to resolve the joke")


class NoTools(BaseChatModel):
    """A chat model without bind_tools."""

    @property
    def _llm_type(self) -> str:
        return "no-tools"

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("plain"))])


def r2(message: AIMessage) -> dict[str, Any]:
    return message.response_metadata[METADATA_KEY]


# -- tools ------------------------------------------------------------------------------
def test_bind_tools_replays_the_tools_on_the_chosen_child(
    llm: R2RouterChatModel, pool: dict[str, FakePoolChatModel]
) -> None:
    bound = llm.bind_tools([get_weather], tool_choice="get_weather")
    message = bound.invoke(MATH)
    call = pool["large"].calls[-1]
    assert call.tools == (convert_to_openai_tool(get_weather),)  # converted by the child's own bind_tools
    assert call.tool_choice == "get_weather"
    # a tool call is never cut by the cap: the structured-output floor leaves only uncapped here
    floored = llm.router.route_text(MATH, min_budget=STRUCTURED_OUTPUT_MIN_BUDGET)
    assert (floored.model, floored.token_limit, floored.max_tokens) == ("large", None, None)
    assert call.max_tokens is None and r2(message)["token_limit"] is None
    assert [c["name"] for c in message.tool_calls] == ["get_weather"]
    assert r2(message)["model"] == "large"
    assert pool["small"].calls == []


def test_bound_tools_route_only_among_models_that_can_bind_them(router: R2Router) -> None:
    pool: dict[str, BaseChatModel] = {"small": NoTools(), "large": FakePoolChatModel(model_name="fake-large")}
    llm = R2RouterChatModel(router=router, models=pool)
    assert r2(llm.invoke(CHAT))["model"] == "small"  # without tools the router may pick it
    message = llm.bind_tools([get_weather]).invoke(CHAT)
    assert r2(message)["model"] == "large"
    assert message.tool_calls[0]["name"] == "get_weather"
    with pytest.raises(ConstraintError, match="none of the pool models"):
        llm.bind_tools([get_weather]).invoke(CHAT, force_model="small")


def test_a_pool_that_cannot_call_tools_is_named_at_bind_time(router: R2Router) -> None:
    llm = R2RouterChatModel(router=router, models={"small": NoTools(), "large": NoTools()})
    with pytest.raises(ConstraintError, match=r"\['small', 'large'\] can bind tools"):
        llm.bind_tools([get_weather])


@pytest.mark.parametrize("method", ["invoke", "stream"])
def test_with_structured_output_is_one_run(llm: R2RouterChatModel, method: str) -> None:
    counter = RunCounter()
    structured = llm.with_structured_output(Joke)
    config: RunnableConfig = {"callbacks": [counter]}
    result = (
        structured.invoke(MATH, config=config)
        if method == "invoke"
        else list(structured.stream(MATH, config=config))[-1]
    )
    assert isinstance(result, Joke)
    assert result.setup == "example setup"
    assert len(counter.starts) == 1
    assert counter.starts[0]["options"]["ls_structured_output_format"]["schema"]["title"] == "Joke"
    assert counter.starts[0]["metadata"]["ls_model_name"] == "fake-large"
    assert "ls_max_tokens" not in counter.starts[0]["metadata"]  # structured output: uncapped (the floor)


def test_structured_output_with_raw_keeps_the_decision(llm: R2RouterChatModel) -> None:
    out = llm.with_structured_output(Joke, include_raw=True).invoke(CHAT)
    assert isinstance(out, dict)
    assert isinstance(out["parsed"], Joke)
    assert r2(out["raw"])["model"] == "small"


def test_agent_loop_with_create_agent(llm: R2RouterChatModel, pool: dict[str, FakePoolChatModel]) -> None:
    from langchain.agents import create_agent

    agent = create_agent(llm, tools=[get_weather])
    counter = RunCounter()
    question = "What is the weather in Paris? Solve the equation too."
    state = agent.invoke({"messages": [HumanMessage(question)]}, config={"callbacks": [counter]})
    messages = state["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert messages[1].tool_calls[0]["name"] == "get_weather"
    assert messages[2].content == "It is sunny in example city."  # the tool really ran
    assert messages[3].text.endswith("Solve the equation too.")  # the final answer after the tool result
    for answer in (messages[1], messages[3]):
        assert METADATA_KEY in answer.response_metadata
    calls = [c for child in pool.values() for c in child.calls]
    assert len(calls) == 2
    # both model turns went through the routing entry point: one run each, traced as the routed model
    routed = llm.router.route_text(question, min_budget=STRUCTURED_OUTPUT_MIN_BUDGET)  # tool turns get the floor
    assert [s["metadata"]["ls_model_name"] for s in counter.starts] == [f"fake-{routed.model}"] * 2
    assert [s["metadata"].get("ls_max_tokens") for s in counter.starts] == [routed.max_tokens] * 2
    assert all(c.tools == (convert_to_openai_tool(get_weather),) for c in calls)


# -- faults ---------------------------------------------------------------------------
def failing_pool(router: R2Router, *failing: str) -> dict[str, FakePoolChatModel]:
    pool = fake_pool(router)
    for name in failing:
        pool[name].fail_with = ConnectionError(f"{name} is down")  # a provider failure: falls back
    return pool


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
async def test_a_failing_model_falls_back_to_the_next_best(router: R2Router, mode: str) -> None:
    pool = failing_pool(router, "small")
    llm = R2RouterChatModel(router=router, models=pool)
    decision = router.route_text(CHAT)
    assert decision.model == "small"
    expected = next(c for c in decision.candidates if c.model == "large" and c.eligible)
    counter = RunCounter()
    config: RunnableConfig = {"callbacks": [counter]}
    if mode == "invoke":
        message = llm.invoke(CHAT, config=config)
    elif mode == "ainvoke":
        message = await llm.ainvoke(CHAT, config=config)
    elif mode == "stream":
        chunks = list(llm.stream(CHAT, config=config))
        message = chunks[0]
        for chunk in chunks[1:]:
            message = message + chunk
    else:
        chunks = [c async for c in llm.astream(CHAT, config=config)]
        message = chunks[0]
        for chunk in chunks[1:]:
            message = message + chunk
    info = r2(message)
    assert (info["model"], info["token_limit"]) == ("large", expected.token_limit)
    assert info["fallbacks"] == [
        {
            "model": "small",
            "token_limit": 32,
            "kind": "connection",
            "error": "ConnectionError: small is down",
            "status": None,
        }
    ]
    assert pool["large"].calls[-1].max_tokens == expected.token_limit  # its own budget
    assert message.response_metadata["model_name"] == "fake-large"
    assert len(counter.starts) == 1  # still one run


def test_fallbacks_off_raises_the_models_own_error(router: R2Router) -> None:
    pool = failing_pool(router, "small")
    llm = R2RouterChatModel(router=router, models=pool, fallbacks=0)
    with pytest.raises(ConnectionError, match="small is down"):
        llm.invoke(CHAT)
    assert pool["large"].calls == []


@pytest.mark.parametrize("error", [RuntimeError("bug in a parser"), TypeError("unexpected keyword"), KeyError("x")])
def test_a_programming_error_is_raised_at_once_not_hidden_by_a_fallback(router: R2Router, error: Exception) -> None:
    pool = fake_pool(router)
    pool["small"].fail_with = error
    llm = R2RouterChatModel(router=router, models=pool)
    with pytest.raises(type(error)):
        llm.invoke(CHAT)
    assert pool["large"].calls == []  # another model would not fix a bug; it would only cost money


@pytest.mark.parametrize("streaming", [False, True])
def test_when_every_candidate_fails_the_last_error_lists_the_attempts(router: R2Router, streaming: bool) -> None:
    pool = failing_pool(router, "small", "large")
    llm = R2RouterChatModel(router=router, models=pool)
    with pytest.raises(ConnectionError, match="large is down") as caught:
        if streaming:
            list(llm.stream(CHAT))
        else:
            llm.invoke(CHAT)
    text = "".join(traceback.format_exception(caught.value))
    assert "all 2 attempts failed, in order: small@32 -> ConnectionError: small is down; large@" in text


def test_fallbacks_are_bounded(router: R2Router) -> None:
    pool = failing_pool(router, "small")
    llm = R2RouterChatModel(router=router, models=pool, fallbacks=1)
    assert r2(llm.invoke(CHAT))["model"] == "large"
    pool["large"].fail_with = ConnectionError("large is down")
    with pytest.raises(ConnectionError):
        llm.invoke(CHAT)
    assert len(pool["small"].calls) == 2 and len(pool["large"].calls) == 2


def test_a_stream_that_fails_midway_is_not_retried(router: R2Router) -> None:
    class Breaks(FakePoolChatModel):
        def _stream(self, *args: Any, **kwargs: Any) -> Any:
            stream = super()._stream(*args, **kwargs)
            yield next(stream)
            raise ConnectionError("connection lost")

    pool = fake_pool(router)
    pool["small"] = Breaks(model_name="fake-small")
    llm = R2RouterChatModel(router=router, models=pool)
    received = []
    with pytest.raises(ConnectionError, match="connection lost"):
        for chunk in llm.stream(CHAT):
            received.append(chunk)
    assert len(received) == 1  # part of the answer was out: no silent switch of model
    assert pool["large"].calls == []
