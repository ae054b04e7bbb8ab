"""Ridge, logistic and blend predictors: scikit-learn fitted per head is the oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor

from r2router_core import R2Router
from r2router_core.engine.predictors import (
    BlendPredictor,
    KNNPredictor,
    LogisticPredictor,
    RidgePredictor,
    fit_predictor,
    load_predictor,
    make_predictor,
    save_predictor,
)
from r2router_core.errors import CheckpointError, ConfigError, DataError, EmbeddingError
from tests.core.conftest import MakeData

TOL = 1e-6  # float64 solves on float32 inputs: BLAS rounding differs in the last bits only


def problem(n: int = 80, d: int = 10, heads: int = 5, *, seed: int = 0, missing: float = 0.0) -> tuple[NDArray, ...]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = X @ rng.normal(size=(d, heads)) + rng.normal(scale=0.3, size=(n, heads))
    if missing:
        holes = rng.uniform(size=Y.shape) < missing
        holes[:10] = False
        Y[holes] = np.nan
    Q = rng.normal(size=(15, d)).astype(np.float32)
    return X, Y, Q


def ridge_head(X: NDArray, y: NDArray, Q: NDArray, alpha: float) -> NDArray:
    ok = ~np.isnan(y)
    return Ridge(alpha=alpha).fit(X[ok].astype(np.float64), y[ok]).predict(Q.astype(np.float64))


@pytest.mark.parametrize("missing", [0.0, 0.3])
@pytest.mark.parametrize("alpha", [0.1, 10.0])
def test_ridge_equals_one_sklearn_ridge_per_head(missing: float, alpha: float) -> None:
    X, Y, Q = problem(seed=int(alpha), missing=missing)
    Y[:, 2] = np.where(np.isnan(Y[:, 0]), np.nan, Y[:, 2])  # heads 0 and 2 share a pattern: one fit serves both
    ours = RidgePredictor(alpha).fit(X, Y).predict(Q)
    assert ours.shape == (15, 5)
    for h in range(5):
        np.testing.assert_allclose(ours[:, h], ridge_head(X, Y[:, h], Q, alpha), rtol=TOL, atol=TOL)


def test_a_head_with_no_label_predicts_nan_like_the_knn() -> None:
    X, Y, Q = problem()
    Y[:, 1] = np.nan
    for predictor in (RidgePredictor(), LogisticPredictor(), BlendPredictor(n_neighbors=5), KNNPredictor(5)):
        out = predictor.fit(X, Y).predict(Q)
        assert np.isnan(out[:, 1]).all() and np.isfinite(np.delete(out, 1, axis=1)).all(), type(predictor)


def binary_problem(seed: int = 0) -> tuple[NDArray, ...]:
    X, Y, Q = problem(n=120, heads=4, seed=seed)
    Y[:, :3] = (Y[:, :3] > 0).astype(np.float64)  # three 0/1 heads, one real-valued (a token head)
    return X, Y, Q


@pytest.mark.parametrize("C", [0.1, 3.0])
def test_logistic_equals_sklearn_logistic_per_binary_head_and_ridge_for_the_rest(C: float) -> None:
    X, Y, Q = binary_problem()
    Y[:30, 1] = np.nan
    predictor = LogisticPredictor(C, alpha=2.0).fit(X, Y)
    ours = predictor.predict(Q)
    assert predictor.logistic_.tolist() == [True, True, True, False]
    for h in range(3):
        ok = ~np.isnan(Y[:, h])
        sk = LogisticRegression(C=C, max_iter=1000, tol=1e-6).fit(X[ok].astype(np.float64), Y[ok, h])
        np.testing.assert_allclose(ours[:, h], sk.predict_proba(Q.astype(np.float64))[:, 1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours[:, 3], ridge_head(X, Y[:, 3], Q, 2.0), rtol=TOL, atol=TOL)


def test_logistic_on_soft_labels_minimises_the_soft_cross_entropy() -> None:
    X, _, Q = problem(n=60, d=4, heads=1, seed=3)
    X64 = X.astype(np.float64)
    rng = np.random.default_rng(3)
    p = 1.0 / (1.0 + np.exp(-(X64 @ rng.normal(size=4)))) * rng.uniform(0.6, 1.0, size=60)
    C = 0.5

    def objective(wb: NDArray) -> float:  # sklearn's: 0.5 |w|^2 + C * soft cross-entropy, intercept unpenalised
        z = X64 @ wb[:-1] + wb[-1]
        return float(0.5 * wb[:-1] @ wb[:-1] + C * np.sum(np.logaddexp(0, z) - p * z))

    best = minimize(objective, np.zeros(5), method="BFGS", options={"gtol": 1e-10}).x
    want = 1.0 / (1.0 + np.exp(-(Q.astype(np.float64) @ best[:-1] + best[-1])))
    ours = LogisticPredictor(C).fit(X, p[:, None]).predict(Q)[:, 0]
    np.testing.assert_allclose(ours, want, atol=1e-4)


def test_logistic_head_with_one_class_predicts_it() -> None:
    X, _, Q = problem(heads=1)
    out = LogisticPredictor().fit(X, np.ones((80, 1))).predict(Q)
    assert (out == 1.0).all()


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_blend_is_the_weighted_sum_of_sklearn_knn_and_ridge(weight: float) -> None:
    X, Y, Q = problem(seed=5, missing=0.2)
    ours = BlendPredictor(weight, n_neighbors=7, alpha=0.5).fit(X, Y).predict(Q)
    for h in range(Y.shape[1]):
        ok = ~np.isnan(Y[:, h])
        knn = KNeighborsRegressor(n_neighbors=7, metric="cosine", weights="distance", algorithm="brute")
        want_knn = knn.fit(X[ok].astype(np.float64), Y[ok, h]).predict(Q.astype(np.float64))
        want = weight * want_knn + (1 - weight) * ridge_head(X, Y[:, h], Q, 0.5)
        np.testing.assert_allclose(ours[:, h], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "predictor",
    [RidgePredictor(0.3), LogisticPredictor(2.0, alpha=0.7), BlendPredictor(0.4, n_neighbors=6), KNNPredictor(6)],
    ids=["ridge", "logistic", "blend", "knn"],
)
def test_saved_arrays_reload_without_training_data_and_predict_the_same(predictor: object, tmp_path: Path) -> None:
    X, Y, Q = binary_problem(seed=7)
    Y[:20, 0] = np.nan
    fitted = predictor.fit(X, Y)  # type: ignore[attr-defined]
    save_predictor(fitted, tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["arrays.npz", "predictor.json"]
    loaded = load_predictor(tmp_path / "p")
    assert type(loaded) is type(fitted)
    np.testing.assert_allclose(loaded.predict(Q), fitted.predict(Q), rtol=TOL, atol=TOL, equal_nan=True)


def test_settings_are_validated_at_fit_and_loading_checks_the_arrays(tmp_path: Path) -> None:
    X, Y, Q = problem()
    with pytest.raises(ConfigError, match=r"alpha must be a finite number > 0, got -1"):
        RidgePredictor(-1).fit(X, Y)
    with pytest.raises(ConfigError, match=r"C must be a finite number > 0, got 0"):
        LogisticPredictor(0).fit(X, Y)
    with pytest.raises(ConfigError, match=r"blend weight must be a number in \[0, 1\].*got 1.5"):
        BlendPredictor(1.5).fit(X, Y)
    with pytest.raises(DataError, match="not fitted"):
        RidgePredictor().predict(Q)
    with pytest.raises(EmbeddingError, match=r"shape \(n, 10\)"):
        RidgePredictor().fit(X, Y).predict(Q[:, :3])
    with pytest.raises(CheckpointError, match="coef"):
        RidgePredictor.from_arrays({"intercept": np.zeros(2)}, {"kind": "ridge"})
    with pytest.raises(CheckpointError, match="unknown predictor kind 'mlp'"):
        load_predictor(save_predictor(RidgePredictor().fit(X, Y), tmp_path / "p") and _retag(tmp_path / "p"))


def _retag(directory: Path) -> Path:
    (directory / "predictor.json").write_text('{"kind": "mlp"}', encoding="utf-8")
    return directory


@pytest.mark.parametrize("name", ["ridge", "logistic", "blend"])
def test_router_routes_with_each_predictor_and_saves_it(make_data: MakeData, name: str, tmp_path: Path) -> None:
    config, data = make_data(n=50, budgets=(100, 200, None), missing=0.1, predictor=name, alpha=0.5)
    router = R2Router(config, data)
    queries = np.random.default_rng(3).normal(size=(9, data.dim)).astype(np.float32)
    _, direct = fit_predictor(config, data)
    assert type(direct) is type(make_predictor(config))
    reloaded = R2Router.from_pretrained(router.save(tmp_path / "ckpt"))
    assert (tmp_path / "ckpt" / "predictor" / "arrays.npz").is_file()
    a, b = router.predict(queries), reloaded.predict(queries)
    np.testing.assert_allclose(a.quality, b.quality, rtol=TOL, atol=TOL, equal_nan=True)
    assert [d.model for d in router.route_batch(queries)] == [d.model for d in reloaded.route_batch(queries)]


def test_predicted_tokens_of_capped_arms_never_exceed_the_budget(make_data: MakeData) -> None:
    # a ridge token head extrapolates: far-away queries predict far more (or fewer) tokens than any label
    config, data = make_data(n=40, budgets=(100, 200, None), predictor="ridge", alpha=0.01)
    router = R2Router(config, data)
    queries = 50.0 * np.random.default_rng(0).normal(size=(30, data.dim)).astype(np.float32)
    raw = router._predictor.predict(queries)[:, -len(config.models) :]
    assert raw.max() > 200 and raw.min() < 0  # the unclipped head does leave [0, budget]
    pred = router.predict(queries)
    assert (pred.tokens >= 0).all()
    assert (pred.tokens[:, :, 0] <= 100).all() and (pred.tokens[:, :, 1] <= 200).all()
    assert pred.tokens[:, :, 2].max() > 200  # uncapped stays uncapped
    for d in router.route_batch(queries, lambda_=0.0):
        assert d.token_limit is None or d.predicted_tokens <= d.token_limit
