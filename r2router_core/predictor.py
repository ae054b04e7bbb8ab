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
    labels: NDArray[np.float64]  # (n_rows, len(heads) + 1): the labels, then a column of ones
    k: int


def _unit_rows(x: NDArray[Any], dtype: type[np.floating[Any]]) -> NDArray[Any]:
    x = np.asarray(x, dtype=dtype)
    # the same arithmetic as np.linalg.norm(x, axis=1, keepdims=True), without its overhead
    norms = np.sqrt(np.add.reduce(x * x, axis=1, keepdims=True))
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
        chunk_size: Queries per block of the (n, N) similarity matrix; bounds the
            memory of large batches without changing any result.
    """

    def __init__(
        self,
        n_neighbors: int = 80,
        *,
        weights: Literal["distance", "uniform"] = "distance",
        metric: Literal["cosine"] = "cosine",
        dtype: type[np.floating[Any]] = np.float32,
        chunk_size: int = 1024,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.metric = metric
        self.dtype = dtype
        self.chunk_size = chunk_size

    def fit(self, X: NDArray[Any], Y: NDArray[Any]) -> KNNPredictor:
        """Store the training set.

        Args:
            X: Training embeddings, shape (N, D).
            Y: Labels, shape (N, H); NaN marks a missing label.

        Returns:
            self.
        """
        for name in ("n_neighbors", "chunk_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
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
        self._Y = Y
        self._set_groups(self._group_heads(Y))
        return self

    def add(self, X: NDArray[Any], Y: NDArray[Any]) -> KNNPredictor:
        """Append training rows; the same predictions as a refit on all rows.

        The old rows are not normalised again; the head groups are rebuilt from all
        labels. (Branch ``scale`` has the version in time proportional to the new rows,
        with the same name and signature: keep that one when merging.)

        Args:
            X: New embeddings, shape (m, D).
            Y: Their labels, shape (m, H); NaN marks a missing label.

        Returns:
            self.
        """
        X = self._check_query(X)
        Y = np.asarray(Y, dtype=np.float64)
        if Y.shape != (X.shape[0], self.n_outputs_):
            raise DataError(f"Y must have shape ({X.shape[0]}, {self.n_outputs_}) for {X.shape[0]} rows, got {Y.shape}")
        if not np.all(np.isfinite(X)):
            raise DataError("new embeddings hold NaN or inf values; re-embed the queries")
        self.X_unit_ = np.concatenate([self.X_unit_, _unit_rows(X, self.dtype)])
        self._Y = np.concatenate([self._Y, Y])
        self.n_samples_fit_ = self.X_unit_.shape[0]
        self._set_groups(self._group_heads(self._Y))
        return self

    def _set_groups(self, groups: list[_HeadGroup]) -> None:
        self.groups_ = groups
        served = np.zeros(self.n_outputs_, dtype=bool)
        for g in self.groups_:
            served[g.heads] = True
        self.unserved_heads_ = np.flatnonzero(~served)  # heads with no observed label: always NaN
        # one group serving every head in order, the common case: no scatter needed
        self._one_group = len(self.groups_) == 1 and np.array_equal(self.groups_[0].heads, np.arange(self.n_outputs_))

    def _group_heads(self, Y: NDArray[np.float64]) -> list[_HeadGroup]:
        observed = ~np.isnan(Y)
        patterns: dict[bytes, list[int]] = {}
        for h in range(Y.shape[1]):
            patterns.setdefault(np.packbits(observed[:, h]).tobytes(), []).append(h)
        groups = []
        for heads in patterns.values():
            rows = np.flatnonzero(observed[:, heads[0]])
            if rows.size == 0:
                logger.debug("heads %s have no observed label; they will predict NaN", heads)
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
            labels = np.ones((rows.size, len(heads) + 1))  # the last column of ones sums the weights
            labels[:, :-1] = Y[rows][:, heads]
            groups.append(
                _HeadGroup(heads=np.asarray(heads, dtype=np.intp), rows=None if all_rows else rows, labels=labels, k=k)
            )
        return groups

    def _check_query(self, X: NDArray[Any]) -> NDArray[Any]:
        if not hasattr(self, "X_unit_"):
            raise DataError("this KNNPredictor is not fitted yet; call fit(X, Y) first")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise EmbeddingError(f"expected embeddings of shape (n, {self.n_features_in_}), got {X.shape}")
        return X

    def similarities(self, X: NDArray[Any]) -> NDArray[Any]:
        """Cosine similarities from queries to every training row, shape (n, N)."""
        X = self._check_query(X)
        return _unit_rows(X, self.dtype) @ self.X_unit_.T

    def distances(self, X: NDArray[Any]) -> NDArray[Any]:
        """Cosine distances from queries to every training row, shape (n, N), in [0, 2]."""
        d = self.similarities(X)
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
        X = self._check_query(X)
        if X.shape[0] == 1:
            return self._predict_one(np.asarray(X[0], dtype=self.dtype))[None, :]
        out = np.empty((X.shape[0], self.n_outputs_))
        for start in range(0, X.shape[0], self.chunk_size):
            self._predict_chunk(X[start : start + self.chunk_size], out[start : start + self.chunk_size])
        return out

    def _predict_chunk(self, X: NDArray[Any], out: NDArray[np.float64]) -> None:
        """Fill ``out`` (c, H) with the predictions for the queries ``X`` (c, D)."""
        sim = _unit_rows(X, self.dtype) @ self.X_unit_.T  # (c, N), the one neighbour search
        for g in self.groups_:
            s = sim if g.rows is None else sim[:, g.rows]
            idx, w = self._neighbours(s, g.k)
            acc = np.einsum("nk,nkh->nh", w, g.labels[idx])  # (c, h + 1): weighted sums, then sum of weights
            out[:, g.heads] = acc[:, :-1] / acc[:, -1:]
        out[:, self.unserved_heads_] = np.nan

    def _neighbours(self, sim: NDArray[Any], k: int) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Indices (c, k) of the k most similar rows and their weights (c, k)."""
        n_rows = sim.shape[1]
        if k < n_rows:
            idx = sim.argpartition(n_rows - k, axis=1)[:, n_rows - k :]
        else:
            idx = np.broadcast_to(np.arange(n_rows), sim.shape)
        nd = 1.0 - np.take_along_axis(sim, idx, axis=1)  # cosine distance, in the computation's dtype
        np.clip(nd, 0.0, 2.0, out=nd)
        nd = nd.astype(np.float64)
        if self.weights == "uniform":
            return idx, np.ones_like(nd)
        zero = nd == 0.0
        if not zero.any():
            return idx, 1.0 / nd
        exact = zero.any(axis=1)  # rows with an exact match: those matches share all the weight
        nd[exact] = 1.0
        w = 1.0 / nd
        w[exact] = zero[exact]
        return idx, w

    def _predict_one(self, x: NDArray[Any]) -> NDArray[np.float64]:
        """Predictions (H,) for one query ``x`` (D,): the batch path's arithmetic, on vectors."""
        sim = self.X_unit_ @ x  # (N,) similarities times |x|; normalised below, on the k selected only
        norm = np.sqrt(np.dot(x, x))
        if norm == 0:
            norm = x.dtype.type(1.0)
        if self._one_group:
            g = self.groups_[0]
            return self._one_group_mean(sim, norm, g)
        out = np.empty(self.n_outputs_)
        for g in self.groups_:
            out[g.heads] = self._one_group_mean(sim if g.rows is None else sim[g.rows], norm, g)
        out[self.unserved_heads_] = np.nan
        return out

    def _one_group_mean(self, sim: NDArray[Any], norm: Any, g: _HeadGroup) -> NDArray[np.float64]:
        """Weighted mean (h,) of one group's labels over the k most similar rows of ``sim`` (n_rows,)."""
        n_rows = sim.shape[0]
        # ndarray methods, not np.* wrappers: on one query the per-call overhead is most of the cost
        idx = sim.argpartition(n_rows - g.k)[n_rows - g.k :] if g.k < n_rows else np.arange(n_rows)
        nd = 1.0 - sim[idx] / norm  # cosine distances, clipped to [0, 2] as in the batch path:
        np.minimum(nd, 2.0, out=nd)
        if self.weights == "uniform":
            w = np.ones(nd.shape)
        elif nd.min() > 0.0:  # (min, not all(): all() on floats casts to bool, several times slower)
            w = np.divide(1.0, nd, dtype=np.float64)  # == 1.0 / nd.astype(np.float64)
        else:  # distances <= 0 clip to 0: those exact matches share all the weight
            w = (nd <= 0.0).astype(np.float64)
        acc = w @ g.labels.take(idx, axis=0)  # (h + 1,): weighted sums, then the sum of weights
        return acc[:-1] / acc[-1]
