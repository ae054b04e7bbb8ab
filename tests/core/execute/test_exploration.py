"""Exploration's propensities, and the IPS estimate against the true value on a stub world."""

from __future__ import annotations

import math

import numpy as np
import pytest

from r2router_core import ConfigError, R2Router
from r2router_core.evaluation.off_policy import ips_estimate
from r2router_core.execute.exploration import ExplorationPolicy
from tests.conftest import random_training_data


def test_off_by_default_and_validated() -> None:
    assert ExplorationPolicy().rate == 0.0 and ExplorationPolicy.coerce(None).rate == 0.0
    for bad in (-0.1, 1.0, True):
        with pytest.raises(ConfigError, match="explore rate"):
            ExplorationPolicy(bad)  # type: ignore[arg-type]


def test_propensities_are_the_frequencies_and_arms_stay_in_the_cost_bound() -> None:
    config, data = random_training_data(n=80, seed=1)
    router = R2Router(config, data)
    decision = router.route(data.embeddings[0])
    policy = ExplorationPolicy(0.2, top=3, max_cost_ratio=3.0)
    options = policy.alternatives(decision)
    assert options and all(c.predicted_cost <= 3.0 * decision.chosen.predicted_cost for c in options)
    assert decision.chosen not in options and len(options) <= 3
    rng = np.random.default_rng(0)
    draws = [policy.choose(decision, rng) for _ in range(20_000)]
    for arm in (decision.chosen, *options):
        freq = sum(a == arm for a, _ in draws) / len(draws)
        (p,) = {p for a, p in draws if a == arm}
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / len(draws))  # binomial: 4 sigma
    assert ExplorationPolicy().choose(decision, rng) == (decision.chosen, 1.0)


def test_ips_estimates_another_lambdas_true_value() -> None:
    """Stub world: an arm's quality on a prompt is its training label; log 6000 explored calls at lambda 0.5,
    estimate lambda 0.1's mean quality from the log alone, compare with its true value."""
    config, data = random_training_data(n=200, seed=4)
    logging = R2Router(config.with_options(lambda_=0.5), data)
    target = R2Router(config.with_options(lambda_=0.1), data)
    policy = ExplorationPolicy(0.5, top=20, max_cost_ratio=float("inf"))  # every arm in the support
    rng = np.random.default_rng(7)
    rows = rng.integers(0, data.n_queries, size=6000)
    decisions = logging.route_batch(data.embeddings[rows])
    arm_index = {(m, b): (i, j) for i, m in enumerate(data.models) for j, b in enumerate(data.budgets)}
    arms, qualities, props = [], [], []
    for row, decision in zip(rows, decisions, strict=True):
        arm, p = policy.choose(decision, rng)
        key = (arm.model, arm.token_limit)
        arms.append(key)
        qualities.append(float(data.quality[(row, *arm_index[key])]))
        props.append(p)
    chosen = {r: (d.model, d.token_limit) for r, d in enumerate(target.route_batch(data.embeddings))}
    estimate = ips_estimate(arms, qualities, props, [chosen[int(r)] for r in rows])
    truth = float(np.mean([data.quality[(int(r), *arm_index[chosen[int(r)]])] for r in rows]))
    assert estimate.matched > 100
    assert abs(estimate.value - truth) < max(4 * estimate.stderr, 0.02), (estimate, truth)
    assert abs(estimate.value - truth) < 0.1  # the stated tolerance (docs/learning-from-traffic.md)
