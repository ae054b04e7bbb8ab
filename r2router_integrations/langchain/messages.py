"""Message helpers: the text a call is routed on, the length instruction, result -> chunk."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from r2router_core import LENGTH_INSTRUCTION, EmptyPromptError, InputError, MessageStyle, join_instruction

__all__ = [
    "DEFAULT_LENGTH_INSTRUCTION",
    "LANGCHAIN_MESSAGES",
    "RouteOn",
    "chunk_from_result",
    "routing_text",
    "sent_text",
]

RouteOn = Literal["last_human", "conversation"] | Callable[[list[BaseMessage]], str]
"""What a call is routed on: the last human message, the whole conversation, or a function."""

DEFAULT_LENGTH_INSTRUCTION = LENGTH_INSTRUCTION
"""The paper's length instruction (the core's ``LENGTH_INSTRUCTION``); ``{budget}`` is the routed budget."""


def routing_text(messages: Sequence[BaseMessage], route_on: RouteOn) -> str:
    """The text the router embeds for one call.

    Args:
        messages: The call's messages, in order.
        route_on: ``"last_human"`` (the last human message with text; the whole
            conversation if none has text), ``"conversation"`` (every message as
            ``role: text`` lines) or a function ``messages -> str``.

    Raises:
        InputError: The function returned something other than a string.
        EmptyPromptError: There is no text to route on (system messages alone are
            instructions, not a prompt).
    """
    if callable(route_on):
        text = route_on(list(messages))
        if not isinstance(text, str):
            raise InputError(f"route_on function must return a str, got {type(text).__name__}")
    elif not any(m.text.strip() for m in messages if not isinstance(m, SystemMessage)):
        text = ""  # system messages alone are instructions, not a prompt
    elif route_on == "conversation":
        text = _conversation(messages)
    else:
        humans = [m.text for m in messages if isinstance(m, HumanMessage) and m.text.strip()]
        text = humans[-1] if humans else _conversation(messages)
    if not text.strip():
        raise EmptyPromptError(
            f"the messages hold no text to route on (route_on={route_on!r}; system messages alone are "
            "instructions, not a prompt); pass a text prompt or set route_on to a function that returns one"
        )
    return str(text)


def sent_text(messages: Sequence[BaseMessage], tools: Sequence[Any] = ()) -> str:
    """Everything a call sends the model, as text, for counting its input tokens.

    Every message's text (system prompt included), the tool calls an AI message made, and
    the tool schemas serialized as JSON (OpenAI's format, as most providers receive them).
    """
    parts: list[str] = [str(m.text) for m in messages]
    parts += [json.dumps(m.tool_calls, default=str) for m in messages if isinstance(m, AIMessage) and m.tool_calls]
    if tools:
        parts.append(json.dumps([_tool_schema(t) for t in tools], default=str))
    return "\n".join(p for p in parts if p)


def _tool_schema(tool: Any) -> Any:
    try:
        return convert_to_openai_tool(tool)
    except Exception:  # a tool the child binds its own way: count what it shows
        return str(tool)


def _conversation(messages: Sequence[BaseMessage]) -> str:
    return "\n".join(f"{m.type}: {m.text}" for m in messages if m.text.strip())


def _with_text(message: SystemMessage, text: str) -> SystemMessage:
    content = message.content
    new = join_instruction(content, text) if isinstance(content, str) else [*content, {"type": "text", "text": text}]
    return message.model_copy(update={"content": new})


LANGCHAIN_MESSAGES: MessageStyle[BaseMessage] = MessageStyle(
    is_system=lambda message: isinstance(message, SystemMessage),
    with_text=lambda message, text: _with_text(message, text),  # type: ignore[arg-type]
    system=SystemMessage,
)
"""LangChain messages for the core's :func:`~r2router_core.add_length_instruction`."""


def chunk_from_result(result: ChatResult) -> ChatGenerationChunk:
    """Turn a non-streamed result into one stream chunk (for children that cannot stream)."""
    generation = result.generations[0]
    message = generation.message
    metadata = {**(result.llm_output or {}), **message.response_metadata}
    tool_calls = message.tool_calls if isinstance(message, AIMessage) else []
    chunk = AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        response_metadata=metadata,
        usage_metadata=message.usage_metadata if isinstance(message, AIMessage) else None,
        id=message.id,
        tool_call_chunks=[
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c.get("id"), index=i)
            for i, c in enumerate(tool_calls)
        ],
    )
    return ChatGenerationChunk(message=chunk, generation_info=generation.generation_info)
