"""The synthetic pool: labelled as synthetic, a known optimum, and the router finds it."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest

from r2router_core import R2Router
from r2router_core.errors import ConfigError, DataError
from r2router_core.evaluation import RoutingDataset
from r2router_core.evaluation.datasets import (
    make_synthetic_pool,
    synthetic_expected,
    synthetic_optimal_arms,
    synthetic_optimum,
)


@pytest.fixture(scope="module")
def pool() -> tuple[RoutingDataset, np.ndarray]:
    return make_synthetic_pool(600, seed=3)


def test_labelled_synthetic_with_consistent_shapes(pool: tuple[RoutingDataset, np.ndarray]) -> None:
    ds, emb = pool
    n, m, b = ds.quality.shape
    assert ds.name.startswith("synthetic") and ds.synthetic
    assert "SYNTHETIC" in ds.meta["source"]
    assert (n, b) == (600, len(ds.budgets)) and m >= 3
    assert emb.shape == (600, 32) and emb.dtype == np.float32
    assert ds.tokens.shape == ds.cost.shape == (n, m, b)
    assert np.all((ds.quality >= 0) & (ds.quality <= 1))
    caps = np.array([math.inf if x is None else x for x in ds.budgets])
    assert np.all(ds.tokens <= caps[None, None, :])
    assert all(p.startswith("synthetic ") for p in ds.prompts)
    prices = sorted(s.output_price for s in ds.models)
    assert prices[-1] / prices[0] >= 10  # a realistic price spread


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, ea = make_synthetic_pool(50, seed=7)
    b, eb = make_synthetic_pool(50, seed=7)
    c, _ = make_synthetic_pool(50, seed=8)
    np.testing.assert_array_equal(a.quality, b.quality)
    np.testing.assert_array_equal(ea, eb)
    assert a.prompts == b.prompts
    assert not np.array_equal(a.quality, c.quality)


def test_expected_quality_rises_with_budget_and_saturates(pool: tuple[RoutingDataset, np.ndarray]) -> None:
    ds, _ = pool
    quality, tokens = synthetic_expected(ds)
    order = np.argsort([math.inf if x is None else x for x in ds.budgets])
    q, t = quality[:, :, order], tokens[:, :, order]
    assert np.all(np.diff(q, axis=2) >= -1e-12) and np.all(np.diff(t, axis=2) >= -1e-12)
    saturated = np.isclose(q[:, :, :-1], q[:, :, -1:])  # budgets the planned answer fits
    assert saturated.any() and (~saturated).any()
    # a budget that changes nothing (same quality as uncapped) also spends the same tokens
    np.testing.assert_allclose(t[:, :, :-1][saturated], np.broadcast_to(t[:, :, -1:], saturated.shape)[saturated])


def test_observations_are_unbiased_around_the_expectations() -> None:
    ds, _ = make_synthetic_pool(3000, seed=11)
    quality, tokens = synthetic_expected(ds)
    residual = ds.quality - quality
    for low, high in ((0.0, 0.2), (0.2, 0.6), (0.6, 1.0)):  # the Beta noise keeps the mean also near 0 and 1
        cell = (quality >= low) & (quality < high)
        assert abs(residual[cell].mean()) < 4 * residual[cell].std() / math.sqrt(cell.sum() / 6)
    assert 0.03 < residual.std() < 0.06  # noise=0.05 at q = 0.5, less near the ends
    assert abs(ds.tokens.sum() / tokens.sum() - 1.0) < 0.01


def test_optimum_is_the_brute_force_argmax_of_expected_utility(pool: tuple[RoutingDataset, np.ndarray]) -> None:
    ds, _ = pool
    lam = 0.98
    quality, tokens = synthetic_expected(ds)
    n_b = len(ds.budgets)
    best = []
    for i in range(ds.n_queries):
        utils = [
            (1 - lam) * quality[i, m, b] - lam * tokens[i, m, b] * spec.output_price / 1e6
            for m, spec in enumerate(ds.models)
            for b in range(n_b)
        ]
        best.append(max(range(len(utils)), key=lambda a: (utils[a], -a)))
    np.testing.assert_array_equal(synthetic_optimum(ds, lam), best)
    arms = synthetic_optimal_arms(ds, lam)
    assert arms[np.arange(ds.n_queries), best].all()
    assert (arms.sum(axis=1) > 1).any()  # exact ties exist: budgets the answer fits equal uncapped


def test_ground_truth_follows_subsets_and_rejects_real_data(pool: tuple[RoutingDataset, np.ndarray]) -> None:
    ds, _ = pool
    rows = [5, 1, 400]
    np.testing.assert_array_equal(synthetic_optimum(ds.subset(rows), 0.99), synthetic_optimum(ds, 0.99)[rows])
    real = RoutingDataset(
        name="real",
        prompts=ds.prompts[:2],
        query_ids=("a", "b"),
        models=ds.models,
        budgets=ds.budgets,
        quality=ds.quality[:2],
        tokens=ds.tokens[:2],
    )
    with pytest.raises(DataError, match="no known ground truth"):
        synthetic_optimum(real, 0.9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_queries": 0}, "n_queries"), ({"noise": 0.5}, "noise"), ({"budgets": (100, 100)}, "unique")],
)
def test_invalid_settings_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_synthetic_pool(**kwargs)  # type: ignore[arg-type]


def _route_flat(router: R2Router, ds: RoutingDataset, emb: np.ndarray, lam: float) -> np.ndarray:
    n_b = len(ds.budgets)
    decisions = router.route_batch(emb, lambda_=lam)
    return np.array([ds.model_names.index(d.model) * n_b + ds.budgets.index(d.token_limit) for d in decisions])


def _found_share(seed: int, lam: float) -> float:
    """5-fold CV: share of held-out queries routed to a known-optimal arm by R2Router(k=10)."""
    ds, emb = make_synthetic_pool(1000, seed=seed)
    found = np.zeros(ds.n_queries, dtype=bool)
    for fold in np.array_split(np.random.default_rng(seed).permutation(ds.n_queries), 5):
        train = np.setdiff1d(np.arange(ds.n_queries), fold)
        router = R2Router(ds.config(k=10), ds.subset(train).training_data(emb[train]))
        chosen = _route_flat(router, ds, emb[fold], lam)
        found[fold] = synthetic_optimal_arms(ds.subset(fold), lam)[np.arange(len(fold)), chosen]
    return float(found.mean())


@pytest.mark.parametrize("lam", [0.98, 0.99])
def test_optimum_varies_in_model_and_budget(lam: float) -> None:
    ds, _ = make_synthetic_pool(1000, seed=0)
    n_b = len(ds.budgets)
    counts = collections.Counter(synthetic_optimum(ds, lam).tolist())
    assert len(counts) >= 5
    assert counts.most_common(1)[0][1] / ds.n_queries <= 0.4  # no single arm is the answer
    assert len({a // n_b for a in counts}) >= 2 and len({a % n_b for a in counts}) >= 4


def test_router_finds_the_known_optimum_on_held_out_queries() -> None:
    shares = {(seed, lam): _found_share(seed, lam) for seed in (0, 1, 2) for lam in (0.98, 0.99)}
    assert np.mean(list(shares.values())) >= 0.9, shares
    assert min(shares.values()) >= 0.85, shares
