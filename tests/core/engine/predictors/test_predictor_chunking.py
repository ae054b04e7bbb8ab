"""The predictor's and router's speed paths give the same answers as the plain ones.

* ``KNNPredictor.predict`` processes large batches in chunks of ``chunk_size``
  queries: any chunk size gives bit-identical results.
* One query takes a vector path (no (n, N) matrices): it agrees with the batch
  path and with one scikit-learn ``KNeighborsRegressor`` per head.
* ``R2Router.route_batch`` skips the eligibility masks when no option restricts
  the arms and every arm has a prediction: the decisions equal ``choose()``'s.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.neighbors import KNeighborsRegressor

from r2router_core import KNNPredictor, ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.engine.options import RoutingOptions
from r2router_core.engine.scoring import arm_costs, choose, eligibility, utilities
from r2router_core.errors import ConfigError, EmbeddingError

TOL = 1e-6  # float32 distances: paths may round differently in the last bits


def problem(
    n: int = 90, d: int = 16, heads: int = 6, missing: float = 0.0, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float32]]:
    """Training rows, labels (NaN = missing; the last head has none) and 40 queries."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = rng.uniform(size=(n, heads)) * rng.uniform(1, 1000, size=heads)
    if missing:
        holes = rng.uniform(size=Y.shape) < missing
        holes[:4] = False
        Y[holes] = np.nan
        Y[:, -1] = np.nan  # a head without any label predicts NaN
    return X, Y, rng.normal(size=(40, d)).astype(np.float32)


def sklearn_heads(X: NDArray[Any], Y: NDArray[Any], Q: NDArray[Any], k: int, weights: str) -> NDArray[np.float64]:
    """The oracle: one regressor per head, fitted on its observed rows (NaN for a head with none)."""
    out = np.full((len(Q), Y.shape[1]), np.nan)
    for h in range(Y.shape[1]):
        rows = ~np.isnan(Y[:, h])
        if rows.any():
            est = KNeighborsRegressor(n_neighbors=min(k, int(rows.sum())), metric="cosine", weights=weights)
            out[:, h] = est.fit(X[rows], Y[rows, h]).predict(Q)
    return out


def fitted(X: NDArray[Any], Y: NDArray[Any], k: int, **kw: Any) -> KNNPredictor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # k clamped for sparse heads
        return KNNPredictor(k, **kw).fit(X, Y)


@pytest.mark.parametrize("missing", [0.0, 0.4])
@pytest.mark.parametrize("chunk_size", [1, 3, 16, 39, 40, 41, 1000])
def test_any_chunk_size_gives_the_same_predictions(missing: float, chunk_size: int) -> None:
    X, Y, Q = problem(missing=missing)
    whole = fitted(X, Y, 8, chunk_size=len(Q)).predict(Q)
    chunked = fitted(X, Y, 8, chunk_size=chunk_size).predict(Q)
    # the same neighbours and arithmetic; only the BLAS kernel for a block of rows may round differently
    np.testing.assert_allclose(chunked, whole, rtol=TOL, atol=TOL)
    np.testing.assert_array_equal(np.isnan(chunked), np.isnan(whole))


