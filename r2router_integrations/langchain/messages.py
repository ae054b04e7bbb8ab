"""Message helpers: the text a call is routed on, the length instruction, result -> chunk."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from r2router_core.errors import EmptyPromptError, InputError
from r2router_core.instruction import LENGTH_INSTRUCTION

__all__ = [
    "DEFAULT_LENGTH_INSTRUCTION",
    "RouteOn",
    "add_length_instruction",
    "chunk_from_result",
    "routing_text",
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
        EmptyPromptError: There is no text to route on.
    """
    if callable(route_on):
        text = route_on(list(messages))
        if not isinstance(text, str):
            raise InputError(f"route_on function must return a str, got {type(text).__name__}")
    elif route_on == "conversation":
        text = _conversation(messages)
    else:
        humans = [m.text for m in messages if isinstance(m, HumanMessage) and m.text.strip()]
        text = humans[-1] if humans else _conversation(messages)
    if not text.strip():
        raise EmptyPromptError(
            f"the messages hold no text to route on (route_on={route_on!r}); "
            "pass a text prompt or set route_on to a function that returns one"
        )
    return str(text)


def _conversation(messages: Sequence[BaseMessage]) -> str:
    return "\n".join(f"{m.type}: {m.text}" for m in messages if m.text.strip())


def add_length_instruction(messages: Sequence[BaseMessage], instruction: str) -> list[BaseMessage]:
    """Append ``instruction`` to the leading system message, or insert one.

    The caller's system message is kept: the instruction is added after its
    text (as a new text block when its content is a list of blocks).
    """
    out = list(messages)
    if out and isinstance(out[0], SystemMessage):
        out[0] = _append_text(out[0], instruction)
    else:
        out.insert(0, SystemMessage(instruction))
    return out


def _append_text(message: SystemMessage, text: str) -> SystemMessage:
    content = message.content
    new: str | list[str | dict[Any, Any]]
    if isinstance(content, str):
        new = f"{content}\n\n{text}" if content.strip() else text
    else:
        new = [*content, {"type": "text", "text": text}]
    return message.model_copy(update={"content": new})


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
