"""Linear heads: ridge regression, one multi-output fit per group of heads.

:class:`RidgePredictor` is the R2-Router research release's own predictor
(scikit-learn ``Ridge`` per head on the query embedding). Heads observed on the
same training rows are fitted together by one multi-output
``sklearn.linear_model.Ridge`` (the same numbers as one fit per head: the
ridge solution of each output column does not depend on the others).

Its learned state is two arrays, ``coef_`` (H, D) and ``intercept_`` (H,), so a
fitted predictor saves as arrays + JSON (:meth:`LinearHeads.to_arrays`) and
loads without the training data (:meth:`LinearHeads.from_arrays`), e.g. from
another tool's published ridge coefficients. A head with no observed label has
a NaN intercept and predicts NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.predictors._common import check_fit_input, check_query, group_heads
from r2router_core.errors import CheckpointError, ConfigError, DataError

__all__ = ["LinearHeads", "RidgePredictor"]


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """A regularisation strength: a finite number > 0."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha) or alpha <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {alpha!r}")
    return float(alpha)


def _expit(z: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow
    return out


class LinearHeads:
    """Shared state and prediction of linear predictors: ``link(X @ coef_.T + intercept_)``.

    Subclasses fit ``coef_`` (H, D), ``intercept_`` (H,) and ``logistic_`` (H,)
    bool (heads whose output goes through the logistic function).
    """

    kind: ClassVar[str] = "linear"

    coef_: NDArray[np.float64]
    intercept_: NDArray[np.float64]
    logistic_: NDArray[np.bool_]
    n_features_in_: int
    n_outputs_: int

    def _settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def predict(self, X: NDArray[Any]) -> NDArray[np.float64]:
        """Predict every head.

        Args:
            X: Query embeddings, shape (n, D).

        Returns:
            Array of shape (n, H); NaN for heads with no observed label.
        """
        if not hasattr(self, "coef_"):
            raise DataError(f"this {type(self).__name__} is not fitted yet; call fit(X, Y) first")
        z = check_query(X, self.n_features_in_, type(self).__name__) @ self.coef_.T + self.intercept_
        if self.logistic_.any():
            z[:, self.logistic_] = _expit(z[:, self.logistic_])
        return z

    def to_arrays(self) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        """The fitted state as arrays and JSON-ready settings (no pickles).

        Returns:
            (``{"coef": (H, D), "intercept": (H,), "logistic": (H,) bool}``,
            ``{"kind": ..., settings...}``).
        """
        if not hasattr(self, "coef_"):
            raise DataError(f"this {type(self).__name__} is not fitted yet; nothing to save")
        arrays = {"coef": self.coef_, "intercept": self.intercept_, "logistic": self.logistic_}
        return arrays, {"kind": self.kind, **self._settings()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[Any]], meta: Mapping[str, Any]) -> Any:
        """A fitted predictor from :meth:`to_arrays` output (no training data needed).

        Raises:
            CheckpointError: Missing or inconsistent arrays.
        """
        if meta.get("kind") != cls.kind:
            raise CheckpointError(f"these arrays hold a {meta.get('kind')!r} predictor, not {cls.kind!r}")
        try:
            coef = np.asarray(arrays["coef"], dtype=np.float64)
            intercept = np.asarray(arrays["intercept"], dtype=np.float64)
            logistic = np.asarray(arrays.get("logistic", np.zeros(intercept.shape, bool)), dtype=bool)
        except KeyError as exc:
            raise CheckpointError(f"linear predictor arrays need 'coef' and 'intercept', missing {exc}") from None
        H = intercept.shape[0] if intercept.ndim == 1 else -1
        if coef.ndim != 2 or coef.shape[0] != H or logistic.shape != (H,):
            raise CheckpointError(
                f"linear predictor arrays must be coef (H, D), intercept (H,), logistic (H,); "
                f"got {coef.shape}, {intercept.shape}, {logistic.shape}"
            )
        settings = {k: v for k, v in meta.items() if k != "kind"}
        try:
            predictor = cls(**settings)
        except TypeError as exc:
            raise CheckpointError(f"unknown {cls.kind} predictor settings {sorted(settings)}: {exc}") from None
        predictor.coef_, predictor.intercept_, predictor.logistic_ = coef, intercept, logistic
        predictor.n_outputs_, predictor.n_features_in_ = coef.shape
        return predictor


class RidgePredictor(LinearHeads):
    """Ridge regression per head, one multi-output fit per group of heads with the same observed rows.

    Args:
        alpha: L2 strength of ``sklearn.linear_model.Ridge`` (its objective
            ``||y - Xw - b||^2 + alpha * ||w||^2``), > 0.
        fit_intercept: Fit an unpenalised intercept per head.
    """

    kind: ClassVar[str] = "ridge"

    def __init__(self, alpha: float = 1.0, *, fit_intercept: bool = True) -> None:
        self.alpha = alpha
        self.fit_intercept = fit_intercept

    def _settings(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "fit_intercept": self.fit_intercept}

    def fit(self, X: NDArray[Any], Y: NDArray[Any]) -> RidgePredictor:
        """Fit every head.

        Args:
            X: Training embeddings, shape (N, D).
            Y: Labels, shape (N, H); NaN marks a missing label.

        Returns:
            self.
        """
        alpha = check_alpha(self.alpha)
        X, Y = check_fit_input(X, Y)
        self.coef_, self.intercept_ = fit_ridge_groups(X, Y, alpha, fit_intercept=bool(self.fit_intercept))
        self.logistic_ = np.zeros(Y.shape[1], dtype=bool)
        self.n_outputs_, self.n_features_in_ = self.coef_.shape
        return self


def fit_ridge_groups(
    X: NDArray[np.float64], Y: NDArray[np.float64], alpha: float, *, fit_intercept: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Ridge coefficients (H, D) and intercepts (H,) of every head; NaN intercept for unobserved heads."""
    from sklearn.linear_model import Ridge

    coef = np.zeros((Y.shape[1], X.shape[1]))
    intercept = np.full(Y.shape[1], np.nan)
    for heads, rows in group_heads(Y):
        model = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X[rows], Y[np.ix_(rows, heads)])
        coef[heads] = model.coef_
        intercept[heads] = model.intercept_
    return coef, intercept
