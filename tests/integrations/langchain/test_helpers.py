"""Routing-input helpers, the fake pool model, the package surface and lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel, Field

import r2router_integrations.langchain as lc
from r2router_core import EmptyPromptError, InputError, add_length_instruction
from r2router_integrations.langchain.messages import LANGCHAIN_MESSAGES, routing_text
from r2router_integrations.langchain.testing import FakePoolChatModel, example_arguments


def test_public_surface() -> None:
    assert lc.__all__ == ["METADATA_KEY", "LangChainEmbedder", "R2RouterChatModel"]


@pytest.mark.parametrize("module", ["r2router_core", "r2router_integrations"])
def test_the_core_never_imports_langchain(module: str) -> None:
    code = f"import sys, {module}; print(any(m.startswith('langchain') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_routing_text_reads_text_blocks_and_skips_empty_humans() -> None:
    messages = [
        HumanMessage([{"type": "text", "text": "first question"}, {"type": "image_url", "image_url": {"url": "x"}}]),
        AIMessage("answer"),
        HumanMessage([{"type": "image_url", "image_url": {"url": "y"}}]),
    ]
    assert routing_text(messages, "last_human") == "first question"
    assert routing_text([AIMessage("only ai")], "last_human") == "ai: only ai"
    with pytest.raises(EmptyPromptError):
        routing_text([HumanMessage("")], "conversation")
    with pytest.raises(InputError, match="must return a str"):
        routing_text([HumanMessage("x")], lambda m: 42)  # type: ignore[arg-type,return-value]


def test_length_instruction_keeps_every_message() -> None:
    messages = [HumanMessage("q"), SystemMessage("late system"), ToolMessage("r", tool_call_id="1")]
    out = add_length_instruction(messages, 5, LANGCHAIN_MESSAGES)
    assert out == [SystemMessage("Use at most 5 tokens."), *messages]
    assert add_length_instruction([SystemMessage("  ")], 7, LANGCHAIN_MESSAGES)[0].content == "Use at most 7 tokens."
    assert add_length_instruction(messages, None, LANGCHAIN_MESSAGES) == messages  # uncapped: nothing added


def test_fake_honours_max_tokens_stop_and_reports_usage() -> None:
    fake = FakePoolChatModel(model_name="m", response="a b c you d e")
    msg = fake.invoke("hi", stop=["you"])
    assert (msg.text, msg.response_metadata["finish_reason"]) == ("a b c", "stop")
    msg = fake.invoke("hi there", max_tokens=2)
    assert msg.text == "a b" and msg.response_metadata["finish_reason"] == "length"
    assert msg.usage_metadata == {"input_tokens": 2, "output_tokens": 2, "total_tokens": 4}
    assert msg.response_metadata["token_usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    chunks = list(fake.stream("hi", max_tokens=3))
    assert "".join(c.text for c in chunks) == "a b c"
    assert sum(1 for c in chunks if c.usage_metadata) == 1


def test_fake_tool_calls_until_a_tool_answered() -> None:
    def lookup(city: str, days: int = 3) -> str:
        """Look up the forecast."""
        return ""

    bound = FakePoolChatModel().bind_tools([lookup])
    first = bound.invoke([HumanMessage("weather?")])
    assert first.tool_calls[0]["args"] == {"city": "example city", "days": 3}
    after = bound.invoke(
        [HumanMessage("weather?"), first, ToolMessage("sunny", tool_call_id=first.tool_calls[0]["id"])]
    )
    assert after.tool_calls == [] and after.text
    forced = FakePoolChatModel().bind_tools([lookup], tool_choice="any")
    assert forced.invoke([HumanMessage("q"), first, ToolMessage("s", tool_call_id="x")]).tool_calls
    with pytest.raises(ValueError, match="'nope'"):
        FakePoolChatModel().bind_tools([lookup], tool_choice="nope").invoke("q")


def test_fake_fails_on_request() -> None:
    with pytest.raises(RuntimeError, match="down"):
        FakePoolChatModel(fail_with=RuntimeError("down")).invoke("hi")


class Inner(BaseModel):
    flag: bool
    tags: list[str] = Field(min_length=2)


class Outer(BaseModel):
    count: int = Field(gt=5, le=9)
    ratio: float = Field(ge=-1, lt=-0.5)
    mode: str = Field(json_schema_extra={"enum": ["fast", "slow"]})
    note: str | None = None
    inner: Inner


def test_example_arguments_satisfy_the_schema() -> None:
    args = example_arguments(Outer.model_json_schema())
    parsed = Outer.model_validate(args)  # the oracle: pydantic accepts the example
    assert (parsed.count, parsed.mode, parsed.note) == (6, "fast", None)
    assert parsed.inner.tags == ["example tags", "example tags"]
