"""Metric functions against hand-computed values and brute-force oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from r2router_core.errors import DataError
from r2router_core.evaluation.curves import DeferralCurve
from r2router_core.evaluation.metrics import (
    accuracy,
    arena_score,
    audc,
    best_single_arm,
    cost_per_1k,
    cost_to_reach,
    lambda_grid,
    matched_quality_costs,
    max_quality_arms,
    oracle_arms,
    peak_quality,
    qnc,
    realise,
)


def curve(points: list[tuple[float, float]]) -> DeferralCurve:
    cost, quality = (np.array(v, dtype=float) for v in zip(*points, strict=True))
    return DeferralCurve(lambdas=np.linspace(0, 1, len(points)), cost_per_1k=cost, quality=quality)


def published_arena(acc: float, cost: float) -> float:
    """The formula of RouterArena (method.md section 7), written out independently."""
    c = (math.log(200, 2) - math.log(cost, 2)) / (math.log(200, 2) - math.log(0.0044, 2))
    return 1.1 * acc * c / (0.1 * acc + c)


def test_accuracy_and_cost_per_1k_by_hand() -> None:
    assert accuracy([1.0, 0.0, 0.5, 0.5]) == pytest.approx(0.5)
    assert cost_per_1k([1e-4, 3e-4]) == pytest.approx(0.2)
    with pytest.raises(DataError):
        accuracy([0.5, float("nan")])
    with pytest.raises(DataError):
        cost_per_1k([])


def test_arena_score_matches_the_published_card_figure() -> None:
    # R2-Router card on RouterArena: accuracy 71.23 % at 0.061 USD per 1K queries -> arena score 71.60
    assert arena_score(0.7123, 0.061) == pytest.approx(71.60, abs=0.005)  # the leaderboard's 0-100 scale


@pytest.mark.parametrize(("acc", "cost"), [(0.5, 1.0), (0.69, 0.047), (0.523, 0.176), (0.9, 12.5), (0.1, 0.01)])
def test_arena_score_matches_the_formula(acc: float, cost: float) -> None:
    assert arena_score(acc, cost) == pytest.approx(100 * published_arena(acc, cost), rel=1e-12)


def test_arena_score_hand_values_and_clamping() -> None:
    # cost 1 USD/1K: C = log2(200) / log2(200 / 0.0044) = 0.494041...; S = 1.1 * 0.5 * C / (0.05 + C)
    c = 7.643856189774724 / 15.472136950686878
    assert arena_score(0.5, 1.0) == pytest.approx(100 * 1.1 * 0.5 * c / (0.05 + c), rel=1e-12)
    assert arena_score(0.8, 0.0) == pytest.approx(100 * 0.8 * 1.1 / (0.08 + 1.0))  # clamped to c_min: C = 1
    assert arena_score(0.8, 1e6) == 0.0  # clamped to c_max: C = 0
    assert arena_score(0.0, 1e6) == 0.0
    with pytest.raises(DataError):
        arena_score(1.2, 1.0)
    with pytest.raises(DataError):
        arena_score(0.5, float("nan"))


def test_frontier_drops_dominated_points() -> None:
    c = curve([(4.0, 0.4), (2.0, 0.5), (6.0, 0.8), (6.0, 0.7), (8.0, 0.8)])
    cost, quality = c.frontier()
    assert cost.tolist() == [2.0, 6.0] and quality.tolist() == [0.5, 0.8]


def test_audc_by_hand() -> None:
    c = curve([(2.0, 0.5), (4.0, 0.4), (6.0, 0.8)])
    # axis 0..10: 0 on [0, .2), 0.5 on [.2, .6), 0.8 on [.6, 1]
    assert audc(c, cost_range=(0.0, 10.0)) == pytest.approx(0.5 * 0.4 + 0.8 * 0.4)
    # a single arm at x = 0.5 scores q * (1 - x)
    assert audc(curve([(5.0, 0.6)]), cost_range=(0.0, 10.0)) == pytest.approx(0.3)
    # points cheaper than c_lo count at 0, dearer than c_hi add nothing
    assert audc(curve([(0.5, 0.3), (20.0, 0.9)]), cost_range=(1.0, 11.0)) == pytest.approx(0.3)


def test_peak_quality_and_qnc_by_hand() -> None:
    c = curve([(4.0, 0.79), (6.0, 0.81), (9.0, 0.85)])
    assert peak_quality(c) == pytest.approx(0.85)
    assert qnc(c, reference_quality=0.8, reference_cost=10.0) == pytest.approx(0.6)
    assert qnc(c, reference_quality=0.85, reference_cost=10.0) == pytest.approx(0.9)
    assert qnc(c, reference_quality=0.9, reference_cost=10.0) == math.inf


def test_cost_at_matched_quality_by_hand() -> None:
    a = curve([(1.0, 0.5), (3.0, 0.7), (4.0, 0.75)])
    b = curve([(2.0, 0.5), (5.0, 0.7)])
    assert cost_to_reach(a, 0.6) == 3.0 and cost_to_reach(b, 0.71) == math.inf
    assert matched_quality_costs(a, b) == (pytest.approx(0.7), 3.0, 5.0)  # the lower peak is b's 0.7


def test_best_single_arm_prefers_quality_then_cost() -> None:
    quality = np.array([[0.5, 0.9, 0.9], [0.5, 0.7, 0.7]])
    cost = np.array([[1.0, 3.0, 2.0], [1.0, 3.0, 2.0]])
    assert best_single_arm(quality, cost) == 2


def test_oracle_by_hand() -> None:
    quality = np.array([[0.2, 0.9, 0.9, np.nan], [0.5, 0.5, 0.1, 1.0]])
    cost = np.array([[1e-4, 9e-4, 5e-4, 0.0], [2e-4, 1e-4, 3e-4, 1.0]])
    assert max_quality_arms(quality, cost).tolist() == [2, 3]  # tie at 0.9 goes to the cheaper arm; NaN skipped
    assert oracle_arms(quality, cost, 1.0).tolist() == [0, 1]  # lambda = 1: cheapest observed arm


def test_oracle_is_an_upper_bound_on_utility_and_quality() -> None:
    rng = np.random.default_rng(3)
    quality = rng.uniform(size=(200, 7))
    cost = rng.uniform(1e-5, 1e-3, size=(200, 7))
    for lam in lambda_grid(cost.mean(axis=0), n=25):
        best = oracle_arms(quality, cost, float(lam))
        rows = np.arange(200)
        util = (1 - lam) * quality - lam * cost
        # brute force: no arm has a higher true utility than the oracle's, on any query
        assert np.all(util[rows, best] >= util.max(axis=1) - 1e-15)
    top = max_quality_arms(quality, cost)
    assert np.array_equal(quality[np.arange(200), top], quality.max(axis=1))


def test_realise_choices_and_probabilities() -> None:
    quality = np.array([[0.1, 0.9], [0.3, np.nan]])
    cost = np.array([[1.0, 2.0], [3.0, 4.0]])
    q, c = realise(quality, cost, np.array([[1, 0], [0, 0]]))
    assert q.tolist() == [[0.9, 0.3], [0.1, 0.3]] and c.tolist() == [[2.0, 3.0], [1.0, 3.0]]
    probs = np.array([[[0.5, 0.5], [1.0, 0.0]]])
    q, c = realise(quality, cost, probs)
    assert q[0].tolist() == pytest.approx([0.5, 0.3]) and c[0].tolist() == pytest.approx([1.5, 3.0])
    with pytest.raises(DataError, match="no outcome"):
        realise(quality, cost, np.array([[0, 1]]))
    with pytest.raises(DataError, match="no outcome"):
        realise(quality, cost, np.array([[[0.5, 0.5], [0.5, 0.5]]]))


@pytest.mark.parametrize("price_scale", [1e-3, 1.0, 1e3])
def test_lambda_grid_spans_best_quality_to_cheapest_at_any_price_scale(price_scale: float) -> None:
    rng = np.random.default_rng(0)
    quality = rng.uniform(size=(300, 6))
    cost = rng.uniform(1e-5, 1e-3, size=(300, 6)) * np.array([1, 2, 5, 10, 20, 50]) * price_scale
    grid = lambda_grid(cost.mean(axis=0))
    assert grid[0] == 0.0 and grid[-1] == 1.0 and np.all(np.diff(grid) > 0)
    rows = np.arange(300)
    # the first and last interior points already give the two ends of the curve
    assert np.array_equal(oracle_arms(quality, cost, float(grid[1])), max_quality_arms(quality, cost))
    assert np.array_equal(oracle_arms(quality, cost, float(grid[-2])), np.argmin(cost, axis=1))
    mean_q = [quality[rows, oracle_arms(quality, cost, float(lam))].mean() for lam in grid]
    assert len(set(np.round(mean_q, 6))) > 20  # many distinct points in between
