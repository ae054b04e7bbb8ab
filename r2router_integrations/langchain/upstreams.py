"""LangChain pool models from ``upstreams.yaml``: one ``ChatOpenAI`` per upstream.

Imported by :meth:`R2RouterChatModel.from_upstreams` only (it needs ``langchain-openai``
and the ``server`` extra, which reads the file).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from r2router_core import R2Router
from r2router_integrations.upstream_pool import client_options, place_cap, priced_upstreams

__all__ = ["UpstreamChatOpenAI", "chat_models_from_upstreams"]


class UpstreamChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` that sends the output cap under an OpenAI-compatible upstream's own field name."""

    max_tokens_param: str = "max_completion_tokens"
    """The upstream's cap field (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``...)."""

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        return place_cap(payload, "max_completion_tokens", self.max_tokens_param)


def chat_models_from_upstreams(
    router: R2Router, path: str | Path, *, environ: Mapping[str, str] | None = None
) -> dict[str, BaseChatModel]:
    """Pool model name -> an :class:`UpstreamChatOpenAI` for its upstream (URL, model id, key, headers, timeout).

    Raises:
        ConfigError: See :func:`~r2router_integrations.upstream_pool.priced_upstreams`.
    """
    return {
        name: UpstreamChatOpenAI(base_url=up.base_url, **client_options(up))
        for name, up in priced_upstreams(router, path, environ=environ).items()
    }
