"""Scoring: arm costs, utilities, constraints, the argmax and budget interpolation, against plain Python."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from r2router_core import ModelSpec, RouterConfig
from r2router_core.engine.options import RoutingOptions
from r2router_core.engine.scoring import (
    Prediction,
    arm_costs,
    choose,
    eligibility,
    interpolate_budgets,
    utilities,
)
from r2router_core.errors import ConfigError, ConstraintError, NoCandidateError, UnknownModelError

CONFIG = RouterConfig(
    models=(ModelSpec("a", output_price=2.0, input_price=1.0), ModelSpec("b", output_price=10.0, input_price=4.0)),
    budgets=(100, 400, None),
)


def prediction(seed: int = 0, n: int = 4) -> Prediction:
    rng = np.random.default_rng(seed)
    return Prediction(
        quality=rng.uniform(size=(n, 2, 3)),
        tokens=rng.uniform(10, 900, size=(n, 2, 3)),
        models=("a", "b"),
        budgets=(100, 400, None),
    )


def test_capped_tokens_caps_at_each_budget_and_not_uncapped() -> None:
    pred = prediction()
    capped = pred.capped_tokens()
    for i in range(4):
        for m in range(2):
            for c, budget in enumerate(pred.budgets):
                t = pred.tokens[i, m, c]
                assert capped[i, m, c] == (t if budget is None else min(t, budget))


@pytest.mark.parametrize("input_tokens", [None, 0, 250])
def test_arm_costs_are_capped_tokens_times_price_plus_input_cost(input_tokens: int | None) -> None:
    pred = prediction(1)
    cost = arm_costs(pred, CONFIG, input_tokens)
    for i in range(4):
        for m, spec in enumerate(CONFIG.models):
            for c, budget in enumerate(pred.budgets):
                t = pred.tokens[i, m, c] if budget is None else min(pred.tokens[i, m, c], budget)
                expected = t * spec.output_price / 1e6 + (input_tokens or 0) * spec.input_price / 1e6
                assert cost[i, m, c] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.999, 1.0])
def test_utilities_formula(lam: float) -> None:
    q, c = np.array([0.2, 0.9]), np.array([1e-4, 3e-3])
    np.testing.assert_allclose(utilities(q, c, lam), [(1 - lam) * 0.2 - lam * 1e-4, (1 - lam) * 0.9 - lam * 3e-3])


def test_interpolation_is_the_papers_piecewise_linear_formula() -> None:
    rng = np.random.default_rng(3)
    anchors = (400, 100, None, 800)  # unsorted, with an uncapped anchor that is ignored
    values = rng.uniform(size=(5, 2, 4))
    extra = (150, 250, 600, 799)
    out = interpolate_budgets(values, anchors, extra)
    assert out.shape == (5, 2, 8)
    np.testing.assert_array_equal(out[..., :4], values)
    ints = sorted(b for b in anchors if b is not None)
    for j, b in enumerate(extra):
        lo = max(a for a in ints if a < b)
        hi = min(a for a in ints if a > b)
        a = (b - lo) / (hi - lo)
        expected = (1 - a) * values[..., anchors.index(lo)] + a * values[..., anchors.index(hi)]
        np.testing.assert_allclose(out[..., 4 + j], expected, rtol=1e-12)
    assert interpolate_budgets(values, anchors, ()) is values


def test_options_default_to_the_config_lambda() -> None:
    options = RoutingOptions.build(CONFIG)
    assert options == RoutingOptions(lambda_=0.999)
    assert RoutingOptions.build(CONFIG, lambda_=0).lambda_ == 0.0
    assert RoutingOptions.build(CONFIG, allowed_models="b").allowed_models == ("b",)


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"lambda_": -0.1}, ConfigError, "lambda must be a number in [0, 1]"),
        ({"lambda_": 1.5}, ConfigError, "got 1.5"),
        ({"lambda_": math.nan}, ConfigError, "got nan"),
        ({"lambda_": True}, ConfigError, "got True"),
        ({"allowed_models": ["a", "zz"]}, UnknownModelError, "unknown model 'zz'; the pool is ['a', 'b']"),
        ({"allowed_models": []}, ConstraintError, "allowed_models is empty"),
        ({"max_budget": 0}, ConfigError, "max_budget must be a positive int"),
        ({"max_budget": 12.5}, ConfigError, "got 12.5"),
        ({"max_cost": -0.01}, ConfigError, "max_cost must be a finite number >= 0"),
        ({"max_cost": math.inf}, ConfigError, "got inf"),
        ({"input_tokens": -5}, ConfigError, "input_tokens must be an int >= 0"),
    ],
)
def test_bad_options_name_the_value(kwargs: dict[str, Any], error: type[Exception], needle: str) -> None:
    with pytest.raises(error) as info:
        RoutingOptions.build(CONFIG, **kwargs)
    assert needle in str(info.value)


def test_eligibility_applies_each_constraint() -> None:
    pred = prediction(2)
    pred.quality[0, 1, 2] = np.nan  # an arm without a prediction is never eligible
    cost = arm_costs(pred, CONFIG)
    limit = float(np.median(cost))
    options = RoutingOptions.build(CONFIG, allowed_models=["b"], max_budget=400, max_cost=limit)
    ok = eligibility(pred, cost, CONFIG, options)
    for i in range(4):
        for m, name in enumerate(("a", "b")):
            for c, budget in enumerate(pred.budgets):
                expected = (
                    not np.isnan(pred.quality[i, m, c])
                    and name == "b"
                    and budget is not None
                    and budget <= 400
                    and cost[i, m, c] <= limit
                )
                assert ok[i, m, c] == expected
    all_ok = eligibility(pred, cost, CONFIG, RoutingOptions.build(CONFIG))
    assert all_ok.sum() == all_ok.size - 1


def test_choose_takes_the_first_best_eligible_arm() -> None:
    util = np.array([[[0.1, 0.5, 0.5], [0.9, 0.5, 0.2]]])
    eligible = np.ones_like(util, dtype=bool)
    assert choose(util, eligible).tolist() == [3]
    eligible[0, 1, 0] = False
    assert choose(util, eligible).tolist() == [1]  # tie between arms 1, 2 and 4: the first wins


def test_choose_with_nothing_eligible_names_the_query_and_the_fix() -> None:
    util = np.zeros((3, 2, 2))
    eligible = np.ones_like(util, dtype=bool)
    eligible[1] = False
    with pytest.raises(
        NoCandidateError, match=r"query 1 .*allow more models, a larger max_budget or a larger max_cost"
    ):
        choose(util, eligible)
