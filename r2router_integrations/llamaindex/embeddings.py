"""LlamaIndexEmbedder: any LlamaIndex ``BaseEmbedding`` as the router's embedder.

    router.embedder = LlamaIndexEmbedder(Settings.embed_model)

The router checks the adapter's ``id`` and ``dim`` against its checkpoint, so
the id must be the name the checkpoint records (by default the embedding
model's ``model_name``, e.g. ``"sentence-transformers/all-MiniLM-L6-v2"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from numpy.typing import NDArray

from r2router_core import ConfigError
from r2router_core.embedders import check_embeddings, check_texts

__all__ = ["LlamaIndexEmbedder"]

_PROBE = "dimension probe"


class LlamaIndexEmbedder:
    """Adapt a LlamaIndex ``BaseEmbedding`` to r2router's ``Embedder`` protocol.

    Args:
        embed_model: The LlamaIndex embedding model.
        id: Embedder id checked against the router's checkpoint; default the
            model's ``model_name`` (required when that is ``"unknown"``).
        dim: Output dimension; default found by embedding one probe text.
        mode: ``"text"`` (default) embeds with ``get_text_embedding_batch``, as
            training prompts are embedded; ``"query"`` with
            ``get_query_embedding`` (models with a query instruction).
    """

    def __init__(
        self,
        embed_model: BaseEmbedding,
        *,
        id: str | None = None,
        dim: int | None = None,
        mode: Literal["text", "query"] = "text",
    ) -> None:
        if not isinstance(embed_model, BaseEmbedding):
            raise ConfigError(f"embed_model must be a LlamaIndex BaseEmbedding, got {type(embed_model).__name__}")
        name = id or embed_model.model_name
        if not name or name == "unknown":
            raise ConfigError(
                f"{type(embed_model).__name__} has no model_name; pass id='<the embedder id your router was "
                "trained with>' (see router.config.embedder)"
            )
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ConfigError(f"dim must be a positive int or None (probe), got {dim!r}")
        if mode not in ("text", "query"):
            raise ConfigError(f"mode must be 'text' or 'query', got {mode!r}")
        self.embed_model = embed_model
        self.id = name
        self.mode = mode
        self._dim = dim

    @property
    def dim(self) -> int:
        """Output dimension D (probed once if not given)."""
        if self._dim is None:
            self._dim = int(np.asarray(self.embed_model.get_text_embedding(_PROBE)).shape[-1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts; returns float32 of shape (len(texts), dim)."""
        texts = check_texts(texts)
        if self.mode == "query":
            vectors = [self.embed_model.get_query_embedding(t) for t in texts]
        else:
            vectors = self.embed_model.get_text_embedding_batch(texts)
        return check_embeddings(vectors, self.dim, what=f"embeddings from {self.id}")

    def __repr__(self) -> str:
        return f"LlamaIndexEmbedder({type(self.embed_model).__name__}, id={self.id!r}, mode={self.mode!r})"
