"""Test doubles for the LangChain integration: a fake pool chat model and a tiny demo router.

:class:`FakePoolChatModel` behaves like a provider's chat model, offline: it
honours ``max_tokens`` (whitespace tokens) and ``stop``, reports
``usage_metadata`` and ``response_metadata`` (``model_name``, ``finish_reason``,
``token_usage``), streams word by word, and calls bound tools with arguments
built from each tool's JSON schema (so it cannot compute real arguments such as
``3`` for "magic_function(3)").

:func:`demo_router` is a two-model router over :class:`HashEmbedder` whose
choices are easy to predict: greetings go to ``small`` at a short budget, maths
questions to ``large`` at a long one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage, UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.testing import HashEmbedder

__all__ = ["FakeCall", "FakePoolChatModel", "demo_router", "example_arguments"]

_FORCING_CHOICES = ("any", "required", True)


@dataclass(frozen=True)
class FakeCall:
    """What one call of a :class:`FakePoolChatModel` received."""

    messages: tuple[BaseMessage, ...]
    max_tokens: int | None
    stop: tuple[str, ...] | None
    tools: tuple[dict[str, Any], ...]
    tool_choice: Any


@dataclass(frozen=True)
class _Reply:
    text: str
    tool_call: dict[str, Any] | None
    finish_reason: str
    input_tokens: int
    output_tokens: int


class FakePoolChatModel(BaseChatModel):
    """An offline chat model that behaves like a provider's, for pools in tests and demos.

    Example:
        >>> llm = FakePoolChatModel(model_name="tiny", response="one two three four", max_tokens=2)
        >>> msg = llm.invoke("hi")
        >>> msg.content, msg.response_metadata["finish_reason"], msg.usage_metadata["output_tokens"]
        ('one two', 'length', 2)
    """

    model_name: str = "fake-model"
    """Reported as ``response_metadata["model_name"]`` and as the trace's ``ls_model_name``."""

    response: str | None = None
    """The answer text; ``None`` = ``"<model_name> answers: <last human text>"``."""

    max_tokens: int | None = None
    """Output cap in whitespace tokens; a call's ``max_tokens`` kwarg wins. ``None`` = no cap."""

    fail_with: Exception | None = None
    """Raise this exception on every call (to exercise fallbacks)."""

    calls: list[FakeCall] = Field(default_factory=list, exclude=True)
    """Every call received, in order (shared with copies made by ``model_copy``)."""

    @property
    def _llm_type(self) -> str:
        return "r2router-fake"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "max_tokens": self.max_tokens}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="fake", ls_model_name=self.model_name, ls_model_type="chat")
        cap = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(cap, int):
            params["ls_max_tokens"] = cap
        if stop:
            params["ls_stop"] = stop
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools in the OpenAI format (as ChatOpenAI does)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    # -- the one place that decides what the model says -------------------------------
    def _reply(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]) -> _Reply:
        cap = kwargs.get("max_tokens", self.max_tokens)
        tools = tuple(kwargs.get("tools") or ())
        choice = kwargs.get("tool_choice")
        self.calls.append(FakeCall(tuple(messages), cap, tuple(stop) if stop else None, tools, choice))
        if self.fail_with is not None:
            raise self.fail_with
        n_in = sum(len(m.text.split()) for m in messages)
        tool = _pick_tool(tools, choice, messages)
        if tool is not None:
            function = tool["function"]
            call = {"name": function["name"], "args": example_arguments(function.get("parameters", {}))}
            call["id"] = f"call_{len(self.calls)}"
            return _Reply("", call, "tool_calls", n_in, len(json.dumps(call["args"]).split()))
        text, reason = self._text(messages), "stop"
        for sequence in stop or ():
            if sequence and sequence in text:
                text = text[: text.index(sequence)]
        words = text.split()
        if cap is not None and len(words) > cap:
            words, reason = words[:cap], "length"
        return _Reply(" ".join(words), None, reason, n_in, len(words))

    def _text(self, messages: list[BaseMessage]) -> str:
        if self.response is not None:
            return self.response
        humans = [m.text for m in messages if isinstance(m, HumanMessage)]
        return f"{self.model_name} answers: {humans[-1] if humans else 'nothing'}"

    def _metadata(self, reply: _Reply) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "finish_reason": reply.finish_reason,
            "token_usage": {
                "prompt_tokens": reply.input_tokens,
                "completion_tokens": reply.output_tokens,
                "total_tokens": reply.input_tokens + reply.output_tokens,
            },
        }

    @staticmethod
    def _usage(reply: _Reply) -> UsageMetadata:
        total = reply.input_tokens + reply.output_tokens
        return UsageMetadata(input_tokens=reply.input_tokens, output_tokens=reply.output_tokens, total_tokens=total)

    # -- LangChain hooks --------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._reply(messages, stop, kwargs)
        message = AIMessage(
            content=reply.text,
            tool_calls=[{**reply.tool_call, "type": "tool_call"}] if reply.tool_call else [],
            response_metadata=self._metadata(reply),
            usage_metadata=self._usage(reply),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages, stop, kwargs)
        if reply.tool_call is not None:
            call = reply.tool_call
            pieces = [
                AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        tool_call_chunk(name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=0)
                    ],
                )
            ]
        else:
            words = reply.text.split(" ") if reply.text else [""]
            pieces = [AIMessageChunk(content=w if i == len(words) - 1 else w + " ") for i, w in enumerate(words)]
        pieces[-1].usage_metadata = self._usage(reply)
        pieces[-1].response_metadata = self._metadata(reply)
        for piece in pieces:
            chunk = ChatGenerationChunk(message=piece)
            if run_manager is not None and isinstance(piece.content, str):
                run_manager.on_llm_new_token(piece.content, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._stream(messages, stop, **kwargs):
            if run_manager is not None and isinstance(chunk.message.content, str):
                await run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
            yield chunk


def _pick_tool(tools: Sequence[dict[str, Any]], choice: Any, messages: Sequence[BaseMessage]) -> dict[str, Any] | None:
    """The tool the fake calls: forced by ``tool_choice``, else the first until a tool answered."""
    if not tools or choice in ("none", False):
        return None
    name: str | None = None
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else choice.get("name")
    elif isinstance(choice, str) and choice not in ("auto", "any", "required", "none"):
        name = choice
    forced = name is not None or choice in _FORCING_CHOICES
    if not forced and messages and isinstance(messages[-1], ToolMessage):
        return None
    if name is None:
        return tools[0]
    for tool in tools:
        if tool["function"]["name"] == name:
            return tool
    raise ValueError(f"tool_choice names {name!r}, which is not among the bound tools")


def example_arguments(schema: Mapping[str, Any], *, name: str = "value", defs: Mapping[str, Any] | None = None) -> Any:
    """A valid example value for a JSON schema: defaults, first enum values, in-range numbers.

    Strings are ``"example <field>"``; numbers are 0 when allowed, else the nearest bound.
    """
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return example_arguments(defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {}), name=name, defs=defs)
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [s for s in schema.get(key, ()) if s.get("type") != "null"]
        if options:
            return example_arguments(options[0], name=name, defs=defs)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {key: example_arguments(sub, name=key, defs=defs) for key, sub in properties.items()}
    if kind == "array":
        return [example_arguments(schema.get("items", {}), name=name, defs=defs)] * int(schema.get("minItems", 0))
    if kind in ("integer", "number"):
        return _example_number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return f"example {name}"


