"""The multi-head kNN (:class:`~r2router_core.predictor.KNNPredictor`) behind the predictors' array contract.

A kNN's fit stores its training rows, so its arrays are those rows (unit
length: cosine distance ignores the norm) and the label matrix with NaN for
missing cells; loading refits on them, which gives the same predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.errors import CheckpointError, DataError
from r2router_core.index import ExactIndex
from r2router_core.predictor import KNNPredictor

__all__ = ["KNNPredictor", "knn_from_arrays", "knn_to_arrays"]


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
