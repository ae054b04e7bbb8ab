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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import DEFAULT_INDEX
from r2router_core.engine.index import (
    INDEX_KINDS,
    ExactIndex,
    FaissIVFIndex,
    GrowableRows,
    check_index_params,
    load_or_build_index,
    unit_rows,
)
from r2router_core.errors import CheckpointError, ConfigError, DataError, EmbeddingError

__all__ = ["KNNPredictor", "knn_from_arrays", "knn_to_arrays"]

logger = logging.getLogger(__name__)


@dataclass
class _HeadGroup:
    heads: NDArray[np.intp]  # which output columns this group serves
    rows: GrowableRows | None  # training rows observed for all of them (sorted); None = every row
    labels: GrowableRows  # (n_rows, len(heads)): their labels (a view of Y, no copy, when they are all of Y)
    k: int


_unit_rows = unit_rows
_SIM_CELLS = 1 << 25  # largest (queries x rows) similarity block of the exact search: 128 MB in float32


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
            memory of large batches without changing any result (fewer queries
            per block when N is large, so a block stays under 128 MB).
        index: Neighbour search: ``"exact"`` (every row), ``"ann"`` (faiss
            IVF-Flat, needs ``r2router[ann]``) or ``"auto"`` (ann from
            :data:`~r2router_core.engine.index.AUTO_ANN_MIN_ROWS` rows); see
            :mod:`r2router_core.engine.index`.
        index_params: Parameters of the ann index (``nlist``, ``nprobe``, ``seed``).
    """

    def __init__(
        self,
        n_neighbors: int = 80,
        *,
        weights: Literal["distance", "uniform"] = "distance",
        metric: Literal["cosine"] = "cosine",
        dtype: type[np.floating[Any]] = np.float32,
        chunk_size: int = 1024,
        index: Literal["exact", "ann", "auto"] = DEFAULT_INDEX,
        index_params: dict[str, int] | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.metric = metric
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.index = index
        self.index_params = index_params

    def fit(
        self,
        X: NDArray[Any],
        Y: NDArray[Any],
        *,
        index_dir: str | Path | None = None,
        embeddings_file: str | Path | None = None,
    ) -> KNNPredictor:
        """Store the training set and build (or open) its neighbour index.

        Args:
            X: Training embeddings, shape (N, D); a memory map (or float16) is
                searched in place, never copied whole.
            Y: Labels, shape (N, H); NaN marks a missing label.
            index_dir: A saved ann index to reuse if it matches ``embeddings_file``
                (else it is rebuilt); see :func:`r2router_core.engine.index.load_or_build_index`.
            embeddings_file: The ``.npy`` file ``X`` was read from.

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
        if self.index not in INDEX_KINDS:
            raise ConfigError(f"index must be one of {list(INDEX_KINDS)}, got {self.index!r}")
        params = check_index_params(self.index_params)
        X = X if isinstance(X, np.ndarray) else np.asarray(X)
        Y = np.asarray(Y, dtype=np.float64)
        if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
            raise DataError(f"X must be (N, D) and Y (N, H) with the same N, got {X.shape} and {Y.shape}")
        self.index_ = load_or_build_index(
            self.index,
            X,
            self.dtype,
            params,
            None if index_dir is None else Path(index_dir),
            None if embeddings_file is None else Path(embeddings_file),
        )
        self.n_features_in_ = X.shape[1]
        self.n_samples_fit_ = X.shape[0]
        self.n_outputs_ = Y.shape[1]
        self._Y = GrowableRows(Y)
        self._set_groups(self._group_heads(Y))
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
        complete = observed.all(axis=0)  # heads observed on every row: one group, no pattern to compare
        patterns: dict[bytes, list[int]] = {b"all": list(np.flatnonzero(complete))} if complete.any() else {}
        for h in np.flatnonzero(~complete):
            patterns.setdefault(np.packbits(observed[:, h]).tobytes(), []).append(int(h))
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
            if all_rows and heads == list(range(Y.shape[1])):
                labels = Y  # every label observed: the group reads Y itself (a memory map stays a map)
            else:
                labels = Y[:, heads] if all_rows else Y[rows][:, heads]
            groups.append(
                _HeadGroup(
                    heads=np.asarray(heads, dtype=np.intp),
                    rows=None if all_rows else GrowableRows(rows),
                    labels=GrowableRows(labels),
                    k=k,
                )
            )
        return groups

    def add(self, X: NDArray[Any], Y: NDArray[Any]) -> KNNPredictor:
        """Append training rows, in time proportional to the new rows; the same predictions as a refit.

        The neighbour index appends the rows (the ann index puts them in its
        existing cells, see :meth:`FaissIVFIndex.add`). When a new row's
        missing labels split a group of heads, the heads are regrouped from all
        labels (O(N H), still no new search structure).

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
        n_old = self.n_samples_fit_
        self.index_.add(X)
        self._Y.append(Y)
        self.n_samples_fit_ = n_old + X.shape[0]
        observed = ~np.isnan(Y)
        if observed[:, self.unserved_heads_].any() or not all(
            (observed[:, g.heads] == observed[:, g.heads[:1]]).all() for g in self.groups_
        ):
            logger.debug("new rows split a group of heads; regrouping the heads from all %d rows", self.n_samples_fit_)
            self._set_groups(self._group_heads(self._Y.array))
            return self
        for g in self.groups_:
            self._append_to_group(g, Y, observed[:, g.heads[0]], n_old)
        return self

    def _append_to_group(self, g: _HeadGroup, Y: NDArray[np.float64], observed: NDArray[np.bool_], n_old: int) -> None:
        new = np.flatnonzero(observed)
        if g.rows is None and new.size < observed.size:  # the group no longer covers every row
            g.rows = GrowableRows(np.arange(n_old, dtype=np.intp))
        if g.rows is not None:
            g.rows.append(new + n_old)
        g.labels.append(Y[new][:, g.heads])
        g.k = min(self.n_neighbors, g.labels.array.shape[0])

    def _check_query(self, X: NDArray[Any]) -> NDArray[Any]:
        if not hasattr(self, "index_"):
            raise DataError("this KNNPredictor is not fitted yet; call fit(X, Y) first")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise EmbeddingError(f"expected embeddings of shape (n, {self.n_features_in_}), got {X.shape}")
        return X

    def similarities(self, X: NDArray[Any]) -> NDArray[Any]:
        """Cosine similarities from queries to every training row, shape (n, N) (an exact search)."""
        X = self._check_query(X)
        index = self.index_ if isinstance(self.index_, ExactIndex) else None
        if index is None:
            raise ConfigError("similarities() needs index='exact'; an ann index does not score every row")
        return index.products(_unit_rows(X, self.dtype))

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
        exact = isinstance(self.index_, ExactIndex)
        if X.shape[0] == 1 and exact:
            return self._predict_one(np.asarray(X[0], dtype=self.dtype))[None, :]
        out = np.empty((X.shape[0], self.n_outputs_))
        step = max(1, min(self.chunk_size, _SIM_CELLS // max(self.n_samples_fit_, 1))) if exact else self.chunk_size
        for start in range(0, X.shape[0], step):
            self._predict_chunk(X[start : start + step], out[start : start + step])
        return out

    def _predict_chunk(self, X: NDArray[Any], out: NDArray[np.float64]) -> None:
        """Fill ``out`` (c, H) with the predictions for the queries ``X`` (c, D)."""
        Q = _unit_rows(X, self.dtype)
        index = self.index_
        if isinstance(index, FaissIVFIndex):
            for g in self.groups_:
                sims, idx = index.search(Q, g.k, None if g.rows is None else g.rows.array)
                self._fill(out, g, idx, self._weights(sims))
        else:
            sim = index.products(Q)  # (c, N), the one neighbour search
            for g in self.groups_:
                s = sim if g.rows is None else sim[:, g.rows.array]
                idx, w = self._neighbours(s, g.k)
                self._fill(out, g, idx, w)
        out[:, self.unserved_heads_] = np.nan

    @staticmethod
    def _fill(out: NDArray[np.float64], g: _HeadGroup, idx: NDArray[np.intp], w: NDArray[np.float64]) -> None:
        acc = np.einsum("nk,nkh->nh", w, g.labels.array[idx])  # (c, h): weighted sums
        out[:, g.heads] = acc / w.sum(axis=1, keepdims=True)

    def _neighbours(self, sim: NDArray[Any], k: int) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Indices (c, k) of the k most similar rows and their weights (c, k)."""
        n_rows = sim.shape[1]
        if k < n_rows:
            idx = sim.argpartition(n_rows - k, axis=1)[:, n_rows - k :]
        else:
            idx = np.broadcast_to(np.arange(n_rows), sim.shape)
        return idx, self._weights(np.take_along_axis(sim, idx, axis=1))

    def _weights(self, sim_k: NDArray[Any]) -> NDArray[np.float64]:
        """Weights (c, k) of neighbours of cosine similarities ``sim_k`` (c, k)."""
        nd = 1.0 - sim_k  # cosine distance, in the computation's dtype
        np.clip(nd, 0.0, 2.0, out=nd)
        nd = nd.astype(np.float64)
        if self.weights == "uniform":
            return np.ones_like(nd)
        zero = nd == 0.0
        if not zero.any():
            return 1.0 / nd
        exact = zero.any(axis=1)  # rows with an exact match: those matches share all the weight
        nd[exact] = 1.0
        w = 1.0 / nd
        w[exact] = zero[exact]
        return w

    def _predict_one(self, x: NDArray[Any]) -> NDArray[np.float64]:
        """Predictions (H,) for one query ``x`` (D,): the batch path's arithmetic, on vectors."""
        assert isinstance(self.index_, ExactIndex)  # predict() sends single ann queries through the batch path
        sim = self.index_.products(x)  # (N,) similarities times |x|; normalised below, on the k selected only
        norm = np.sqrt(np.dot(x, x))
        if norm == 0:
            norm = x.dtype.type(1.0)
        if self._one_group:
            g = self.groups_[0]
            return self._one_group_mean(sim, norm, g)
        out = np.empty(self.n_outputs_)
        for g in self.groups_:
            out[g.heads] = self._one_group_mean(sim if g.rows is None else sim[g.rows.array], norm, g)
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
        acc = w @ g.labels.array.take(idx, axis=0)  # (h,): weighted sums
        return acc / w.sum()



