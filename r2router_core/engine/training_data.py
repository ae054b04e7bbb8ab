"""Training data: query embeddings and per-(model, budget) outcome labels.

On disk a training set is a directory::

    training_data/
        embeddings.npy   float32 (or float16, see TrainingData.save), shape (N, D)
        labels.json      the labels inline (hand-written, and checkpoints saved before labels.npy):
                         {"models": [...], "budgets": [100, ..., null],
                          "quality": N x M x B, "tokens": N x M x B or N x M,
                          "mask": N x M x B of 0/1 (optional), "query_ids": [...] (optional)}
                         or, as TrainingData.save writes, only the metadata:
                         {"models": [...], "budgets": [...], "labels_file": "labels.npy",
                          "token_heads": "model" or "arm", "query_ids": [...] (optional)}
        labels.npy       float64 (N, M*B + M) or (N, 2*M*B), NaN = missing: the quality of the
                         M*B arms (model-major), then the tokens per model or per arm

``labels.npy`` is the label matrix the predictors fit on, so it opens
memory-mapped, like the embeddings, and serves the kNN without a copy instead
of being parsed from JSON (hundreds of MB of text at N = 1M).

``null`` (or NaN in ``labels.npy``) in ``quality`` or ``tokens`` marks a
missing cell, as does a 0 in ``mask``. Missing cells are left out of that
head's neighbours, never read as 0.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import KW_ONLY, InitVar, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import Budget, check_budget, format_budget
from r2router_core.engine.index import fingerprint_file
from r2router_core.errors import CheckpointError, ConfigError, DataError, UnknownModelError

__all__ = ["TrainingData"]

logger = logging.getLogger(__name__)

EMBEDDINGS_FILE = "embeddings.npy"
LABELS_FILE = "labels.json"
LABEL_MATRIX_FILE = "labels.npy"
TOKEN_HEADS = ("model", "arm")  # one token head per model (tokens (N, M)), or per arm (N, M, B)
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
    has_quality: NDArray[np.bool_], has_tokens: NDArray[np.bool_], models: tuple[str, ...], budgets: tuple[Budget, ...]
) -> None:
    """Every arm with quality labels (``has_quality`` (M, B)) needs token labels (``has_tokens`` (M, B) or (M,)),
    else its cost (and utility) would be NaN."""
    for mi, model in enumerate(models):
        if has_tokens.ndim == 1:
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


def _check_label_values(
    quality: NDArray[np.float64], tokens: NDArray[np.float64], models: tuple[str, ...], budgets: tuple[Budget, ...]
) -> None:
    """Quality in [0, 1], tokens finite and >= 0, token labels for every arm with quality labels."""
    (q_lo, q_hi), (t_lo, t_hi) = _head_ranges(quality), _head_ranges(tokens)
    q_min, q_max = float(np.fmin.reduce(q_lo, axis=None)), float(np.fmax.reduce(q_hi, axis=None))
    if q_min < 0 or q_max > 1:
        raise DataError(f"quality must lie in [0, 1], got values from {q_min} to {q_max}")
    t_min, t_max = float(np.fmin.reduce(t_lo, axis=None)), float(np.fmax.reduce(t_hi, axis=None))
    if t_min < 0 or t_max == np.inf:
        raise DataError(f"tokens must be finite and >= 0, got values from {t_min} to {t_max}")
    _check_token_heads(~np.isnan(q_hi), ~np.isnan(t_hi), models, budgets)


def _head_ranges(values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per head (every axis but the rows), the smallest and largest non-NaN value; NaN where a head has none.

    ``np.fmin``/``np.fmax`` skip NaN and reduce without copying ``values`` (a memory map is read once,
    no N x H temporary); +-inf stay and fail the callers' range checks.
    """
    return np.fmin.reduce(values, axis=0), np.fmax.reduce(values, axis=0)


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
    _label_matrix: NDArray[np.float64] | None = field(default=None, init=False, repr=False)
    _: KW_ONLY
    _values_checked: InitVar[bool] = False  # load(): the files are the ones save() wrote after checking them

    def __post_init__(self, _values_checked: bool) -> None:
        emb = self.embeddings if isinstance(self.embeddings, np.ndarray) else np.asarray(self.embeddings)
        if emb.ndim != 2 or emb.shape[0] < 1 or emb.shape[1] < 1:
            raise DataError(f"embeddings must have shape (N, D) with N, D >= 1, got shape {emb.shape}")
        if not np.issubdtype(emb.dtype, np.number) or not (_values_checked or _all_finite(emb)):
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
        if not _values_checked:
            _check_label_values(quality, tokens, models, budgets)
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

    def label_matrix(self) -> NDArray[np.float64]:
        """The labels of every head, (N, M*B + M) or (N, 2*M*B): quality (N, M*B), then tokens.

        A view of ``labels.npy`` (memory-mapped, no copy) when this data was
        loaded from one; else a new array.
        """
        if self._label_matrix is not None:
            return self._label_matrix
        n, m, b = self.quality.shape
        return np.concatenate([self.quality.reshape(n, m * b), self.tokens.reshape(n, -1)], axis=1)

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
        """Write ``embeddings.npy``, ``labels.npy`` and ``labels.json`` into ``directory``.

        ``labels.npy`` holds :meth:`label_matrix` (NaN = missing cell);
        ``labels.json`` the models, budgets, token layout and query ids.

        Args:
            directory: Target directory.
            embedding_dtype: ``"float32"`` or ``"float16"``: half the disk and
                memory, embeddings rounded to about 3 significant digits.

        The arrays are written to temporary files and renamed, so saving over
        the checkpoint memory maps were opened from leaves those maps intact.
        """
        if embedding_dtype not in EMBEDDING_DTYPES:
            raise ConfigError(f"embedding_dtype must be one of {list(EMBEDDING_DTYPES)}, got {embedding_dtype!r}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with np.errstate(over="ignore"):  # values beyond float16 become inf: refused just below
            embeddings = np.asarray(self.embeddings, dtype=embedding_dtype)
        if embeddings.dtype != self.embeddings.dtype and not _all_finite(embeddings):
            raise DataError(f"the embeddings exceed the range of {embedding_dtype} (inf once converted); save float32")
        _save_npy(directory / EMBEDDINGS_FILE, embeddings)
        _save_npy(directory / LABEL_MATRIX_FILE, self.label_matrix())
        labels: dict[str, Any] = {
            "models": list(self.models),
            "budgets": list(self.budgets),
            "labels_file": LABEL_MATRIX_FILE,
            "token_heads": "arm" if self.tokens.ndim == 3 else "model",
            "checked": {name: fingerprint_file(directory / name) for name in (EMBEDDINGS_FILE, LABEL_MATRIX_FILE)},
        }
        if self.query_ids is not None:
            labels["query_ids"] = list(self.query_ids)
        (directory / LABELS_FILE).write_text(json.dumps(labels, separators=(",", ":")), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TrainingData:
        """Read a training-data directory; shapes, NaNs and ranges are checked.

        The embeddings and ``labels.npy`` are memory-mapped read-only
        (``np.load(mmap_mode="r")``): pages are read from disk when used, never
        copied whole. Labels given inline in ``labels.json`` are parsed. Files
        whose fingerprints are those :meth:`save` recorded get their shapes
        checked, not every value again.

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
        if not (isinstance(labels, dict) and "labels_file" in labels):
            return cls.from_labels(embeddings, labels)
        return cls._from_label_matrix(directory, embeddings, labels)

    @classmethod
    def _from_label_matrix(cls, directory: Path, embeddings: NDArray[Any], labels: dict[str, Any]) -> TrainingData:
        """The data of a directory whose ``labels.json`` names its ``labels.npy``; quality and tokens view the map."""
        matrix = _open_label_matrix(directory, labels["labels_file"])
        quality, tokens = _split_label_matrix(matrix, labels, embeddings.shape[0] if embeddings.ndim else 0)
        data = cls(
            embeddings,
            labels["models"],
            labels["budgets"],
            quality,
            tokens,
            labels.get("query_ids"),
            _values_checked=_unchanged_since_save(directory, labels, labels["labels_file"]),
        )
        if np.may_share_memory(data.quality, matrix):  # not copied: the predictors may read the file itself
            object.__setattr__(data, "_label_matrix", np.asarray(matrix))
        return data

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


def _save_npy(path: Path, array: NDArray[Any]) -> None:
    """``np.save`` to a temporary file renamed over ``path``: a memory map of the old file stays valid."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        np.save(f, array, allow_pickle=False)
    os.replace(tmp, path)


def _open_label_matrix(directory: Path, name: Any) -> NDArray[Any]:
    """The ``.npy`` file ``labels.json`` names in ``labels_file``, memory-mapped read-only."""
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".npy"):
        raise DataError(f"{LABELS_FILE} 'labels_file' must name a .npy file beside it, got {name!r}")
    path = directory / name
    if not path.is_file():
        raise CheckpointError(f"missing {path}, the label matrix {LABELS_FILE} names")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CheckpointError(f"{path} is not a readable .npy array ({exc})") from exc


def _unchanged_since_save(directory: Path, labels: dict[str, Any], matrix_name: str) -> bool:
    """True if the embeddings and the label matrix have the fingerprints :meth:`TrainingData.save` recorded.

    save() writes data whose values were checked, so load() then checks shapes
    only, not every value (a pass over 1.7 GB at N = 1M, D = 384). The
    fingerprint (:func:`r2router_core.engine.index.fingerprint_file`) samples blocks
    of files over 64 MiB: an in-place edit between them goes unseen, the same
    trade-off as for the saved ann index.
    """
    checked = labels.get("checked")
    if not isinstance(checked, dict):
        return False
    return all(checked.get(name) == fingerprint_file(directory / name) for name in (EMBEDDINGS_FILE, matrix_name))


def _split_label_matrix(matrix: NDArray[Any], labels: dict[str, Any], n: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """Views (no copy) of ``labels.npy`` as quality (N, M, B) and tokens (N, M) or (N, M, B)."""
    m, b = len(_check_names(labels.get("models"))), len(_check_budgets(labels.get("budgets")))
    per = labels.get("token_heads")
    if per not in TOKEN_HEADS:
        raise DataError(f"{LABELS_FILE} 'token_heads' must be one of {list(TOKEN_HEADS)}, got {per!r}")
    columns = m * b + (m if per == "model" else m * b)
    if matrix.shape != (n, columns):
        raise DataError(
            f"{LABEL_MATRIX_FILE} must have shape (N, M*B + {'M' if per == 'model' else 'M*B'}) = ({n}, {columns}) "
            f"for {n} embeddings, {m} models and {b} budgets, got {matrix.shape}"
        )
    quality = matrix[:, : m * b].reshape(n, m, b)
    tokens = matrix[:, m * b :]
    return quality, tokens if per == "model" else tokens.reshape(n, m, b)
