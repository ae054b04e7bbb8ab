"""Training data: query embeddings and per-(model, budget) outcome labels.

On disk a training set is a directory::

    training_data/
        embeddings.npy   float32 (or float16, see TrainingData.save), shape (N, D)
        labels.json      {"models": [...], "budgets": [100, ..., null],
                          "quality": N x M x B, "tokens": N x M x B or N x M,
                          "mask": N x M x B of 0/1 (optional), "query_ids": [...] (optional)}

``null`` in ``quality`` or ``tokens`` marks a missing cell, as does a 0 in
``mask``. Missing cells are left out of that head's neighbours, never read as 0.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.config import Budget, check_budget, format_budget
from r2router_core.errors import CheckpointError, ConfigError, DataError, UnknownModelError

__all__ = ["TrainingData"]

logger = logging.getLogger(__name__)

EMBEDDINGS_FILE = "embeddings.npy"
LABELS_FILE = "labels.json"
EMBEDDING_DTYPES = ("float32", "float16")
_CHECK_ROWS = 65_536  # rows per block of the finiteness check (no N x D temporary)


def _all_finite(emb: NDArray[Any]) -> bool:
    """True if every value is finite; reads a memory map block by block."""
    return all(bool(np.isfinite(emb[i : i + _CHECK_ROWS]).all()) for i in range(0, emb.shape[0], _CHECK_ROWS))


def _reject_constant(name: str) -> float:
    raise DataError(f"labels.json holds {name}; mark a missing cell with null (or 0 in 'mask') instead")


def _check_names(models: Any) -> tuple[str, ...]:
    if isinstance(models, str) or not isinstance(models, Sequence | np.ndarray):
        raise DataError(f"models must be a list of model names, got {models!r}")
    names = tuple(models)
    if not names or not all(isinstance(m, str) and m.strip() for m in names):
        raise DataError(f"models must be a non-empty list of non-empty strings, got {list(names)!r}")
    if len(set(names)) != len(names):
        raise DataError(f"models must be unique, got {list(names)}")
    return names


def _check_budgets(budgets: Any) -> tuple[Budget, ...]:
    if isinstance(budgets, str) or not isinstance(budgets, Sequence | np.ndarray):
        raise DataError(f"budgets must be a list of positive ints (null = uncapped), got {budgets!r}")
    try:
        checked = tuple(check_budget(b, "each training-data budget") for b in budgets)
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    if not checked or len(set(checked)) != len(checked):
        raise DataError(f"budgets must be a non-empty list of unique budgets, got {list(checked)}")
    return checked


def _check_token_heads(
    quality: NDArray[np.float64], tokens: NDArray[np.float64], models: tuple[str, ...], budgets: tuple[Budget, ...]
) -> None:
    """Every arm with quality labels needs token labels, else its cost (and utility) would be NaN."""
    has_quality = np.asarray(np.any(~np.isnan(quality), axis=0))  # (M, B)
    has_tokens = np.asarray(np.any(~np.isnan(tokens), axis=0))  # (M, B) or (M,)
    for mi, model in enumerate(models):
        if tokens.ndim == 2:
            if has_quality[mi].any() and not has_tokens[mi]:
                raise DataError(
                    f"model {model!r} has quality labels but no observed token count; "
                    "its cost cannot be predicted. Add its output token counts or drop the model"
                )
            continue
        for bi, budget in enumerate(budgets):
            if has_quality[mi, bi] and not has_tokens[mi, bi]:
                raise DataError(
                    f"model {model!r} at budget {format_budget(budget)} has quality labels "
                    "but no observed token count; its cost cannot be predicted"
                )


def _as_float_array(value: Any, what: str) -> NDArray[np.float64]:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be a numeric array (nested lists; null for missing): {exc}") from exc


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Outcomes of M models at B budgets on N training queries.

    Attributes:
        embeddings: float32 array, shape (N, D); a float16 or memory-mapped
            float32/float16 array (as :meth:`load` returns) is kept as is, not copied.
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
        emb = self.embeddings if isinstance(self.embeddings, np.ndarray) else np.asarray(self.embeddings)
        if emb.ndim != 2 or emb.shape[0] < 1 or emb.shape[1] < 1:
            raise DataError(f"embeddings must have shape (N, D) with N, D >= 1, got shape {emb.shape}")
        if not np.issubdtype(emb.dtype, np.number) or not _all_finite(emb):
            raise DataError("embeddings hold NaN or inf values (or are not numeric); re-embed the queries")
        n = emb.shape[0]
        models, budgets = _check_names(self.models), _check_budgets(self.budgets)
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
        _check_token_heads(quality, tokens, models, budgets)
        if self.query_ids is not None and len(self.query_ids) != n:
            raise DataError(f"query_ids has {len(self.query_ids)} entries for {n} embeddings")
        keep = emb.dtype in (np.float32, np.float16) and emb.flags.c_contiguous  # memory maps stay maps
        object.__setattr__(self, "embeddings", emb if keep else np.ascontiguousarray(emb, dtype=np.float32))
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

    def subset(self, rows: Sequence[int] | Sequence[bool] | NDArray[Any]) -> TrainingData:
        """The training data restricted to some queries (for cross-validation).

        Args:
            rows: Row indices (in the given order), or a boolean mask of length N.

        Raises:
            DataError: An index out of range or a mask of the wrong length.
        """
        idx = self._row_index(rows)
        return TrainingData(
            embeddings=self.embeddings[idx],
            models=self.models,
            budgets=self.budgets,
            quality=self.quality[idx],
            tokens=self.tokens[idx],
            query_ids=None if self.query_ids is None else tuple(self.query_ids[i] for i in idx),
        )

    def _row_index(self, rows: Sequence[int] | Sequence[bool] | NDArray[Any]) -> NDArray[np.int64]:
        arr = np.asarray(rows)
        if arr.dtype == bool:
            if arr.shape != (self.n_queries,):
                raise DataError(f"a boolean mask of {self.n_queries} rows is needed, got shape {arr.shape}")
            return np.flatnonzero(arr)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"rows must be integer indices or a boolean mask, got dtype {arr.dtype}")
        idx = arr.astype(np.int64).reshape(-1)
        bad = idx[(idx < -self.n_queries) | (idx >= self.n_queries)]
        if bad.size:
            raise DataError(f"row index {int(bad[0])} is out of range for {self.n_queries} training queries")
        return idx

    def select(self, models: Sequence[str] | None = None, budgets: Sequence[Budget] | None = None) -> TrainingData:
        """The training data restricted to some models and/or budgets (order kept as given).

        Raises:
            UnknownModelError: A model not in the data.
            DataError: A budget not in the data.
        """
        mi, bi = [], []
        for name in models if models is not None else self.models:
            if name not in self.models:
                raise UnknownModelError(f"unknown model {name!r}; the training data has {list(self.models)}")
            mi.append(self.models.index(name))
        for budget in budgets if budgets is not None else self.budgets:
            if budget not in self.budgets:
                raise DataError(f"budget {budget!r} is not in the training data; it has {list(self.budgets)}")
            bi.append(self.budgets.index(budget))
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
    def save(self, directory: str | Path, *, embedding_dtype: str = "float32") -> Path:
        """Write ``embeddings.npy`` and ``labels.json`` (with a ``mask`` of observed cells) into ``directory``.

        Args:
            directory: Target directory.
            embedding_dtype: ``"float32"`` or ``"float16"``: half the disk and
                memory, embeddings rounded to about 3 significant digits.

        The embeddings are written to a temporary file and renamed, so saving over
        the checkpoint a memory map was opened from leaves that map intact.
        """
        if embedding_dtype not in EMBEDDING_DTYPES:
            raise ConfigError(f"embedding_dtype must be one of {list(EMBEDDING_DTYPES)}, got {embedding_dtype!r}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{EMBEDDINGS_FILE}.tmp"
        with tmp.open("wb") as f:
            np.save(f, np.asarray(self.embeddings, dtype=embedding_dtype), allow_pickle=False)
        os.replace(tmp, directory / EMBEDDINGS_FILE)
        labels: dict[str, Any] = {
            "models": list(self.models),
            "budgets": list(self.budgets),
            "quality": _nan_to_none(self.quality),
            "tokens": _nan_to_none(self.tokens),
            "mask": (~np.isnan(self.quality)).astype(int).tolist(),  # 1 = observed, 0 = failed or never run
        }
        if self.query_ids is not None:
            labels["query_ids"] = list(self.query_ids)
        (directory / LABELS_FILE).write_text(json.dumps(labels, separators=(",", ":")), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TrainingData:
        """Read a training-data directory; shapes, NaNs and ranges are checked.

        The embeddings are memory-mapped read-only (``np.load(mmap_mode="r")``):
        pages are read from disk when a search touches them, never copied whole.

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
            embeddings = np.load(emb_path, mmap_mode="r", allow_pickle=False)
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
            mask = _as_float_array(labels["mask"], "mask")
            if np.isnan(mask).any():
                raise DataError("mask holds null values; use 1 for observed cells and 0 for missing ones")
            mask = mask != 0
            if mask.shape != quality.shape:
                raise DataError(f"mask must have the shape of quality {quality.shape}, got {mask.shape}")
            if np.isnan(quality[mask]).any():
                raise DataError("quality is null/NaN in cells the mask marks as observed; fix the value or set mask 0")
            quality = np.where(mask, quality, np.nan)
            if tokens.ndim == 3:
                tokens = np.where(mask, tokens, np.nan)
        return cls(
            embeddings=embeddings if isinstance(embeddings, np.ndarray) else np.asarray(embeddings),
            models=labels["models"],
            budgets=labels["budgets"],
            quality=quality,
            tokens=tokens,
            query_ids=labels.get("query_ids"),
        )


def _nan_to_none(array: NDArray[np.float64]) -> Any:
    obj = array.astype(object)
    obj[np.isnan(array)] = None
    return obj.tolist()
