"""Test doubles shipped with the library: a deterministic embedder with no model weights.

Use them in your own tests to exercise routing and the integrations offline.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from r2router_core.embedders.base import check_texts
from r2router_core.errors import ConfigError

__all__ = ["HASH_EMBEDDER_ID", "HashEmbedder"]

HASH_EMBEDDER_ID = "r2router-hash-embedder"
"""Prefix of the ids of :class:`HashEmbedder`: ``"r2router-hash-embedder-<dim>"``."""

_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """Bag-of-words embedder: each word maps to a fixed pseudo-random unit vector.

    Texts that share words get similar embeddings, so kNN routing behaves
    sensibly, yet no model is loaded. Deterministic across runs and machines.

    Args:
        dim: Output dimension.
        id: Prefix of the embedder id recorded in checkpoints (the id is ``f"{id}-{dim}"``);
            ``r2router_core.embedders.load_embedder`` rebuilds the embedder from the default one.

    Raises:
        ConfigError: ``dim`` is not a positive int.
    """

    def __init__(self, dim: int = 64, *, id: str = HASH_EMBEDDER_ID) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"HashEmbedder dim must be a positive int, got {dim!r}")
        self.dim = dim
        self.id = f"{id}-{dim}"
        self._cache: dict[str, NDArray[np.float32]] = {}

    def _word(self, word: str) -> NDArray[np.float32]:
        vec = self._cache.get(word)
        if vec is None:
            seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
            vec = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            vec /= np.linalg.norm(vec)
            self._cache[word] = vec
        return vec

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts; returns float32 of shape (len(texts), dim)."""
        checked = check_texts(texts)
        out = np.empty((len(checked), self.dim), dtype=np.float32)
        for i, text in enumerate(checked):
            words = _WORD.findall(text.lower()) or [text.strip()]
            out[i] = np.sum([self._word(w) for w in words], axis=0)
        return out
