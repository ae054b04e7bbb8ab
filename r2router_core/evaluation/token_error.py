"""The token head on its own: held-out error of the predicted output tokens, per arm.

Cost is half of every decision, and it is the predicted output tokens times the
price. :func:`token_errors` cross-validates a router method and compares, for
every (model, budget) arm and every held-out query, the router's predicted
tokens (clipped to the arm's budget, as the router reports them) with the
tokens the arm really produced:

* ``mae``: mean absolute error, in tokens;
* ``relative``: that MAE divided by the arm's mean true tokens;
* ``bias``: mean (predicted - true), in tokens (> 0: the router overestimates cost).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.evaluation.baselines import RouterMethod, arm_label
from r2router_core.evaluation.cross_validation import kfold_splits
from r2router_core.evaluation.routing_dataset import RoutingDataset

__all__ = ["token_errors"]


def token_errors(
    dataset: RoutingDataset, embeddings: NDArray[Any], method: RouterMethod, *, n_folds: int = 5, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Held-out token error of a router method per arm.

    Args:
        dataset: Queries with their true output tokens (complete queries).
        embeddings: shape (N, D), in dataset order.
        method: The router method (refitted on each training part).
        n_folds: Folds.
        seed: Seed of the folds (use the evaluation's, for the same splits).

    Returns:
        Arm label (``"model @ budget"``) -> ``{"mae", "relative", "bias", "mean_true"}``.
    """
    n = dataset.n_queries
    emb = np.asarray(embeddings)
    true = np.asarray(dataset.tokens, dtype=np.float64).reshape(n, -1)
    predicted = np.full(true.shape, np.nan)
    for train_rows, test_rows in kfold_splits(n, n_folds, seed=seed):
        method.fit(dataset.subset(train_rows), emb[train_rows])
        tokens = method.router_.predict(emb[test_rows]).tokens.reshape(len(test_rows), -1)
        predicted[np.ix_(test_rows, method.arm_map_)] = tokens
    out = {}
    for arm in range(true.shape[1]):
        ok = ~np.isnan(true[:, arm]) & ~np.isnan(predicted[:, arm])
        if not ok.any():
            continue
        err = predicted[ok, arm] - true[ok, arm]
        mean_true = float(true[ok, arm].mean())
        mae = float(np.abs(err).mean())
        out[arm_label(dataset, arm)] = {
            "mae": mae,
            "relative": mae / mean_true if mean_true > 0 else float("inf"),
            "bias": float(err.mean()),
            "mean_true": mean_true,
        }
    return out
