"""Baselines share one code path: the core router's scoring, the dataset's true outcomes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from r2router_core import ModelSpec, R2Router, RouterConfig
from r2router_core.engine.scoring import arm_costs
from r2router_core.errors import DataError
from r2router_core.evaluation import RoutingDataset
from r2router_core.evaluation.baselines import (
    Oracle,
    RandomRouter,
    RouterMethod,
    SingleArm,
    arm_label,
    default_methods,
    flat_outcomes,
    point_budget,
    point_router,
)
from r2router_core.evaluation.metrics import lambda_grid, realise

BUDGETS = (50, 200, None)


def toy_dataset(n: int = 240, *, seed: int = 0, input_tokens: bool = False) -> tuple[RoutingDataset, np.ndarray]:
    """Two topics; the cheap model is good on one of them; longer budgets help the dear one."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 2, size=n)
    centres = rng.normal(size=(2, 8))
    emb = (centres[topic] + 0.3 * rng.normal(size=(n, 8))).astype(np.float32)
    base = np.where(topic[:, None] == 0, [0.8, 0.85], [0.2, 0.9])  # (n, 2 models)
    boost = np.array([0.6, 0.85, 1.0])  # quality fraction reached at each budget
    quality = np.clip(base[:, :, None] * boost[None, None, :] + 0.05 * rng.normal(size=(n, 2, 3)), 0, 1)
    tokens = np.broadcast_to(np.array([40.0, 150.0, 400.0]), (n, 2, 3)).copy()
    models = (
        ModelSpec("cheap", output_price=0.5, input_price=0.1),
        ModelSpec("dear", output_price=20.0, input_price=5),
    )
    dataset = RoutingDataset(
        name="toy",
        prompts=tuple(f"topic {t} prompt {i}" for i, t in enumerate(topic)),
        query_ids=tuple(f"q{i}" for i in range(n)),
        models=models,
        budgets=BUDGETS,
        quality=quality,
        tokens=tokens,
        input_tokens=rng.integers(10, 500, size=n).astype(float) if input_tokens else None,
    )
    return dataset, emb


def test_router_method_matches_r2router_route_batch() -> None:
    data, emb = toy_dataset()
    train, test = data.subset(range(200)), data.subset(range(200, 240))
    method = RouterMethod(k=15).fit(train, emb[:200])
    router = R2Router(RouterConfig(models=data.models, budgets=BUDGETS, k=15), train.training_data(emb[:200]))
    lambdas = np.array([0.0, 0.99, 0.9999, 1.0])
    chosen = method.choose(test, emb[200:], lambdas)
    for i, lam in enumerate(lambdas):
        decisions = router.route_batch(emb[200:], lambda_=float(lam))
        expected = [data.model_names.index(d.model) * 3 + BUDGETS.index(d.token_limit) for d in decisions]
        assert chosen[i].tolist() == expected


def test_router_method_adds_each_querys_input_cost_like_route() -> None:
    data, emb = toy_dataset(input_tokens=True)
    train, test = data.subset(range(200)), data.subset(range(200, 240))
    method = RouterMethod(k=15).fit(train, emb[:200])
    chosen = method.choose(test, emb[200:], np.array([0.995]))[0]
    without = method.choose(dataclasses.replace(test, input_tokens=None), emb[200:], np.array([0.995]))[0]
    assert (chosen != without).any()  # the input cost changes some choices at this lambda
    router = method.router_
    for j in range(40):
        d = router.route(emb[200 + j], lambda_=0.995, input_tokens=int(test.input_tokens[j]))
        assert chosen[j] == data.model_names.index(d.model) * 3 + BUDGETS.index(d.token_limit)


def test_a_fitted_router_over_part_of_the_pool_is_priced_with_its_own_input_tokens() -> None:
    data, emb = toy_dataset(input_tokens=True)
    per_model = np.stack([data.input_tokens, 2 * data.input_tokens], axis=1)  # (N, M): dear reads twice as many
    data = dataclasses.replace(data, input_tokens=per_model)
    only_dear = data.training_data(emb).select(models=["dear"], budgets=[200, None])
    router = R2Router(RouterConfig(models=data.models[1:], budgets=(200, None), k=10), only_dear)
    method = RouterMethod.from_router(router, data)
    pred, cost = method.predicted_costs(data, emb)
    expected = arm_costs(pred, router.config) + (2 * data.input_tokens[:, 0] * 5 / 1e6)[:, None, None]
    assert np.allclose(cost, expected)
    assert set(method.choose(data, emb, np.array([0.0, 1.0])).ravel().tolist()) <= {4, 5}  # dear @ 200 / uncapped


