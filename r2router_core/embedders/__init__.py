"""Embedders: the protocol, caches, sentence-transformers models and the offline default.

``load_embedder(spec)`` turns an id into an embedder: ``"minilm"`` or
``"sentence-transformers/all-MiniLM-L6-v2"`` gives the offline default, any
other string is a sentence-transformers model name or local path.
"""

from __future__ import annotations

from r2router_core.embedders.base import CachedEmbedder, CallableEmbedder, Embedder, check_embeddings, check_texts
from r2router_core.embedders.sentence_transformer import (
    MINILM_ID,
    QWEN3_EMBEDDING_ID,
    SentenceTransformerEmbedder,
    default_embedder,
)

__all__ = [
    "MINILM_ID",
    "QWEN3_EMBEDDING_ID",
    "CachedEmbedder",
    "CallableEmbedder",
    "Embedder",
    "SentenceTransformerEmbedder",
    "check_embeddings",
    "check_texts",
    "default_embedder",
    "load_embedder",
]

_MINILM_ALIASES = {"minilm", "default", MINILM_ID, "all-MiniLM-L6-v2"}


def load_embedder(spec: str, *, cache_size: int = 10_000) -> Embedder:
    """Build an embedder from an id or path, behind an LRU cache.

    Args:
        spec: ``"minilm"``/``"default"``/the MiniLM id for the offline default,
            else a sentence-transformers model name or local directory.
        cache_size: Texts kept in the in-memory cache (0 disables it).
    """
    base: Embedder = default_embedder() if spec in _MINILM_ALIASES else SentenceTransformerEmbedder(spec)
    return CachedEmbedder(base, maxsize=cache_size) if cache_size else base
