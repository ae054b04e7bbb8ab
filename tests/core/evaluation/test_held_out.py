"""evaluate_router: a trained router scored on a held-out file with the true outcomes of its choices."""

from __future__ import annotations

import numpy as np
import pytest

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.errors import DataError
from r2router_core.evaluation import RoutingDataset, evaluate, evaluate_router
from r2router_core.evaluation.held_out import BOOTSTRAP_RESAMPLES
from r2router_core.evaluation.metrics import arena_score

POOL = (ModelSpec("cheap", output_price=1.0), ModelSpec("dear", output_price=10.0))


def small_router(lambda_: float = 0.0) -> R2Router:
    """k=1 kNN on three 2-d points: near e1 'cheap' is right, near e2 'dear' is right."""
    X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], dtype=np.float32)
    quality = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])[:, :, None]
    tokens = np.full((3, 2), 100.0)
    config = RouterConfig(models=POOL, budgets=(None,), k=1, lambda_=lambda_)
    return R2Router(config, TrainingData(X, ("cheap", "dear"), (None,), quality, tokens, query_ids=("a", "b", "c")))


def small_test() -> tuple[RoutingDataset, np.ndarray]:
    """Four held-out queries: two near e1, two near e2, with outcomes that are not the training labels."""
    quality = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])[:, :, None]
    tokens = np.array([[100.0, 200.0], [50.0, 100.0], [100.0, 300.0], [100.0, 100.0]])[:, :, None]
    data = RoutingDataset(
        name="tiny-test",
        prompts=("p1", "p2", "p3", "p4"),
        query_ids=("t1", "t2", "t3", "t4"),
        models=POOL,
        budgets=(None,),
        quality=quality,
        tokens=tokens,
    )
    emb = np.array([[1.0, 0.05], [0.95, 0.0], [0.05, 1.0], [0.0, 0.9]], dtype=np.float32)
    return data, emb


def test_held_out_scores_reproduce_a_hand_computation() -> None:
    data, emb = small_test()
    result = evaluate_router(small_router(), data, emb)
    # the router picks cheap, cheap, dear, dear: true qualities 1, 0, 1, 0; costs 100, 50 x $1/M, 300, 100 x $10/M
    r = result.method("R2-Router")
    assert r.accuracy == pytest.approx(0.5)
    cost_1k = (100 * 1 + 50 * 1 + 300 * 10 + 100 * 10) / 1e6 / 4 * 1000
    assert r.cost_per_1k == pytest.approx(cost_1k)
    assert r.arena_score == pytest.approx(arena_score(0.5, cost_1k))
    assert 0 < r.arena_score <= 100  # the leaderboard's 0-100 scale
    # on the training data 'cheap' has mean quality 2/3 at a tenth of the price: the best single by arena score
    best = result.method("best single (chosen on train)")
    assert best.accuracy == pytest.approx(0.5) and best.cost_per_1k == pytest.approx(350 / 1e6 / 4 * 1000)
    assert result.versus is not None and result.versus["arm"] == "cheap @ uncapped"
    assert result.versus["accuracy"] == pytest.approx(0.0)
    assert result.versus["arena"] == pytest.approx(r.arena_score - best.arena_score)
    hindsight = next(m for m in result.methods if m.name.startswith("best single on test (hindsight)"))
    assert "dear" in hindsight.name and hindsight.accuracy == pytest.approx(0.75)
    assert result.method("random (expected)").accuracy == pytest.approx(0.625)
    oracle = next(m for m in result.methods if m.kind == "oracle")
    assert oracle.accuracy == pytest.approx(1.0)  # lambda 0: the best true quality per query, ties to the cheaper
    assert oracle.cost_per_1k == pytest.approx((100 * 1 + 100 * 10 + 300 * 10 + 100 * 1) / 1e6 / 4 * 1000)
    assert r.peak_quality >= r.accuracy and np.isfinite(r.audc) and np.isnan(best.audc)
    assert "router vs best single (chosen on train: cheap @ uncapped)" in result.table()
    assert result.single_budget and "one budget" in result.table()


def test_the_bootstrap_spread_is_seeded_and_positive() -> None:
    data, emb = small_test()
    a = evaluate_router(small_router(), data, emb, seed=3).versus
    b = evaluate_router(small_router(), data, emb, seed=3).versus
    assert a is not None and b is not None and a["arena_se"] == b["arena_se"] > 0
    assert BOOTSTRAP_RESAMPLES >= 200


def test_the_router_must_have_outcomes_for_every_arm_it_can_choose() -> None:
    data, emb = small_test()
    other = RouterConfig(models=(*POOL, ModelSpec("third", output_price=2.0)), budgets=(None,), k=1)
    X = np.eye(3, dtype=np.float32)
    router = R2Router(other, TrainingData(X, other.model_names, (None,), np.eye(3)[:, :, None], np.ones((3, 3))))
    with pytest.raises(DataError, match=r"\['third'\] are not in test file"):
        evaluate_router(router, data, emb[:, :2])


def test_overlap_with_the_training_data_is_reported() -> None:
    data, emb = small_test()
    renamed = RoutingDataset(
        name="leaky",
        prompts=data.prompts,
        query_ids=("a", "t2", "t3", "t4"),
        models=data.models,
        budgets=data.budgets,
        quality=data.quality,
        tokens=data.tokens,
    )
    result = evaluate_router(small_router(), renamed, emb)
    assert result.overlap == 1 and "in-sample" in result.table()


def equal_price_data(n: int = 60) -> tuple[RoutingDataset, np.ndarray]:
    rng = np.random.default_rng(0)
    pool = (ModelSpec("a", output_price=2.0, input_price=0.0), ModelSpec("b", output_price=2.0, input_price=0.0))
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    quality = (rng.random((n, 2, 1)) < np.where(emb[:, :1, None] > 0, [[0.8], [0.3]], [[0.3], [0.8]])).astype(float)
    return (
        RoutingDataset(
            name="equal-prices",
            prompts=tuple(f"q{i}" for i in range(n)),
            query_ids=tuple(f"q{i}" for i in range(n)),
            models=pool,
            budgets=(None,),
            quality=quality,
            tokens=np.full((n, 2, 1), 100.0),
        ),
        emb,
    )


def test_equal_prices_evaluate_without_a_degenerate_cost_axis() -> None:
    data, emb = equal_price_data()
    cv = evaluate(data, emb, n_folds=3, inner_folds=2, k=5)
    lo, hi = cv.cost_range
    assert lo < hi and np.isfinite(cv.method("oracle").audc)
    assert np.isnan(cv.method("R2-Router").audc)  # equal prices: every lambda gives one point, which has no area
    assert not any(m.name.startswith("point router") for m in cv.methods)  # one budget: R2-Router is it
    assert "one budget" in cv.table()
    assert all(m.peak_quality >= m.accuracy for m in cv.methods)  # the peak never contradicts the operating point
    v = cv.versus_best_single()
    assert v is not None and v["n_folds"] == 3 and v["arena_se"] >= 0
    r, b = cv.method("R2-Router"), cv.method("best single (chosen on train)")
    assert v["arena"] == pytest.approx(r.arena_score - b.arena_score)
    assert "router vs best single (chosen on train): arena" in cv.table()
    assert cv.to_dict()["arena_scale"] == 100
    train = data.subset(range(40))
    router = R2Router(data.config(k=5), train.training_data(emb[:40]))
    held = evaluate_router(router, data.subset(range(40, 60)), emb[40:])
    assert held.cost_range[0] < held.cost_range[1]
    assert held.method("R2-Router").cost_per_1k == pytest.approx(0.2)
