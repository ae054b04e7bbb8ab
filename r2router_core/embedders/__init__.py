"""Embedders: the protocol, caches, sentence-transformers models and the offline default.

``load_embedder(spec)`` turns an id into an embedder: ``"minilm"`` or
``"sentence-transformers/all-MiniLM-L6-v2"`` gives the offline default,
``"r2router-hash-embedder-<dim>"`` the weightless test double, any other
string is a sentence-transformers model name or local path.
"""

from __future__ import annotations

from r2router_core.embedders.base import CachedEmbedder, CallableEmbedder, Embedder, check_embeddings, check_texts
from r2router_core.embedders.sentence_transformer import (
    MINILM_ID,
    QWEN3_EMBEDDING_ID,
    SentenceTransformerEmbedder,
    default_embedder,
)
from r2router_core.errors import ConfigError

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


def _hash_embedder(spec: str) -> Embedder:
    """``"r2router-hash-embedder-<dim>"`` -> the test double :class:`r2router_core.testing.HashEmbedder`."""
    from r2router_core.testing import HASH_EMBEDDER_ID, HashEmbedder

    dim = spec.removeprefix(f"{HASH_EMBEDDER_ID}-")
    if not dim.isdigit() or int(dim) < 1:
        raise ConfigError(f"a hash-embedder id is '{HASH_EMBEDDER_ID}-<dim>' with a positive int dim, got {spec!r}")
    return HashEmbedder(int(dim))


def load_embedder(spec: str, *, cache_size: int = 10_000) -> Embedder:
    """Build an embedder from an id or path, behind an LRU cache.

    Args:
        spec: ``"minilm"``/``"default"``/the MiniLM id for the offline default;
            ``"r2router-hash-embedder-<dim>"`` for the test double
            :class:`r2router_core.testing.HashEmbedder`; else a sentence-transformers
            model name or local directory.
        cache_size: Texts kept in the in-memory cache (0 disables it).

    Raises:
        ConfigError: ``spec`` is not a non-empty string, or a malformed hash-embedder id.

    A model id that can be neither read from the local Hugging Face cache nor
    downloaded fails on first use, after one Hub request at most (none offline),
    with a ``ResourceUnavailableError`` listing the valid specs.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"an embedder spec must be a model id or path, got {spec!r}")
    base: Embedder
    if spec in _MINILM_ALIASES:
        base = default_embedder()
    elif spec.startswith("r2router-hash-embedder-"):
        base = _hash_embedder(spec)
    else:
        base = SentenceTransformerEmbedder(spec)
    return CachedEmbedder(base, maxsize=cache_size) if cache_size else base
