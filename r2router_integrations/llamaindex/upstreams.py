"""LlamaIndex pool LLMs from ``upstreams.yaml``: one OpenAI-compatible LLM per upstream.

Imported by :meth:`R2RouterLLM.from_upstreams` only (it needs ``llama-index-llms-openai``
and the ``server`` extra, which reads the file). ``llama_index.llms.openai.OpenAI`` refuses
model ids it does not know (its context window is looked up by name), and
``llama-index-llms-openai-like`` (``OpenAILike``, the usual way round) is another package;
:class:`UpstreamOpenAI` is the same few overrides on ``OpenAI``: the context window and
chat/function-calling flags given, no tiktoken lookup, and the cap under the upstream's
own field name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import LLMMetadata
from llama_index.core.bridge.pydantic import Field
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.llms import LLM
from llama_index.llms.openai import OpenAI

from r2router_core import R2Router
from r2router_integrations.upstream_pool import client_options, place_cap, priced_upstreams

__all__ = ["UpstreamOpenAI", "llms_from_upstreams"]


class UpstreamOpenAI(OpenAI):
    """LlamaIndex's ``OpenAI`` LLM for any OpenAI-compatible upstream and model id."""

    context_window: int = Field(default=DEFAULT_CONTEXT_WINDOW, description="The model's context window.")
    """The model's context window in tokens (LlamaIndex sizes prompts with it)."""
    is_chat_model: bool = Field(default=True, description="Served at /chat/completions.")
    """Whether the upstream is called at ``/chat/completions`` (else ``/completions``)."""
    is_function_calling_model: bool = Field(default=False, description="Takes OpenAI tools.")
    """Whether the model takes OpenAI tools (agents need it)."""
    max_tokens_param: str = Field(default="max_tokens", description="The upstream's cap field.")
    """The upstream's cap field (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``...)."""

    @classmethod
    def class_name(cls) -> str:
        return "r2router_upstream_openai"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_tokens or -1,
            is_chat_model=self.is_chat_model,
            is_function_calling_model=self.is_function_calling_model,
            model_name=self.model,
        )

    @property
    def _tokenizer(self) -> None:  # tiktoken knows OpenAI's model ids only
        return None

    def _get_model_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        return place_cap(super()._get_model_kwargs(**kwargs), "max_tokens", self.max_tokens_param)


def llms_from_upstreams(
    router: R2Router,
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    **llm_options: Any,
) -> dict[str, LLM]:
    """Pool model name -> an :class:`UpstreamOpenAI` for its upstream (URL, model id, key, headers, timeout).

    ``llm_options`` are other fields of every LLM (``context_window``, ``is_function_calling_model``,
    ``temperature``...); see :func:`~r2router_integrations.upstream_pool.client_options` for the rest.

    Raises:
        ConfigError: See :func:`~r2router_integrations.upstream_pool.priced_upstreams`.
    """
    return {
        name: UpstreamOpenAI(api_base=up.base_url, **client_options(up), **llm_options)
        for name, up in priced_upstreams(router, path, environ=environ).items()
    }
