"""A blend of the multi-head kNN and ridge regression: ``w * kNN + (1 - w) * ridge``.

The kNN captures local structure (clusters of similar prompts), the ridge the
global trend; the weight is chosen by cross-validation (``predictor="auto"``).
Both parts serve every head from one fit each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.predictors.knn import KNNPredictor, knn_from_arrays, knn_to_arrays
from r2router_core.engine.predictors.linear import RidgePredictor
from r2router_core.errors import CheckpointError, ConfigError, DataError

__all__ = ["BlendPredictor", "check_weight"]


def check_weight(weight: Any) -> float:
    """A blend weight: a number in [0, 1]."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
        raise ConfigError(f"blend weight must be a number in [0, 1] (1 = kNN only, 0 = ridge only), got {weight!r}")
    if not math.isfinite(weight):
        raise ConfigError(f"blend weight must be finite, got {weight!r}")
    return float(weight)


class BlendPredictor:
    """``weight * KNNPredictor + (1 - weight) * RidgePredictor``, head by head.

    Args:
        weight: Weight of the kNN part, in [0, 1].
        n_neighbors: k of the kNN part.
        alpha: L2 strength of the ridge part.
        weights: ``"distance"`` or ``"uniform"`` neighbour weights.
    """

    kind: ClassVar[str] = "blend"

    def __init__(
        self,
        weight: float = 0.5,
        *,
        n_neighbors: int = 80,
        alpha: float = 1.0,
        weights: Literal["distance", "uniform"] = "distance",
    ) -> None:
        self.weight = weight
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.weights = weights

    def fit(self, X: NDArray[Any], Y: NDArray[Any]) -> BlendPredictor:
        """Fit both parts.

        Args:
            X: Training embeddings, shape (N, D).
            Y: Labels, shape (N, H); NaN marks a missing label.

        Returns:
            self.
        """
        check_weight(self.weight)
        self.knn_ = KNNPredictor(self.n_neighbors, weights=self.weights).fit(X, Y)
        self.linear_ = RidgePredictor(self.alpha).fit(X, Y)
        self.n_features_in_, self.n_outputs_ = self.knn_.n_features_in_, self.knn_.n_outputs_
        return self

    def predict(self, X: NDArray[Any]) -> NDArray[np.float64]:
        """Predict every head.

        Args:
            X: Query embeddings, shape (n, D).

        Returns:
            Array of shape (n, H); NaN for heads with no observed label.
        """
        if not hasattr(self, "knn_"):
            raise DataError("this BlendPredictor is not fitted yet; call fit(X, Y) first")
        w = float(self.weight)
        return w * self.knn_.predict(X) + (1.0 - w) * self.linear_.predict(X)

    def to_arrays(self) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        """Both parts as arrays (the kNN's are its training rows and labels) and JSON-ready settings."""
        if not hasattr(self, "knn_"):
            raise DataError("this BlendPredictor is not fitted yet; nothing to save")
        knn_arrays, _ = knn_to_arrays(self.knn_)
        lin_arrays, _ = self.linear_.to_arrays()
        arrays = {**{f"knn_{k}": v for k, v in knn_arrays.items()}, **{f"linear_{k}": v for k, v in lin_arrays.items()}}
        meta = {"kind": self.kind, "weight": self.weight, "n_neighbors": self.n_neighbors, "alpha": self.alpha}
        return arrays, {**meta, "weights": self.weights}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[Any]], meta: Mapping[str, Any]) -> BlendPredictor:
        """A fitted blend from :meth:`to_arrays` output."""
        if meta.get("kind") != cls.kind:
            raise CheckpointError(f"these arrays hold a {meta.get('kind')!r} predictor, not {cls.kind!r}")
        settings = {k: meta[k] for k in ("weight", "n_neighbors", "alpha", "weights") if k in meta}
        predictor = cls(**settings)
        part = {k[4:]: v for k, v in arrays.items() if k.startswith("knn_")}
        predictor.knn_ = knn_from_arrays(
            part, {"kind": "knn", "n_neighbors": predictor.n_neighbors, "weights": predictor.weights}
        )
        lin = {k[7:]: v for k, v in arrays.items() if k.startswith("linear_")}
        predictor.linear_ = RidgePredictor.from_arrays(lin, {"kind": "ridge", "alpha": predictor.alpha})
        predictor.n_features_in_, predictor.n_outputs_ = predictor.knn_.n_features_in_, predictor.knn_.n_outputs_
        return predictor