def knn_to_arrays(predictor: KNNPredictor) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """``({"X": (N, D) unit rows, "Y": (N, H) labels, NaN = missing}, settings)`` of a fitted kNN."""
    if not hasattr(predictor, "index_"):
        raise DataError("this KNNPredictor is not fitted yet; nothing to save")
    if not isinstance(predictor.index_, ExactIndex):
        raise DataError(
            "a kNN over an approximate (ann) index is saved through its training data and index files "
            "(R2Router.save), not as predictor arrays; use index='exact' for a blend you save this way"
        )
    Y = np.full((predictor.n_samples_fit_, predictor.n_outputs_), np.nan)
    for g in predictor.groups_:
        rows = np.arange(predictor.n_samples_fit_) if g.rows is None else g.rows.array
        Y[np.ix_(rows, g.heads)] = g.labels.array
    meta = {"kind": "knn", "n_neighbors": predictor.n_neighbors, "weights": predictor.weights}
    return {"X": np.asarray(predictor.index_.unit_rows()), "Y": Y}, meta


def knn_from_arrays(arrays: Mapping[str, NDArray[Any]], meta: Mapping[str, Any]) -> KNNPredictor:
    """A fitted kNN from :func:`knn_to_arrays` output."""
    if meta.get("kind") != "knn" or "X" not in arrays or "Y" not in arrays:
        raise CheckpointError(
            f"kNN arrays need kind 'knn' and arrays X and Y, got {meta.get('kind')!r}, {sorted(arrays)}"
        )
    return KNNPredictor(int(meta["n_neighbors"]), weights=meta.get("weights", "distance")).fit(arrays["X"], arrays["Y"])