def _example_number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    step = 1 if integer else 1e-6
    low = schema.get("minimum", schema["exclusiveMinimum"] + step if "exclusiveMinimum" in schema else None)
    high = schema.get("maximum", schema["exclusiveMaximum"] - step if "exclusiveMaximum" in schema else None)
    value: float = 0
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    return int(value) if integer else float(value)


_GREETINGS = ("hello", "hi", "hey", "good morning", "thanks", "see you")
_CHAT_TAILS = ("how are you", "nice day today", "what is up", "have a good weekend")
_MATH_VERBS = ("prove", "solve", "compute", "derive", "integrate", "simplify")
_MATH_OBJECTS = (
    "the integral of x squared",
    "the equation 2x + 3 = 7",
    "the derivative of sin x",
    "the limit of 1/n",
    "the eigenvalues of the matrix",
)


def demo_router(*, lambda_: float = 0.9, dim: int = 64) -> R2Router:
    """A two-model router with predictable choices, over :class:`HashEmbedder`.

    Pool: ``small`` (0.6 USD per 1M output tokens) and ``large`` (10 USD); budgets
    32, 256 and uncapped. On greetings both models are equally good, so ``small``
    at 32 tokens wins; on maths ``large`` is much better and needs room, so it
    wins at 256 tokens (uncapped adds no quality and costs more). ``lambda_=1``
    always picks the cheapest arm.

    Args:
        lambda_: The router's default cost weight.
        dim: Embedding dimension of the :class:`HashEmbedder`.
    """
    embedder = HashEmbedder(dim=dim)
    prompts = [f"{a} {b}" for a in _GREETINGS for b in _CHAT_TAILS]
    n_chat = len(prompts)
    prompts += [f"{a} {b}" for a in _MATH_VERBS for b in _MATH_OBJECTS]
    budgets = (32, 256, None)
    quality = np.empty((len(prompts), 2, 3))
    tokens = np.empty((len(prompts), 2, 3))
    quality[:n_chat] = [[0.9, 0.9, 0.9], [0.9, 0.9, 0.9]]
    tokens[:n_chat] = [[20, 20, 20], [20, 20, 20]]
    quality[n_chat:] = [[0.1, 0.3, 0.3], [0.2, 0.85, 0.85]]
    tokens[n_chat:] = [[32, 200, 400], [32, 180, 600]]
    config = RouterConfig(
        models=(  # the demo prices output only: input free, said so
            ModelSpec("small", output_price=0.6, input_price=0, full_name="demo/small"),
            ModelSpec("large", output_price=10.0, input_price=0, full_name="demo/large"),
        ),
        budgets=budgets,
        lambda_=lambda_,
        k=5,
        embedder=embedder.id,
    )
    data = TrainingData(embedder.embed(prompts), config.model_names, budgets, quality, tokens)
    return R2Router(config, data, embedder=embedder)
