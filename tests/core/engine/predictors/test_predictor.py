"""KNNPredictor and R2Router.predict against one scikit-learn KNeighborsRegressor per head.

The oracle is the model card's way: one ``KNeighborsRegressor(n_neighbors=k, metric="cosine",
weights=...)`` per (model, budget) quality head and per model token head, each fitted only on the
rows where that head's label is observed.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.neighbors import KNeighborsRegressor

from r2router_core import KNNPredictor, R2Router
from r2router_core.errors import ConfigError, DataError, EmbeddingError
from tests.core.conftest import MakeData

RTOL = ATOL = 1e-6  # float32 inputs: the predictor and sklearn round differently in the last bits


def sklearn_head(
    X: NDArray[Any], y: NDArray[Any], queries: NDArray[Any], k: int, weights: str = "distance"
) -> NDArray[np.float64]:
    """One card-style head: fitted only on the observed rows, k clamped to them."""
    rows = ~np.isnan(y)
    k = min(k, int(rows.sum()))
    est = KNeighborsRegressor(n_neighbors=k, metric="cosine", weights=weights).fit(X[rows], y[rows])
    return np.asarray(est.predict(queries), dtype=np.float64)


def random_problem(
    n: int = 80, d: int = 10, heads: int = 5, missing: float = 0.0, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = rng.uniform(size=(n, heads)) * np.array([1.0, 1.0, 1.0, 500.0, 2000.0])[:heads]
    if missing:
        holes = rng.uniform(size=Y.shape) < missing
        holes[:3] = False
        Y[holes] = np.nan
    Q = rng.normal(size=(25, d)).astype(np.float32)
    return X, Y, Q


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 30])
def test_each_head_equals_sklearn_float32(seed: int, k: int) -> None:
    X, Y, Q = random_problem(seed=seed)
    ours = KNNPredictor(k).fit(X, Y).predict(Q)
    assert ours.shape == (25, 5) and ours.dtype == np.float64
    for h in range(Y.shape[1]):
        np.testing.assert_allclose(ours[:, h], sklearn_head(X, Y[:, h], Q, k), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("seed", [0, 1])
def test_float64_predictor_matches_float64_sklearn_to_1e_9(seed: int) -> None:
    X, Y, Q = random_problem(seed=seed, missing=0.2)
    X64, Q64 = X.astype(np.float64), Q.astype(np.float64)
    ours = KNNPredictor(9, dtype=np.float64).fit(X64, Y).predict(Q64)
    for h in range(Y.shape[1]):
        np.testing.assert_allclose(ours[:, h], sklearn_head(X64, Y[:, h], Q64, 9), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("missing", [0.1, 0.5, 0.9])
def test_missing_labels_use_only_that_heads_observed_rows(missing: float) -> None:
    X, Y, Q = random_problem(missing=missing, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # at 0.9 some heads have < k rows
        ours = KNNPredictor(6).fit(X, Y).predict(Q)
    for h in range(Y.shape[1]):
        np.testing.assert_allclose(ours[:, h], sklearn_head(X, Y[:, h], Q, 6), rtol=RTOL, atol=ATOL)
    # reading a missing label as 0 would pull predictions down: the oracle on zero-filled data differs
    zero_filled = sklearn_head(X, np.nan_to_num(Y[:, 0]), Q, 6)
    assert not np.allclose(ours[:, 0], zero_filled)


def test_heads_sharing_a_missing_pattern_share_one_group() -> None:
    X, Y, Q = random_problem(heads=4, seed=3)
    Y[10:20, [0, 2]] = np.nan
    predictor = KNNPredictor(5).fit(X, Y)
    assert len(predictor.groups_) == 2
    ours = predictor.predict(Q)
    for h in range(4):
        np.testing.assert_allclose(ours[:, h], sklearn_head(X, Y[:, h], Q, 5), rtol=RTOL, atol=ATOL)


def test_k_larger_than_observed_rows_is_clamped_with_a_warning() -> None:
    X, Y, Q = random_problem(n=12, heads=3, seed=5)
    Y[4:, 1] = np.nan  # head 1 has 4 observed rows, the others 12
    with pytest.warns(UserWarning) as record:
        predictor = KNNPredictor(50).fit(X, Y)
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert "n_neighbors = 50 is larger than the 12 observed training rows of 2 head(s); using k = 12" in messages
    assert "n_neighbors = 50 is larger than the 4 observed training rows of 1 head(s); using k = 4" in messages
    ours = predictor.predict(Q)
    for h in range(3):
        n_rows = int((~np.isnan(Y[:, h])).sum())
        np.testing.assert_allclose(ours[:, h], sklearn_head(X, Y[:, h], Q, n_rows), rtol=RTOL, atol=ATOL)


def test_uniform_weights_equal_sklearn() -> None:
    X, Y, Q = random_problem(seed=11, missing=0.3)
    ours = KNNPredictor(8, weights="uniform").fit(X, Y).predict(Q)
    for h in range(Y.shape[1]):
        np.testing.assert_allclose(ours[:, h], sklearn_head(X, Y[:, h], Q, 8, "uniform"), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_duplicate_query_takes_the_duplicates_label_like_sklearn(dtype: Any) -> None:
    X, Y, _ = random_problem(seed=2)
    X = X.astype(dtype)
    Q = np.stack([X[5], 3.0 * X[17], X[40]])  # a scaled copy is at cosine distance 0 too
    ours = KNNPredictor(10, dtype=dtype).fit(X, Y).predict(Q)
    expected = Y[[5, 17, 40]]
    for h in range(Y.shape[1]):
        sk = sklearn_head(X, Y[:, h], Q, 10)
        np.testing.assert_allclose(sk, expected[:, h], rtol=RTOL)
        np.testing.assert_allclose(ours[:, h], expected[:, h], rtol=RTOL)
        np.testing.assert_allclose(ours[:, h], sk, rtol=RTOL, atol=ATOL)


def test_duplicated_training_rows_share_the_weight_of_a_zero_distance() -> None:
    X, Y, _ = random_problem(seed=4, heads=2)
    X[9] = X[3]
    ours = KNNPredictor(5).fit(X, Y).predict(X[3:4])
    np.testing.assert_allclose(ours[0], (Y[3] + Y[9]) / 2, rtol=1e-9)
    for h in range(2):
        np.testing.assert_allclose(ours[:, h], sklearn_head(X, Y[:, h], X[3:4], 5), rtol=RTOL)


def test_head_without_any_label_predicts_nan_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    X, Y, Q = random_problem(heads=3)
    Y[:, 2] = np.nan
    with caplog.at_level(logging.DEBUG, logger="r2router_core.engine.predictors.knn"):
        out = KNNPredictor(4).fit(X, Y).predict(Q)
    assert np.isnan(out[:, 2]).all() and np.isfinite(out[:, :2]).all()
    assert "no observed label" in caplog.text


def test_distances_are_cosine_distances() -> None:
    X, Y, Q = random_problem()
    d = KNNPredictor(3, dtype=np.float64).fit(X, Y).distances(Q)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    np.testing.assert_allclose(d, 1.0 - Qn.astype(np.float64) @ Xn.T.astype(np.float64), atol=1e-6)
    assert d.min() >= 0.0 and d.max() <= 2.0


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n_neighbors": 0}, "n_neighbors"),
        ({"n_neighbors": True}, "n_neighbors"),
        ({"n_neighbors": 3, "weights": "gaussian"}, "weights"),
        ({"n_neighbors": 3, "metric": "euclidean"}, "metric"),
    ],
)
def test_bad_settings_fail_at_fit(kwargs: dict[str, Any], needle: str) -> None:
    X, Y, _ = random_problem()
    with pytest.raises(ConfigError, match=needle):
        KNNPredictor(**kwargs).fit(X, Y)


def test_shape_errors() -> None:
    X, Y, Q = random_problem()
    with pytest.raises(DataError, match="same N"):
        KNNPredictor(3).fit(X, Y[:-1])
    with pytest.raises(DataError, match="not fitted"):
        KNNPredictor(3).predict(Q)
    with pytest.raises(EmbeddingError, match=r"shape \(n, 10\)"):
        KNNPredictor(3).fit(X, Y).predict(Q[:, :4])


# -- the router's heads ----------------------------------------------------------------------


def router_oracle(router: R2Router, queries: NDArray[np.float32]) -> tuple[NDArray[Any], NDArray[Any]]:
    """Quality (n, M, B) and tokens (n, M, B) from one sklearn regressor per card head, tokens capped at budgets."""
    data, config = router.training_data, router.config
    n, (_, m, b) = len(queries), data.quality.shape
    quality = np.empty((n, m, b))
    tokens = np.empty((n, m, b))
    for mi in range(m):
        for bi in range(b):
            quality[:, mi, bi] = sklearn_head(
                data.embeddings, data.quality[:, mi, bi], queries, config.k, config.weights
            )
        if data.tokens.ndim == 2:
            tokens[:, mi, :] = sklearn_head(data.embeddings, data.tokens[:, mi], queries, config.k, config.weights)[
                :, None
            ]
        else:
            for bi in range(b):
                tokens[:, mi, bi] = sklearn_head(
                    data.embeddings, data.tokens[:, mi, bi], queries, config.k, config.weights
                )
    return quality, np.minimum(tokens, budget_caps(config.budgets))


def budget_caps(budgets: tuple[int | None, ...]) -> NDArray[np.float64]:
    """Token cap per budget, shape (B,): inf for uncapped."""
    return np.array([np.inf if b is None else b for b in budgets])


@pytest.mark.parametrize("per_budget_tokens", [False, True])
@pytest.mark.parametrize("missing", [0.0, 0.25])
@pytest.mark.parametrize("weights", ["distance", "uniform"])
def test_router_predict_equals_one_sklearn_regressor_per_head(
    make_data: MakeData, per_budget_tokens: bool, missing: float, weights: str
) -> None:
    config, data = make_data(
        n=70, n_models=3, budgets=(100, 200, 400, None), per_budget_tokens=per_budget_tokens, missing=missing,
        k=9, weights=weights, seed=int(missing * 10) + per_budget_tokens,
    )  # fmt: skip
    router = R2Router(config, data)
    queries = np.random.default_rng(99).normal(size=(20, data.dim)).astype(np.float32)
    pred = router.predict(queries)
    quality, tokens = router_oracle(router, queries)
    assert pred.quality.shape == pred.tokens.shape == (20, 3, 4)
    assert pred.models == config.model_names and pred.budgets == config.budgets
    np.testing.assert_allclose(pred.quality, quality, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(pred.tokens, tokens, rtol=RTOL, atol=ATOL)


def test_router_with_k_above_n_warns_and_equals_sklearn_with_k_n(make_data: MakeData) -> None:
    config, data = make_data(n=15, k=7)
    with pytest.warns(UserWarning, match=r"n_neighbors = 40 is larger than the 15 observed training rows"):
        router = R2Router(config.with_options(k=40), data)
    queries = np.random.default_rng(1).normal(size=(6, data.dim)).astype(np.float32)
    pred = router.predict(queries)
    quality, tokens = router_oracle(router.with_settings(k=15), queries)
    np.testing.assert_allclose(pred.quality, quality, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(pred.tokens, tokens, rtol=RTOL, atol=ATOL)


def test_router_predict_on_a_training_row_returns_its_labels(make_data: MakeData) -> None:
    config, data = make_data(n=40, per_budget_tokens=True)
    pred = R2Router(config, data).predict(data.embeddings[[12]])
    np.testing.assert_allclose(pred.quality[0], data.quality[12], rtol=RTOL)
    np.testing.assert_allclose(pred.tokens[0], np.minimum(data.tokens[12], budget_caps(config.budgets)), rtol=RTOL)
