"""Test doubles for the LlamaIndex integration: an LLM that records the budget it ran at.

``RecordingLLM`` answers with ``answer_words`` words cut at its ``max_tokens``
(one word = one token), emits one LLM callback event per call like a real
provider LLM, and appends every call to ``calls``. Copies made with
``model_copy`` (as :func:`~r2router_integrations.llamaindex.budgets.with_budget`
does) share the same ``calls`` list, so a test sees which copy ran at which
``max_tokens``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms import LLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback

__all__ = ["LLMCall", "RecordingLLM"]


@dataclass(frozen=True)
class LLMCall:
    """One recorded call.

    Attributes:
        name: The ``name`` of the LLM that ran.
        method: ``"complete"``, ``"chat"``, ``"stream_complete"``, ...
        max_tokens: The LLM's own ``max_tokens`` at the call (what a provider would send).
        prompt: The prompt, or the chat messages joined by newlines.
    """

    name: str
    method: str
    max_tokens: int | None
    prompt: str


class RecordingLLM(LLM):
    """A deterministic LLM that records its ``max_tokens`` at every call."""

    name: str = Field(default="recording-llm", description="Name recorded with each call.")
    """Name recorded with each call."""
    max_tokens: int | None = Field(default=None, description="Output cap; None = uncapped.")
    """Output cap in words (= tokens); ``None`` = uncapped."""
    answer_words: int = Field(default=50, description="Length of the uncapped answer.")
    """Length of the uncapped answer in words."""
    is_chat: bool = Field(default=False, description="Report itself as a chat model.")
    """Whether ``metadata.is_chat_model`` is true."""
    context_window: int = Field(default=4096, description="Reported context window.")
    """Reported context window."""
    finish_reasons: bool = Field(default=False, description="Report OpenAI's finish_reason in raw.")
    """Put ``choices[0].finish_reason`` in ``raw`` (``"length"`` when the cap cut the answer)."""
    calls: list[LLMCall] = Field(default_factory=list, exclude=True)
    """Every call so far, shared with copies made by ``model_copy``."""

    @classmethod
    def class_name(cls) -> str:
        return "RecordingLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_tokens or -1,
            is_chat_model=self.is_chat,
            model_name=self.name,
        )

    def _answer(self, method: str, prompt: str) -> CompletionResponse:
        self.calls.append(LLMCall(self.name, method, self.max_tokens, prompt))
        n = self.answer_words if self.max_tokens is None else min(self.answer_words, self.max_tokens)
        text = " ".join(f"{self.name}-{i}" for i in range(n))
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": n}
        raw: dict[str, Any] = {"usage": usage}
        if self.finish_reasons:
            raw["choices"] = [{"finish_reason": "length" if n < self.answer_words else "stop"}]
        return CompletionResponse(text=text, raw=raw)

    def _chat_answer(self, method: str, messages: Sequence[ChatMessage]) -> ChatResponse:
        done = self._answer(method, "\n".join(m.content or "" for m in messages))
        message = ChatMessage(role=MessageRole.ASSISTANT, content=done.text)
        return ChatResponse(message=message, raw=done.raw)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._answer("complete", prompt)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return _words(self._answer("stream_complete", prompt))

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._answer("acomplete", prompt)

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        return _awords(self._answer("astream_complete", prompt))

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat_answer("chat", messages)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return _chat_words(self._chat_answer("stream_chat", messages))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat_answer("achat", messages)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        return _achat_words(self._chat_answer("astream_chat", messages))


def _words(done: CompletionResponse) -> Generator[CompletionResponse, None, None]:
    text = ""
    for word in done.text.split():
        delta = word if not text else f" {word}"
        text += delta
        yield CompletionResponse(text=text, delta=delta, raw=done.raw)


async def _awords(done: CompletionResponse) -> AsyncGenerator[CompletionResponse, None]:
    for chunk in _words(done):
        yield chunk


def _chat_words(done: ChatResponse) -> Generator[ChatResponse, None, None]:
    for chunk in _words(CompletionResponse(text=done.message.content or "", raw=done.raw)):
        message = ChatMessage(role=MessageRole.ASSISTANT, content=chunk.text)
        yield ChatResponse(message=message, delta=chunk.delta, raw=done.raw)


async def _achat_words(done: ChatResponse) -> AsyncGenerator[ChatResponse, None]:
    for chunk in _chat_words(done):
        yield chunk
