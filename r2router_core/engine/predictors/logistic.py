"""Logistic regression for heads whose labels lie in [0, 1]; ridge for the others.

The rule: a head whose observed labels all lie in [0, 1] (quality: accuracy,
judge scores, win rates) is fitted by ``sklearn.linear_model.LogisticRegression``
and predicts a probability; any other head (output tokens) by ridge
regression, as :class:`~r2router_core.engine.predictors.linear.RidgePredictor`.

Labels strictly between 0 and 1 (an averaged judge score) are fitted with the
soft-label cross-entropy ``-sum p log s + (1 - p) log(1 - s)``: each row enters
twice, as class 1 with sample weight p and as class 0 with weight 1 - p, which
is the same objective. On 0/1 labels that is exactly one ``LogisticRegression``
per head. A head whose labels are all equal predicts that constant.

Logistic heads need one fit each (no closed form shares them); ridge heads are
still fitted together per group of observed rows.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.predictors._common import check_fit_input, group_heads
from r2router_core.engine.predictors.linear import LinearHeads, check_alpha, fit_ridge_groups

__all__ = ["LogisticPredictor"]


class LogisticPredictor(LinearHeads):
    """Logistic heads for labels in [0, 1], ridge heads for the rest.

    Args:
        C: Inverse L2 strength of ``LogisticRegression`` (its objective
            ``0.5 * ||w||^2 + C * cross-entropy``), > 0.
        alpha: L2 strength of the ridge heads, > 0.
        max_iter: Iterations of the lbfgs solver.
        tol: Stopping tolerance of the solver (tighter than scikit-learn's 1e-4,
            so the fit is the optimum to about 1e-5 in probability).
    """

    kind: ClassVar[str] = "logistic"

    def __init__(self, C: float = 1.0, *, alpha: float = 1.0, max_iter: int = 1000, tol: float = 1e-6) -> None:
        self.C = C
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol

    def _settings(self) -> dict[str, Any]:
        return {"C": self.C, "alpha": self.alpha, "max_iter": self.max_iter, "tol": self.tol}

    def fit(self, X: NDArray[Any], Y: NDArray[Any]) -> LogisticPredictor:
        """Fit every head.

        Args:
            X: Training embeddings, shape (N, D).
            Y: Labels, shape (N, H); NaN marks a missing label.

        Returns:
            self.
        """
        C = check_alpha(self.C, "C")
        alpha = check_alpha(self.alpha)
        X, Y = check_fit_input(X, Y)
        observed = ~np.isnan(Y)
        unit = np.array([((Y[observed[:, h], h] >= 0) & (Y[observed[:, h], h] <= 1)).all() for h in range(Y.shape[1])])
        self.logistic_ = unit & observed.any(axis=0)
        ridge_y = np.where(self.logistic_[None, :], np.nan, Y)  # ridge heads only; the others read as unobserved
        self.coef_, self.intercept_ = fit_ridge_groups(X, ridge_y, alpha)
        for heads, rows in group_heads(np.where(self.logistic_[None, :], Y, np.nan)):
            for h in heads:
                fit = _fit_soft_logistic(X[rows], Y[rows, h], C, int(self.max_iter), float(self.tol))
                self.coef_[h], self.intercept_[h] = fit
        self.n_outputs_, self.n_features_in_ = self.coef_.shape
        return self


def _fit_soft_logistic(
    X: NDArray[np.float64], p: NDArray[np.float64], C: float, max_iter: int, tol: float
) -> tuple[NDArray[np.float64], float]:
    """Coefficients (D,) and intercept of a logistic fit to labels ``p`` (n,) in [0, 1]."""
    if (p == p[0]).all():  # one class only: predict that constant (logit(0) = -inf, logit(1) = inf)
        with np.errstate(divide="ignore"):
            return np.zeros(X.shape[1]), float(np.log(p[0]) - np.log1p(-p[0]))
    from sklearn.linear_model import LogisticRegression

    ones, zeros = p > 0, p < 1
    Xs = np.concatenate([X[ones], X[zeros]])
    y = np.concatenate([np.ones(ones.sum()), np.zeros(zeros.sum())])
    w = np.concatenate([p[ones], 1.0 - p[zeros]])
    model = LogisticRegression(C=C, max_iter=max_iter, tol=tol).fit(Xs, y, sample_weight=w)
    return model.coef_[0], float(model.intercept_[0])