@pytest.mark.parametrize("weights", ["distance", "uniform"])
@pytest.mark.parametrize(("missing", "k"), [(0.0, 7), (0.4, 7), (0.0, 500)])
def test_one_query_path_equals_batch_and_sklearn(weights: Any, missing: float, k: int) -> None:
    X, Y, Q = problem(missing=missing, seed=3)
    est = fitted(X, Y, k, weights=weights)
    singles = np.vstack([est.predict(q[None, :]) for q in Q])
    oracle = sklearn_heads(X, Y, Q, k, weights)
    np.testing.assert_allclose(singles, est.predict(Q), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(singles, oracle, rtol=TOL, atol=TOL)
    assert np.isnan(singles[:, -1]).all() == bool(missing)


def test_exact_match_takes_all_the_weight_in_both_paths() -> None:
    X, Y, _ = problem(seed=5)
    X[3] = X[7] = 0.0
    X[3, 0], X[7, 0] = 2.0, 5.0  # same direction as the query: cosine distance exactly 0 for both
    query = np.zeros((1, X.shape[1]), dtype=np.float32)
    query[0, 0] = 0.5
    est = fitted(X, Y, 6)
    expected = (Y[3] + Y[7]) / 2  # as sklearn: the zero-distance neighbours share all the weight equally
    np.testing.assert_allclose(sklearn_heads(X, Y, query, 6, "distance")[0], expected, rtol=1e-12)
    np.testing.assert_allclose(est.predict(query)[0], expected, rtol=1e-12)
    both = est.predict(np.vstack([query, np.random.default_rng(0).normal(size=query.shape)]))
    np.testing.assert_allclose(both[0], expected, rtol=1e-12)
    assert not np.allclose(both[1], expected)


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_chunk_size_must_be_a_positive_int(bad: Any) -> None:
    X, Y, _ = problem()
    with pytest.raises(ConfigError, match="chunk_size"):
        KNNPredictor(5, chunk_size=bad).fit(X, Y)


# -- router -------------------------------------------------------------------------------
def router(*, hole: bool = False, seed: int = 0) -> R2Router:
    """3 models x (100, 400, None); with ``hole`` the arm (m1, 400) has no quality label at all."""
    rng = np.random.default_rng(seed)
    models = tuple(ModelSpec(f"m{i}", output_price=float(p)) for i, p in enumerate(rng.uniform(0.3, 12, size=3)))
    config = RouterConfig(models=models, budgets=(100, 400, None), k=9, lambda_=0.9995)
    quality = rng.uniform(size=(70, 3, 3))
    if hole:
        quality[:, 1, 1] = np.nan
    tokens = rng.uniform(20, 1500, size=(70, 3))
    data = TrainingData(
        rng.normal(size=(70, 24)).astype(np.float32), config.model_names, config.budgets, quality, tokens
    )
    return R2Router(config, data)


def reference_choice(r: R2Router, Q: NDArray[np.float32], options: RoutingOptions) -> list[tuple[str, Any]]:
    """The decision rule spelled out with the public scoring functions."""
    pred = r.predict(Q)
    cost = arm_costs(pred, r.config, options.input_tokens)
    util = utilities(pred.quality, cost, options.lambda_)
    flat = choose(util, eligibility(pred, cost, r.config, options), options)
    n_b = len(pred.budgets)
    return [(r.config.models[f // n_b].name, pred.budgets[f % n_b]) for f in flat.tolist()]


@pytest.mark.parametrize("hole", [False, True])
def test_unrestricted_route_batch_equals_the_scoring_functions(hole: bool) -> None:
    r = router(hole=hole)
    Q = np.random.default_rng(1).normal(size=(60, 24)).astype(np.float32)
    for opts in ({}, {"lambda_": 0.3}, {"input_tokens": 500}, {"max_cost": 1e9}):
        got = [(d.model, d.token_limit) for d in r.route_batch(Q, **opts)]
        assert got == reference_choice(r, Q, RoutingOptions.build(r.config, **opts))
        assert [(d.model, d.token_limit) for d in (r.route(q, **opts) for q in Q)] == got
    if hole:
        decisions = r.route_batch(Q, lambda_=0.0)  # quality only: a NaN arm must never win
        assert all((d.model, d.token_limit) != ("m1", 400) for d in decisions)
        hole_arm = [c for c in decisions[0].candidates if (c.model, c.token_limit) == ("m1", 400)]
        assert len(hole_arm) == 1 and not hole_arm[0].eligible


def test_candidates_read_their_own_row_of_the_shared_batch_table() -> None:
    r = router(seed=2)
    Q = np.random.default_rng(3).normal(size=(5, 24)).astype(np.float32)
    batch = r.route_batch(Q)
    for q, d in zip(Q, batch, strict=True):
        alone = r.route(q)
        assert [(c.model, c.token_limit) for c in d.candidates] == [(c.model, c.token_limit) for c in alone.candidates]
        np.testing.assert_allclose([c.utility for c in d.candidates], [c.utility for c in alone.candidates], rtol=TOL)
        assert d.candidates[0].utility == d.utility and d.candidates[0].model == d.model


@pytest.mark.parametrize(
    ("make", "needle"),
    [(lambda q: np.where(np.arange(q.size) == 3, np.nan, q), "NaN"), (lambda q: q * 0, "zeros")],
)
def test_one_row_shortcut_still_rejects_bad_embeddings(make: Any, needle: str) -> None:
    r = router()
    q = make(np.random.default_rng(4).normal(size=24)).astype(np.float32)
    for call in (lambda: r.route(q), lambda: r.route_batch(q[None, :]), lambda: r.predict(q[None, :])):
        with pytest.raises(EmbeddingError, match=needle):
            call()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_one_row_shortcut_accepts_values_whose_square_overflows() -> None:
    r = router()
    q = np.random.default_rng(6).normal(size=24).astype(np.float32)
    huge = (q * 1e30).astype(np.float32)  # finite, but sum of squares overflows float32: the full check decides
    assert np.isfinite(huge).all()
    assert r.route(huge).model in r.config.model_names
