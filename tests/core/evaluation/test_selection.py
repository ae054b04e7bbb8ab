"""Choosing the predictor and lambda by cross-validation on the training data (``predictor="auto"``)."""

from __future__ import annotations

import numpy as np
import pytest

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.engine.config import DEFAULT_LAMBDA
from r2router_core.errors import ConfigError, DataError
from r2router_core.evaluation.baselines import RouterMethod
from r2router_core.evaluation.calibration import dataset_from_training_data, select_operating_point
from r2router_core.evaluation.cross_validation import cross_validate
from r2router_core.evaluation.selection import Candidate, pick_one_se, select_predictor, train_router

POOL = (ModelSpec("gpt-4o", output_price=10.0, input_price=2.5), ModelSpec("gpt-4o-mini", output_price=0.6))


def pool_data(
    X: np.ndarray, mini_quality: np.ndarray, *, dear_quality: float = 0.9
) -> tuple[RouterConfig, TrainingData]:
    """gpt-4o vs gpt-4o-mini, one uncapped budget, ~300 output tokens per answer."""
    n = len(X)
    quality = np.stack([np.full(n, dear_quality), mini_quality], axis=1)[:, :, None]
    tokens = np.full((n, 2), 300.0)
    config = RouterConfig(models=POOL, budgets=(None,))
    return config, TrainingData(X.astype(np.float32), config.model_names, (None,), quality, tokens)


def linear_problem(n: int = 300, d: int = 24, seed: int = 0) -> tuple[RouterConfig, TrainingData]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d) / np.sqrt(d)
    return pool_data(X, np.clip(0.55 + 0.3 * X @ w, 0.0, 1.0))


def clustered_problem(n: int = 300, d: int = 24, seed: int = 0) -> tuple[RouterConfig, TrainingData]:
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n, 2))  # four clusters at (+-1, +-1, 0, ...), noise elsewhere
    X = 0.2 * rng.normal(size=(n, d))
    X[:, :2] += signs
    good = signs[:, 0] * signs[:, 1] > 0  # XOR: mini as good as 4o on two diagonal clusters, useless on the others
    return pool_data(X, np.where(good, 0.9, 0.1))


def test_labels_linear_in_the_embedding_make_auto_pick_ridge() -> None:
    config, data = linear_problem()
    result = select_predictor(config.with_options(predictor="auto"), data)
    assert result.chosen.predictor == "ridge"
    by_label = {c.label: c.score for c in result.candidates}
    assert result.chosen.score > by_label["knn k=80"]
    assert result.config.predictor == "ridge" and result.config.alpha == result.chosen.alpha
    record = result.config.selection["predictor"]  # type: ignore[index]
    assert record["chosen"] == result.chosen.label and record["metric"] == "arena"
    assert len(record["candidates"]) == len(result.candidates) and len(record["candidates"][0]["fold_scores"]) == 5


def test_clustered_labels_make_auto_keep_knn() -> None:
    config, data = clustered_problem()
    result = select_predictor(config.with_options(predictor="auto"), data)
    assert result.chosen.predictor == "knn"
    best_ridge = max(c.score for c in result.candidates if c.predictor == "ridge")
    assert result.chosen.score > best_ridge


def test_scores_are_the_evaluations_cross_validated_arena_score() -> None:
    config, data = clustered_problem(n=120)
    result = select_predictor(config, data, calibrate_lambda=True)  # knn given: only scored
    assert len(result.candidates) == 1
    ds = dataset_from_training_data(data, config)
    run = cross_validate(ds, data.embeddings, [RouterMethod("x", k=80)], lambdas=result.curve.lambdas)["x"]
    np.testing.assert_allclose(result.curve.quality, run.curve().quality)
    index, _ = select_operating_point(run.curve(), "arena")
    assert result.config.lambda_ == run.lambdas[index]
    assert "predictor" not in (result.config.selection or {})


def test_auto_is_resolved_by_the_trainer_and_the_engine_refuses_it() -> None:
    """The engine never runs cross-validation: an unresolved 'auto' names the trainer that resolves it."""
    config, data = linear_problem(n=150)
    with pytest.raises(ConfigError, match="train_router"):
        R2Router(config.with_options(predictor="auto"), data).route(data.embeddings[0])
    router = train_router(config.with_options(predictor="auto"), data, calibrate_lambda=False)
    assert router.config.predictor == "ridge" and "predictor" in (router.config.selection or {})


def test_default_lambda_routes_everything_to_the_cheapest_but_the_calibrated_one_mixes() -> None:
    config, data = clustered_problem(seed=1)
    X_new = clustered_problem(seed=1)[1].embeddings  # the same topics: a deployment like the training data
    untuned = R2Router(config, data)
    assert untuned.config.lambda_ == DEFAULT_LAMBDA
    assert {d.model for d in untuned.route_batch(X_new)} == {"gpt-4o-mini"}
    router = train_router(config, data)
    chosen = [d.model for d in router.route_batch(X_new)]
    assert 0.3 < chosen.count("gpt-4o") / len(chosen) < 0.7
    lam = router.config.selection["lambda"]  # type: ignore[index]
    assert lam["lambda"] == router.config.lambda_ < DEFAULT_LAMBDA and lam["target"] == "arena"
    assert lam["accuracy"] > 0.85 and len(lam["curve"]["quality"]) == len(lam["curve"]["lambda"])


