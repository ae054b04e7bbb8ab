"""Training data: query embeddings and per-(model, budget) outcome labels.

On disk a training set is a directory::

    training_data/
        embeddings.npy   float32, shape (N, D)
        labels.json      {"models": [...], "budgets": [100, ..., null],
                          "quality": N x M x B, "tokens": N x M x B or N x M,
                          "mask": N x M x B of 0/1 (optional), "query_ids": [...] (optional)}

``null`` in ``quality`` or ``tokens`` marks a missing cell, as does a 0 in
``mask``. Missing cells are left out of that head's neighbours, never read as 0.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.config import Budget
from r2router_core.errors import CheckpointError, DataError

__all__ = ["TrainingData"]

logger = logging.getLogger(__name__)

EMBEDDINGS_FILE = "embeddings.npy"
LABELS_FILE = "labels.json"


def _reject_constant(name: str) -> float:
    raise DataError(f"labels.json holds {name}; mark a missing cell with null (or 0 in 'mask') instead")


def _as_float_array(value: Any, what: str) -> NDArray[np.float64]:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be a numeric array (nested lists; null for missing): {exc}") from exc


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Outcomes of M models at B budgets on N training queries.

    Attributes:
        embeddings: float32 array, shape (N, D).
        models: The M model names, in label order.
        budgets: The B budgets (positive ints, ``None`` = uncapped), in label order.
        quality: float array, shape (N, M, B), values in [0, 1]; NaN where missing.
        tokens: float array, shape (N, M, B) or (N, M), output tokens >= 0; NaN where missing.
        query_ids: Optional N ids (e.g. RouterArena ``global_index``) for joins and splits.
    """

    embeddings: NDArray[np.float32]
    models: tuple[str, ...]
    budgets: tuple[Budget, ...]
    quality: NDArray[np.float64]
    tokens: NDArray[np.float64]
    query_ids: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        emb = np.asarray(self.embeddings)
        if emb.ndim != 2 or emb.shape[0] < 1 or emb.shape[1] < 1:
            raise DataError(f"embeddings must have shape (N, D) with N, D >= 1, got shape {emb.shape}")
        if not np.issubdtype(emb.dtype, np.number) or not np.all(np.isfinite(emb)):
            raise DataError("embeddings hold NaN or inf values (or are not numeric); re-embed the queries")
        n = emb.shape[0]
        models, budgets = tuple(self.models), tuple(self.budgets)
        quality = _as_float_array(self.quality, "quality")
        tokens = _as_float_array(self.tokens, "tokens")
        m, b = len(models), len(budgets)
        if quality.shape != (n, m, b):
            raise DataError(
                f"quality must have shape (N, M, B) = ({n}, {m}, {b}) for {n} embeddings, "
                f"{m} models and {b} budgets, got {quality.shape}"
            )
        if tokens.shape not in ((n, m, b), (n, m)):
            raise DataError(f"tokens must have shape ({n}, {m}, {b}) or ({n}, {m}), got {tokens.shape}")
        observed_q = quality[~np.isnan(quality)]
        if observed_q.size and (observed_q.min() < 0 or observed_q.max() > 1 or not np.all(np.isfinite(observed_q))):
            raise DataError(f"quality must lie in [0, 1], got values from {observed_q.min()} to {observed_q.max()}")
        observed_t = tokens[~np.isnan(tokens)]
        if observed_t.size and (observed_t.min() < 0 or not np.all(np.isfinite(observed_t))):
            raise DataError(f"tokens must be finite and >= 0, got minimum {observed_t.min()}")
        if self.query_ids is not None and len(self.query_ids) != n:
            raise DataError(f"query_ids has {len(self.query_ids)} entries for {n} embeddings")
        object.__setattr__(self, "embeddings", np.ascontiguousarray(emb, dtype=np.float32))
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "budgets", budgets)
        object.__setattr__(self, "quality", quality)
        object.__setattr__(self, "tokens", tokens)
        if self.query_ids is not None:
            object.__setattr__(self, "query_ids", tuple(str(q) for q in self.query_ids))

    # -- shapes --------------------------------------------------------------------
    @property
    def n_queries(self) -> int:
        """N."""
        return int(self.embeddings.shape[0])

    @property
    def dim(self) -> int:
        """D, the embedding dimension."""
        return int(self.embeddings.shape[1])

    @property
    def observed(self) -> NDArray[np.bool_]:
        """Boolean (N, M, B): True where the quality of a cell is known."""
        return ~np.isnan(self.quality)

    def subset(self, rows: Sequence[int] | NDArray[np.integer[Any]]) -> TrainingData:
        """The training data restricted to some queries (for cross-validation)."""
        idx = np.asarray(rows, dtype=np.int64)
        return TrainingData(
            embeddings=self.embeddings[idx],
            models=self.models,
            budgets=self.budgets,
            quality=self.quality[idx],
            tokens=self.tokens[idx],
            query_ids=None if self.query_ids is None else tuple(self.query_ids[i] for i in idx),
        )

    def select(self, models: Sequence[str] | None = None, budgets: Sequence[Budget] | None = None) -> TrainingData:
        """The training data restricted to some models and/or budgets (order kept as given)."""
        mi = [self.models.index(x) for x in (models if models is not None else self.models)]
        bi = [self.budgets.index(x) for x in (budgets if budgets is not None else self.budgets)]
        tokens = self.tokens[:, mi][:, :, bi] if self.tokens.ndim == 3 else self.tokens[:, mi]
        return TrainingData(
            embeddings=self.embeddings,
            models=tuple(self.models[i] for i in mi),
            budgets=tuple(self.budgets[i] for i in bi),
            quality=self.quality[:, mi][:, :, bi],
            tokens=tokens,
            query_ids=self.query_ids,
        )

    # -- disk ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``embeddings.npy`` and ``labels.json`` into ``directory`` (created)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / EMBEDDINGS_FILE, self.embeddings, allow_pickle=False)
        labels: dict[str, Any] = {
            "models": list(self.models),
            "budgets": list(self.budgets),
            "quality": _nan_to_none(self.quality),
            "tokens": _nan_to_none(self.tokens),
        }
        if self.query_ids is not None:
            labels["query_ids"] = list(self.query_ids)
        (directory / LABELS_FILE).write_text(json.dumps(labels, separators=(",", ":")), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TrainingData:
        """Read a training-data directory; shapes, NaNs and ranges are checked.

        Raises:
            CheckpointError: A file is missing or unreadable.
            DataError: The content is inconsistent.
        """
        directory = Path(directory)
        emb_path, labels_path = directory / EMBEDDINGS_FILE, directory / LABELS_FILE
        for p in (emb_path, labels_path):
            if not p.is_file():
                raise CheckpointError(
                    f"missing {p}; a training-data directory holds {EMBEDDINGS_FILE} (N x D) and {LABELS_FILE}"
                )
        try:
            embeddings = np.load(emb_path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise CheckpointError(f"{emb_path} is not a readable .npy array ({exc})") from exc
        try:
            labels = json.loads(labels_path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{labels_path} is not valid JSON ({exc})") from exc
        return cls.from_labels(embeddings, labels)

    @classmethod
    def from_labels(cls, embeddings: Any, labels: Any) -> TrainingData:
        """Build from an embedding array and a parsed ``labels.json`` object."""
        if not isinstance(labels, dict):
            raise DataError(f"labels.json must hold a JSON object, got {type(labels).__name__}")
        missing = [k for k in ("models", "budgets", "quality", "tokens") if k not in labels]
        if missing:
            raise DataError(f"labels.json lacks {missing}; it needs models, budgets, quality and tokens")
        quality = _as_float_array(labels["quality"], "quality")
        tokens = _as_float_array(labels["tokens"], "tokens")
        if "mask" in labels:
            mask = np.asarray(labels["mask"], dtype=bool)
            if mask.shape != quality.shape:
                raise DataError(f"mask must have the shape of quality {quality.shape}, got {mask.shape}")
            if np.isnan(quality[mask]).any():
                raise DataError("quality is null/NaN in cells the mask marks as observed; fix the value or set mask 0")
            quality = np.where(mask, quality, np.nan)
            if tokens.ndim == 3:
                tokens = np.where(mask, tokens, np.nan)
        return cls(
            embeddings=np.asarray(embeddings),
            models=tuple(labels["models"]),
            budgets=tuple(labels["budgets"]),
            quality=quality,
            tokens=tokens,
            query_ids=labels.get("query_ids"),
        )


def _nan_to_none(array: NDArray[np.float64]) -> Any:
    obj = array.astype(object)
    obj[np.isnan(array)] = None
    return obj.tolist()
