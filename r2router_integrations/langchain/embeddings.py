"""Use a LangChain ``Embeddings`` object (HuggingFaceEmbeddings, OpenAIEmbeddings...) as a router's embedder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from numpy.typing import NDArray

from r2router_core import ConfigError, EmbeddingError
from r2router_core.embedders import check_embeddings, check_texts

__all__ = ["LangChainEmbedder"]

_PROBE = "r2router dimension probe"


class LangChainEmbedder:
    """An r2router :class:`~r2router_core.embedders.Embedder` backed by LangChain ``Embeddings``.

    Texts are embedded with ``embed_documents`` (training and routing use the
    same call, so the vectors match). A router checks ``id`` and ``dim``
    against the embedder its training embeddings came from.

    Args:
        embeddings: The LangChain embeddings object.
        id: Embedder id recorded in checkpoints; defaults to the object's
            ``model`` or ``model_name`` (e.g. ``"sentence-transformers/all-MiniLM-L6-v2"``).
        dim: Output dimension; ``None`` embeds one probe text to find it.

    Raises:
        ConfigError: No ``id`` given and the object names no model.

    Example:
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> embedder = LangChainEmbedder(DeterministicFakeEmbedding(size=8), id="fake-8")
        >>> embedder.dim, embedder.embed(["hi"]).shape
        (8, (1, 8))
    """

    def __init__(self, embeddings: Embeddings, *, id: str | None = None, dim: int | None = None) -> None:
        if not isinstance(embeddings, Embeddings):
            raise ConfigError(f"expected a langchain_core Embeddings object, got {type(embeddings).__name__}")
        self.embeddings = embeddings
        self.id = id if id is not None else _model_id(embeddings)
        self.dim = dim if dim is not None else self._probe_dim()

    def _probe_dim(self) -> int:
        vector = np.asarray(self.embeddings.embed_documents([_PROBE]), dtype=np.float32)
        if vector.ndim != 2 or vector.shape[0] != 1 or vector.shape[1] < 1:
            raise EmbeddingError(f"{self.id} returned shape {vector.shape} for one probe text; expected (1, D)")
        return int(vector.shape[1])

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts; returns float32 of shape (len(texts), dim)."""
        texts = check_texts(texts)
        out = check_embeddings(self.embeddings.embed_documents(texts), self.dim, what=f"embeddings from {self.id}")
        if out.shape[0] != len(texts):
            raise EmbeddingError(f"embedder {self.id} returned {out.shape[0]} rows for {len(texts)} texts")
        return out

    def __repr__(self) -> str:
        return f"LangChainEmbedder({type(self.embeddings).__name__}, id={self.id!r}, dim={self.dim})"


def _model_id(embeddings: Any) -> str:
    for attr in ("model", "model_name"):
        value = getattr(embeddings, attr, None)
        if isinstance(value, str) and value:
            return value
    raise ConfigError(
        f"{type(embeddings).__name__} names no model (no .model or .model_name); "
        "pass id=... (the embedder id your router was trained with)"
    )