def test_cost_target_scores_by_audc_and_meets_the_budget() -> None:
    config, data = clustered_problem(n=150)
    result = select_predictor(config, data, target="cost=1.5", calibrate_lambda=True)
    assert result.config.selection["lambda"]["cost_per_1k"] <= 1.5  # type: ignore[index]


def test_too_few_complete_queries_is_a_clear_error() -> None:
    config, data = clustered_problem(n=8)
    with pytest.raises(DataError, match=r"needs at least 10 training queries with every arm observed, got 8"):
        select_predictor(config.with_options(predictor="auto"), data)


# -- the one-standard-error rule and the best-single guard ------------------------------------------------


def _cand(predictor: str, folds: tuple[float, ...]) -> Candidate:
    return Candidate(predictor, 80, 1.0, 0.5, float(np.mean(folds)), folds)


def test_one_se_rule_keeps_knn_when_ridge_wins_by_less_than_one_standard_error() -> None:
    knn = _cand("knn", (60.0, 62.0, 58.0, 61.0, 59.0))
    ridge = _cand("ridge", (61.5, 61.0, 59.5, 60.0, 60.5))  # +0.5 on average; paired differences +1.5/-1, SE 0.61
    chosen, margin, se = pick_one_se([knn, ridge], knn)
    assert margin == pytest.approx(0.5) and margin < se
    assert chosen is knn


def test_one_se_rule_picks_ridge_when_it_wins_clearly() -> None:
    knn = _cand("knn", (60.0, 62.0, 58.0, 61.0, 59.0))
    ridge = _cand("ridge", (63.0, 65.2, 60.9, 64.1, 62.0))  # +3 on every fold
    chosen, margin, se = pick_one_se([knn, ridge], knn)
    assert margin > se and chosen is ridge


def test_auto_records_the_margin_and_its_standard_error() -> None:
    config, data = linear_problem()
    record = select_predictor(config.with_options(predictor="auto"), data).config.selection["predictor"]  # type: ignore[index]
    assert record["default"] == "knn k=80" and record["chosen"].startswith("ridge")
    assert record["margin"] > record["standard_error"] > 0


def no_signal_problem(n: int = 300, d: int = 16, seed: int = 0) -> tuple[RouterConfig, TrainingData]:
    """gpt-4o right 90% of the time, mini 20%, both independent of the prompt: nothing to route on."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    config, data = pool_data(X, (rng.random(n) < 0.2).astype(float))
    quality = data.quality.copy()
    quality[:, 0, 0] = (rng.random(n) < 0.9).astype(float)
    return config, TrainingData(data.embeddings, data.models, data.budgets, quality, data.tokens)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_routing_signal_routes_everything_to_the_best_arm_and_says_so(
    seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    config, data = no_signal_problem(seed=seed)
    router = train_router(config, data)
    guard = router.config.selection["guard"]  # type: ignore[index]
    assert not guard["beats"] and guard["gain"] <= guard["standard_error"]
    assert guard["fallback"] == "gpt-4o @ uncapped" and "does not beat gpt-4o @ uncapped" in caplog.text
    assert router.config.model_names == ("gpt-4o",)
    decisions = router.route_batch(data.embeddings[:20])
    assert {d.model for d in decisions} == {"gpt-4o"}
    kept = train_router(config, data, fallback_to_best_single=False)
    assert kept.config.model_names == ("gpt-4o", "gpt-4o-mini") and "fallback" not in kept.config.selection["guard"]  # type: ignore[index]


def test_a_real_routing_signal_passes_the_guard() -> None:
    config, data = clustered_problem()
    router = train_router(config, data)
    guard = router.config.selection["guard"]  # type: ignore[index]
    assert guard["beats"] and guard["gain"] > guard["standard_error"]
    assert router.config.model_names == ("gpt-4o", "gpt-4o-mini")


def test_auto_router_method_resolves_auto_inside_each_training_part() -> None:
    from r2router_core.evaluation import AutoRouterMethod, RoutingDataset

    config, data = linear_problem(n=200)
    ds: RoutingDataset = dataset_from_training_data(data, config)
    method = AutoRouterMethod("auto", predictor="auto").fit(ds, data.embeddings)
    assert method.router_.config.predictor == "ridge"
    with pytest.raises(ConfigError, match="AutoRouterMethod"):
        RouterMethod("plain", predictor="auto").fit(ds, data.embeddings)


def test_a_fallback_router_is_scored_against_its_whole_training_pool() -> None:
    from r2router_core.evaluation import evaluate_router

    config, data = no_signal_problem(seed=0)
    router = train_router(config, data.select())  # trained on all 300, scored on fresh draws of the same pool
    test_config, test_data = no_signal_problem(seed=7)
    result = evaluate_router(router, dataset_from_training_data(test_data, test_config), test_data.embeddings)
    cheapest = next(m for m in result.methods if m.name.startswith("cheapest"))
    assert "gpt-4o-mini" in cheapest.name  # the baselines range over both models, not only the fallback arm
    assert result.method("R2-Router").accuracy == result.method("best single (chosen on train)").accuracy
