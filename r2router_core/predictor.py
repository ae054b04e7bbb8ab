"""k-nearest-neighbour regression for many heads with ONE neighbour search.

:class:`KNNPredictor` follows the scikit-learn contract (``__init__`` stores
settings, ``fit`` returns self, learned state ends in ``_``). It gives the same
numbers as one ``sklearn.neighbors.KNeighborsRegressor(metric="cosine",
weights="distance")`` per head, but computes the query-to-training distances
once per batch and serves every quality and token head from them: the
prediction of all H heads is a [k] weight vector times a [k, H] label matrix.

Heads may have missing labels (NaN). Each distinct pattern of missing rows is
one *group* of heads; a group picks its own k nearest among its observed rows
from the shared distance matrix, so a missing cell is never read as 0.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from r2router_core.errors import ConfigError, DataError, EmbeddingError

__all__ = ["KNNPredictor"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _HeadGroup:
    heads: NDArray[np.intp]  # which output columns this group serves
    rows: NDArray[np.intp] | None  # training rows observed for all of them; None = every row
    labels: NDArray[np.float64]  # (n_rows, len(heads))
    k: int


def _unit_rows(x: NDArray[Any], dtype: type[np.floating[Any]]) -> NDArray[Any]:
    x = np.asarray(x, dtype=dtype)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0  # as scikit-learn's normalize(): a zero vector stays zero
    return np.ascontiguousarray(x / norms)


class KNNPredictor:
    """Multi-head kNN regressor with cosine distance and one search per batch.

    Args:
        n_neighbors: k, the number of neighbours (clamped to the observed rows
            of a head, with a warning).
        weights: ``"distance"`` (1/distance; exact matches take all the weight)
            or ``"uniform"``.
        metric: Only ``"cosine"``.
        dtype: Floating type of the distance computation; float32 (default) is
            about twice as fast, float64 reproduces scikit-learn bit for bit.
    """

    def __init__(
        self,
        n_neighbors: int = 80,
        *,
        weights: Literal["distance", "uniform"] = "distance",
        metric: Literal["cosine"] = "cosine",
        dtype: type[np.floating[Any]] = np.float32,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.metric = metric
        self.dtype = dtype

    def fit(self, X: NDArray[Any], Y: NDArray[Any]) -> KNNPredictor:
        """Store the training set.

        Args:
            X: Training embeddings, shape (N, D).
            Y: Labels, shape (N, H); NaN marks a missing label.

        Returns:
            self.
        """
        if isinstance(self.n_neighbors, bool) or not isinstance(self.n_neighbors, int) or self.n_neighbors < 1:
            raise ConfigError(f"n_neighbors must be an int >= 1, got {self.n_neighbors!r}")
        if self.weights not in ("distance", "uniform"):
            raise ConfigError(f"weights must be 'distance' or 'uniform', got {self.weights!r}")
        if self.metric != "cosine":
            raise ConfigError(f"metric must be 'cosine', got {self.metric!r}")
        X = np.asarray(X)
        Y = np.asarray(Y, dtype=np.float64)
        if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
            raise DataError(f"X must be (N, D) and Y (N, H) with the same N, got {X.shape} and {Y.shape}")
        self.X_unit_ = _unit_rows(X, self.dtype)
        self.n_features_in_ = X.shape[1]
        self.n_samples_fit_ = X.shape[0]
        self.n_outputs_ = Y.shape[1]
        self.groups_ = self._group_heads(Y)
        return self

    def _group_heads(self, Y: NDArray[np.float64]) -> list[_HeadGroup]:
        observed = ~np.isnan(Y)
        patterns: dict[bytes, list[int]] = {}
        for h in range(Y.shape[1]):
            patterns.setdefault(np.packbits(observed[:, h]).tobytes(), []).append(h)
        groups = []
        for heads in patterns.values():
            rows = np.flatnonzero(observed[:, heads[0]])
            if rows.size == 0:
                logger.warning("heads %s have no observed label; they will predict NaN", heads)
                continue
            k = self.n_neighbors
            if k > rows.size:
                warnings.warn(
                    f"n_neighbors = {k} is larger than the {rows.size} observed training rows of "
                    f"{len(heads)} head(s); using k = {rows.size}",
                    UserWarning,
                    stacklevel=3,
                )
                k = int(rows.size)
            all_rows = rows.size == Y.shape[0]
            groups.append(
                _HeadGroup(
                    heads=np.asarray(heads, dtype=np.intp),
                    rows=None if all_rows else rows,
                    labels=np.ascontiguousarray(Y[rows][:, heads]),
                    k=k,
                )
            )
        return groups

    def _check_query(self, X: NDArray[Any]) -> NDArray[Any]:
        if not hasattr(self, "X_unit_"):
            raise DataError("this KNNPredictor is not fitted yet; call fit(X, Y) first")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise EmbeddingError(f"expected embeddings of shape (n, {self.n_features_in_}), got {X.shape}")
        return X

    def distances(self, X: NDArray[Any]) -> NDArray[Any]:
        """Cosine distances from queries to every training row, shape (n, N), in [0, 2]."""
        X = self._check_query(X)
        d = _unit_rows(X, self.dtype) @ self.X_unit_.T
        np.subtract(1.0, d, out=d)
        np.clip(d, 0.0, 2.0, out=d)
        return d

    def predict(self, X: NDArray[Any]) -> NDArray[np.float64]:
        """Predict every head.

        Args:
            X: Query embeddings, shape (n, D).

        Returns:
            Array of shape (n, H); NaN for heads with no observed label.
        """
        dist = self.distances(X)
        out = np.full((dist.shape[0], self.n_outputs_), np.nan)
        for g in self.groups_:
            d = dist if g.rows is None else dist[:, g.rows]
            idx, w = self._neighbours(d, g.k)
            # (n, k) weights times (n, k, h) labels -> (n, h)
            out[:, g.heads] = np.einsum("nk,nkh->nh", w, g.labels[idx]) / w.sum(axis=1, keepdims=True)
        return out

    def _neighbours(self, d: NDArray[Any], k: int) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        if k < d.shape[1]:
            idx = np.argpartition(d, k - 1, axis=1)[:, :k]
        else:
            idx = np.broadcast_to(np.arange(d.shape[1]), d.shape).copy()
        nd = np.take_along_axis(d, idx, axis=1).astype(np.float64)
        if self.weights == "uniform":
            return idx, np.ones_like(nd)
        with np.errstate(divide="ignore"):
            w = 1.0 / nd
        inf_mask = np.isinf(w)
        inf_row = inf_mask.any(axis=1)
        w[inf_row] = inf_mask[inf_row]
        return idx, w
