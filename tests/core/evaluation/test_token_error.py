"""The token head on its own: held-out error per arm, in the eval report."""

from __future__ import annotations

import numpy as np

from r2router_core import R2Router, RouterConfig
from r2router_core.evaluation import datasets, evaluate
from r2router_core.evaluation.baselines import RouterMethod, arm_label
from r2router_core.evaluation.cross_validation import complete_queries, kfold_splits
from r2router_core.evaluation.token_error import token_errors


def test_token_errors_equal_a_brute_force_per_fold_router() -> None:
    ds, emb = datasets.make_synthetic_pool(150, budgets=(50, 200, None), seed=3)
    ds, rows = complete_queries(ds)
    emb = emb[rows]
    errors = token_errors(ds, emb, RouterMethod(k=10), n_folds=3, seed=1)
    n, m, b = ds.tokens.shape
    predicted = np.empty((n, m, b))
    for train, test in kfold_splits(n, 3, seed=1):
        config = RouterConfig(models=ds.models, budgets=ds.budgets, k=10)
        router = R2Router(config, ds.subset(train).training_data(emb[train]))
        predicted[test] = router.predict(emb[test]).tokens
    caps = np.array([np.inf if x is None else x for x in ds.budgets])
    assert (predicted <= caps).all()
    for mi in range(m):
        for bi in range(b):
            err = predicted[:, mi, bi] - ds.tokens[:, mi, bi]
            got = errors[arm_label(ds, mi * b + bi)]
            assert got["mae"] == np.abs(err).mean()
            assert got["bias"] == err.mean()
            assert got["relative"] == got["mae"] / ds.tokens[:, mi, bi].mean()


def test_eval_reports_the_token_error_of_router_rows_only() -> None:
    ds, emb = datasets.make_synthetic_pool(120, budgets=(100, None), seed=2)
    result = evaluate(ds, emb, n_folds=3, inner_folds=2, k=10)
    assert result.method("R2-Router").token_error is not None
    assert result.method("oracle").token_error is None
    assert "token head of R2-Router, held-out per arm" in result.table()
    row = result.to_dict()["methods"][0]
    assert set(row["token_error"]) == {arm_label(ds, a) for a in range(len(ds.models) * 2)}