def test_point_router_is_the_same_router_on_the_default_budget() -> None:
    data, emb = toy_dataset()
    assert point_budget(BUDGETS) is None and point_budget((100, 400)) == 400
    method = point_router(BUDGETS, k=15).fit(data.subset(range(200)), emb[:200])
    chosen = method.choose(data.subset(range(200, 240)), emb[200:], lambda_grid(np.array([1e-5, 1e-2])))
    assert set((chosen % 3).ravel().tolist()) == {BUDGETS.index(None)}
    only = data.training_data(emb).subset(range(200)).select(budgets=[None])
    router = R2Router(RouterConfig(models=data.models, budgets=(None,), k=15), only)
    expected = [data.model_names.index(d.model) * 3 + 2 for d in router.route_batch(emb[200:], lambda_=0.999)]
    assert method.choose(data.subset(range(200, 240)), emb[200:], np.array([0.999]))[0].tolist() == expected


def test_missing_arm_is_never_chosen_and_realising_one_is_an_error() -> None:
    data, emb = toy_dataset()
    quality = data.quality.copy()
    quality[:, 0, 0] = np.nan  # cheap @ 50 was never run (the cheapest arm)
    tokens = data.tokens.copy()
    tokens[:, 0, 0] = np.nan
    holed = RoutingDataset("holed", data.prompts, data.query_ids, data.models, BUDGETS, quality, tokens)
    method = RouterMethod(k=15).fit(holed.subset(range(200)), emb[:200])
    chosen = method.choose(holed.subset(range(200, 240)), emb[200:], lambda_grid(np.array([1e-5, 1e-2])))
    assert 0 not in chosen
    q, c = flat_outcomes(holed)
    with pytest.raises(DataError, match="no outcome"):
        realise(q, c, SingleArm(0, "always cheap @ 50").choose(holed, emb, np.array([0.5])))


def test_single_arm_random_and_oracle() -> None:
    data, emb = toy_dataset()
    lambdas = np.array([0.0, 0.999, 1.0])
    assert (SingleArm(4, "x").choose(data, emb, lambdas) == 4).all()
    assert arm_label(data, 4) == "dear @ 200"
    rnd = RandomRouter(seed=1).fit(data, emb)
    draws = rnd.choose(data, emb, lambdas)
    assert np.array_equal(draws, RandomRouter(seed=1).fit(data, emb).choose(data, emb, lambdas))
    assert set(draws.ravel().tolist()) == set(range(6))
    probs = rnd.policy(data, emb, lambdas)
    assert probs.shape == (3, 240, 6) and np.allclose(probs.sum(axis=2), 1.0)
    q, _ = realise(*flat_outcomes(data), probs)
    assert q[0] == pytest.approx(flat_outcomes(data)[0].mean(axis=1))  # the exact expectation
    oracle = Oracle().choose(data, emb, lambdas)
    quality, cost = flat_outcomes(data)
    assert np.array_equal(quality[np.arange(240), oracle[0]], quality.max(axis=1))
    assert np.array_equal(cost[np.arange(240), oracle[2]], cost.min(axis=1))


def test_arm_labels_name_the_length_mode_when_the_dataset_does() -> None:
    data, _ = toy_dataset(10)
    named = dataclasses.replace(data, meta={"budget_modes": {50: "concise", None: "default", 200: "verbose"}})
    assert arm_label(data, 1) == "cheap @ 200" and arm_label(data, 2) == "cheap @ uncapped"
    assert arm_label(named, 1) == "cheap @ verbose (200)" and arm_label(named, 5) == "dear @ default (uncapped)"


def test_never_run_arms_do_not_spam_the_log(caplog: pytest.LogCaptureFixture) -> None:
    data, emb = toy_dataset(60)
    quality = data.quality.copy()
    quality[:, 1, 1] = np.nan  # an arm nobody ran
    holed = dataclasses.replace(data, quality=quality, tokens=np.where(np.isnan(quality), np.nan, data.tokens))
    RouterMethod(k=5).fit(holed, emb)
    assert "no observed label" not in caplog.text


def test_default_methods() -> None:
    data, _ = toy_dataset()
    names = [m.name for m in default_methods(data, k=5)]
    assert names[:4] == ["R2-Router", "point router (uncapped)", "oracle", "random"]
    assert names[4] == "best single (chosen on train)"
    assert len(names) == 5 + 6 and "always cheap @ 50" in names
