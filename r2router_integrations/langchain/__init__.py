"""LangChain integration: :class:`R2RouterChatModel`, a chat model that routes every call.

Needs the ``langchain`` extra (``pip install 'r2router[langchain]'``); the core
never imports LangChain. Test doubles live in
:mod:`r2router_integrations.langchain.testing`.
"""

from __future__ import annotations

from r2router_core import missing_dependency

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_dependency("langchain_core", "langchain", "the LangChain integration") from exc

from r2router_integrations.langchain.chat_model import R2RouterChatModel
from r2router_integrations.langchain.embeddings import LangChainEmbedder
from r2router_integrations.langchain.metadata import METADATA_KEY

__all__ = ["METADATA_KEY", "LangChainEmbedder", "R2RouterChatModel"]
