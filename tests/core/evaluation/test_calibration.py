"""Calibration picks the lambda that meets a dollar, quality or arena target (synthetic data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from r2router_core import ModelSpec, R2Router
from r2router_core.errors import ConfigError
from r2router_core.evaluation.baselines import RouterMethod, flat_outcomes
from r2router_core.evaluation.calibration import (
    CalibrationTarget,
    calibrate,
    dataset_from_training_data,
    select_operating_point,
)
from r2router_core.evaluation.curves import DeferralCurve
from r2router_core.evaluation.datasets import make_synthetic_pool
from r2router_core.evaluation.metrics import arena_score, lambda_grid, realise


@pytest.fixture(scope="module")
def pool() -> tuple:
    """One synthetic pool split into train / calibration / test queries."""
    data, emb = make_synthetic_pool(1500, seed=11)
    parts = np.split(np.random.default_rng(0).permutation(1500), [700, 1100])
    router = R2Router(data.config(k=20), data.subset(parts[0]).training_data(emb[parts[0]]))
    return data, emb, parts, router


def realised(router: R2Router, data, emb, rows, lambda_: float) -> tuple[float, float]:
    test = data.subset(rows)
    q, c = realise(*flat_outcomes(test), RouterMethod.from_router(router, test).policy(test, emb[rows], [lambda_]))
    return float(q.mean()), float(c.mean() * 1000)


def test_target_parsing() -> None:
    assert CalibrationTarget.parse("cost=0.5") == CalibrationTarget("cost", 0.5)
    assert CalibrationTarget.parse(" quality = 0.7") == CalibrationTarget("quality", 0.7)
    assert str(CalibrationTarget.parse("arena")) == "arena"
    for bad in ("cost", "arena=1", "speed=3", "cost=abc", "quality=1.5", "cost=-1"):
        with pytest.raises(ConfigError):
            CalibrationTarget.parse(bad)


def test_select_operating_point_by_hand() -> None:
    c = DeferralCurve(
        lambdas=np.linspace(0, 1, 6),
        cost_per_1k=np.array([5.0, 4.0, 3.0, 2.0, 1.0, 1.0]),
        quality=np.array([0.9, 0.85, 0.7, 0.5, 0.3, 0.3]),
    )
    assert select_operating_point(c, "cost=3.5") == (2, True)
    assert select_operating_point(c, "cost=0.5") == (4, False)  # nothing that cheap: the cheapest point
    assert select_operating_point(c, "quality=0.6") == (2, True)
    assert select_operating_point(c, "quality=0.95") == (0, False)  # unreachable: the best quality
    scores = [arena_score(q, x) for q, x in zip(c.quality, c.cost_per_1k, strict=True)]
    assert select_operating_point(c, "arena") == (int(np.argmax(scores)), True)


@pytest.mark.parametrize("target", ["cost=1.0", "cost=2.5", "quality=0.6", "quality=0.7"])
def test_calibration_hits_its_target_on_held_out_synthetic_queries(pool: tuple, target: str) -> None:
    data, emb, (_, cal, test), router = pool
    result = calibrate(data.subset(cal), emb[cal], target=target, router=router)
    t = CalibrationTarget.parse(target)
    assert result.met
    if t.kind == "cost":
        assert result.cost_per_1k <= t.value
    else:
        assert result.accuracy >= t.value
    acc, cost = realised(router, data, emb, test, result.lambda_)
    assert (acc, cost) != (0.0, 0.0)
    if t.kind == "cost":  # on 400 unseen queries the cost stays within 10 % of the budget
        assert cost <= 1.10 * t.value
    else:
        assert acc >= t.value - 0.03


def test_arena_target_is_the_best_arena_score_on_the_calibration_set(pool: tuple) -> None:
    data, emb, (_, cal, _), router = pool
    result = calibrate(data.subset(cal), emb[cal], target="arena", router=router)
    best = max(arena_score(q, c) for q, c in zip(result.curve.quality, result.curve.cost_per_1k, strict=True))
    assert result.arena_score == pytest.approx(best)


def test_cross_validated_calibration_without_a_router(pool: tuple) -> None:
    data, emb, (train, _, _), _ = pool
    result = calibrate(data.subset(train), emb[train], target="cost=1.5", k=20, n_folds=3)
    assert result.met and result.cost_per_1k <= 1.5 and 0 < result.lambda_ < 1


def test_the_same_lambda_means_different_things_in_pools_priced_differently() -> None:
    """0.999 balances one pool and sends everything to the cheapest model of a pool priced 1000x higher."""
    cheap, emb = make_synthetic_pool(600, seed=3)
    models = tuple(ModelSpec(m.name, m.output_price * 1000, m.input_price * 1000) for m in cheap.models)
    dear, _ = make_synthetic_pool(600, seed=3, models=models)
    shares = []
    for data in (cheap, dear):
        router = R2Router(data.config(k=20), data.subset(range(400)).training_data(emb[:400]))
        test = data.subset(range(400, 600))
        chosen = RouterMethod.from_router(router, test).choose(test, emb[400:], np.array([0.999]))[0]
        shares.append(np.bincount(chosen // len(data.budgets), minlength=len(data.models)) / len(chosen))
    cheapest = int(np.argmin([m.output_price for m in cheap.models]))
    assert (shares[0] > 0.1).sum() >= 2  # a real mix of models in the cheap pool
    assert shares[1][cheapest] == 1.0  # all to the cheapest model in the dear pool
    # a quality target does not care about the price scale; calibration finds the 1000x shift in lambda
    lam_cheap = calibrate(cheap, emb, target="quality=0.6", k=20, n_folds=3).lambda_
    lam_dear = calibrate(dear, emb, target="quality=0.6", k=20, n_folds=3).lambda_
    ratio = (lam_cheap / (1 - lam_cheap)) / (lam_dear / (1 - lam_dear))  # quality points per USD
    assert 500 < ratio < 2000


def test_apply_stores_the_lambda_in_the_checkpoint(pool: tuple, tmp_path: Path) -> None:
    data, emb, (_, cal, _), router = pool
    result = calibrate(data.subset(cal), emb[cal], target="cost=1.0", router=router)
    result.apply(router).save(tmp_path / "ckpt")
    assert R2Router.from_pretrained(tmp_path / "ckpt").config.lambda_ == result.lambda_
    assert result.to_dict()["target"] == "cost=1"


def test_dataset_from_training_data_caps_tokens_at_the_budget(pool: tuple) -> None:
    data, _, (train, _, _), router = pool
    view = dataset_from_training_data(router.training_data, router.config)
    assert view.n_queries == len(train) and view.models == data.models
    caps = np.array([np.inf if b is None else b for b in data.budgets])
    assert np.all(np.nan_to_num(view.tokens) <= caps)
    assert lambda_grid(np.nanmean(view.cost, axis=0)).size == 103


def test_a_router_of_fitted_weights_alone_calibrates_on_held_out_data(pool: tuple, tmp_path: Path) -> None:
    """A router with no training rows (e.g. converted from the research release) still gets its lambda calibrated."""
    import shutil

    data, emb, (train, cal, _), _ = pool
    ridge = R2Router(data.config(predictor="ridge"), data.subset(train).training_data(emb[train]))
    shutil.rmtree(ridge.save(tmp_path / "ridge") / "training_data")
    weights_only = R2Router.from_pretrained(tmp_path / "ridge")
    assert not weights_only.has_training_data
    result = calibrate(data.subset(cal), emb[cal], target="cost=1.0", router=weights_only)
    expected = calibrate(data.subset(cal), emb[cal], target="cost=1.0", router=ridge)
    assert result.met and result.lambda_ == expected.lambda_
