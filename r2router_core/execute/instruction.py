"""The length instruction: the paper's "Use at most N tokens." sent with the hard cap.

R2-Router enforces a budget two ways at once: the provider's output cap, and an
instruction telling the model its budget, so that answers end instead of being
cut mid-sentence (after Lee et al. 2025). Every caller (LangChain, LlamaIndex,
the gateway, ``r2router collect``) adds it through :func:`add_length_instruction`,
on by default, and only to capped calls.

Placement, the same everywhere: appended as a new paragraph to a leading system
(or developer) message, as a new text part when that message's content is a list
of parts; otherwise inserted as a new first system message. A message type plugs
in through a :class:`MessageStyle`; :data:`OPENAI_MESSAGES` is the style of
OpenAI chat dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from r2router_core.engine.config import Budget
from r2router_core.errors import ConfigError

__all__ = [
    "LENGTH_INSTRUCTION",
    "OPENAI_MESSAGES",
    "MessageStyle",
    "add_length_instruction",
    "check_instruction_template",
    "join_instruction",
    "length_instruction",
]

LENGTH_INSTRUCTION = "Use at most {budget} tokens."
"""The paper's length instruction; ``{budget}`` is the output-token cap sent with the call."""

M = TypeVar("M")

_SYSTEM_ROLES = ("system", "developer")


def check_instruction_template(template: str) -> str:
    """Return ``template`` if it formats with ``{budget}`` alone.

    Raises:
        ConfigError: Another field, or a malformed template.
    """
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(
            f"length_instruction_template must be a non-empty string with {{budget}}, got {template!r}",
            field="length_instruction_template",
        )
    try:
        template.format(budget=1)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"length_instruction_template must use only the field {{budget}}, got {template!r} ({exc!r})",
            field="length_instruction_template",
        ) from exc
    return template


def length_instruction(budget: Budget, template: str = LENGTH_INSTRUCTION) -> str | None:
    """The instruction for a cap of ``budget`` tokens; ``None`` for an uncapped call."""
    return None if budget is None else template.format(budget=budget)


def join_instruction(text: str, instruction: str) -> str:
    """``text`` with ``instruction`` as its last paragraph (just the instruction if ``text`` is blank)."""
    return f"{text.rstrip()}\n\n{instruction}" if text.strip() else instruction


@dataclass(frozen=True)
class MessageStyle(Generic[M]):
    """How to read and build one kind of chat message.

    Attributes:
        is_system: Whether a message is a system (or developer) message.
        with_text: A copy of a system message with ``text`` appended (use
            :func:`join_instruction` for string content, a new text part for a list).
        system: A new system message holding ``text``.
    """

    is_system: Callable[[M], bool]
    with_text: Callable[[M, str], M]
    system: Callable[[str], M]


def add_length_instruction(
    messages: Sequence[M],
    budget: Budget,
    style: MessageStyle[M],
    *,
    template: str = LENGTH_INSTRUCTION,
) -> list[M]:
    """A copy of ``messages`` telling the model to use at most ``budget`` tokens.

    Args:
        messages: The conversation, in order (not modified).
        budget: The output-token cap sent with the call; ``None`` (uncapped) adds nothing.
        style: How to handle this kind of message.
        template: The instruction, with ``{budget}``.

    Returns:
        The messages with the instruction in the leading system message, or a new one.
    """
    out = list(messages)
    instruction = length_instruction(budget, template)
    if instruction is None:
        return out
    if out and style.is_system(out[0]):
        out[0] = style.with_text(out[0], instruction)
    else:
        out.insert(0, style.system(instruction))
    return out


def _openai_is_system(message: Any) -> bool:
    return isinstance(message, Mapping) and message.get("role") in _SYSTEM_ROLES and _openai_text_like(message)


def _openai_text_like(message: Mapping[str, Any]) -> bool:
    return isinstance(message.get("content"), str | list)


def _openai_with_text(message: Any, text: str) -> Any:
    content = message.get("content")
    if isinstance(content, list):
        return {**message, "content": [*content, {"type": "text", "text": text}]}
    return {**message, "content": join_instruction(content, text)}


OPENAI_MESSAGES: MessageStyle[Any] = MessageStyle(
    is_system=_openai_is_system,
    with_text=_openai_with_text,
    system=lambda text: {"role": "system", "content": text},
)
"""The style of OpenAI chat-completions messages (dicts with ``role`` and ``content``)."""
