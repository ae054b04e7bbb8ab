"""Cross-validation by query: disjoint folds, train-only fitting, pooled held-out outcomes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from r2router_core.errors import ConfigError
from r2router_core.evaluation import RoutingDataset
from r2router_core.evaluation.baselines import Method, Oracle, RouterMethod, SingleArm, flat_outcomes
from r2router_core.evaluation.cross_validation import complete_queries, cross_validate, kfold_splits

from .test_baselines import toy_dataset


class Spy(Method):
    """Records the query ids it was fitted on and asked about."""

    kind = "arm"

    def __init__(self) -> None:
        self.name = "spy"
        self.seen: list[tuple[set[str], set[str]]] = []

    def fit(self, train: RoutingDataset, embeddings: Any) -> Spy:
        self.seen.append((set(train.query_ids), set()))
        return self

    def choose(self, test: RoutingDataset, embeddings: Any, lambdas: Any) -> Any:
        self.seen[-1][1].update(test.query_ids)
        return np.zeros((len(lambdas), test.n_queries), dtype=np.intp)


def test_kfold_splits_are_disjoint_cover_everything_and_are_seeded() -> None:
    splits = kfold_splits(103, 5, seed=7)
    tests = np.concatenate([test for _, test in splits])
    assert sorted(tests.tolist()) == list(range(103))
    for train, test in splits:
        assert not set(train) & set(test) and len(train) + len(test) == 103
        assert len(test) in (20, 21)
    again = kfold_splits(103, 5, seed=7)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again, strict=True))
    other = kfold_splits(103, 5, seed=8)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(splits, other, strict=True))
    for bad in (1, 104, 2.5):
        with pytest.raises(ConfigError):
            kfold_splits(103, bad)  # type: ignore[arg-type]


def test_no_query_is_in_train_and_test_of_the_same_fold() -> None:
    data, emb = toy_dataset(100)
    spy = Spy()
    runs = cross_validate(data, emb, [spy], lambdas=[0.5], n_folds=4, seed=0)
    assert len(spy.seen) == 4
    tested: list[str] = []
    for train_ids, test_ids in spy.seen:
        assert train_ids and test_ids and not train_ids & test_ids
        assert train_ids | test_ids == set(data.query_ids)
        tested += sorted(test_ids)
    assert sorted(tested) == sorted(data.query_ids)  # each query tested exactly once
    assert sorted(np.bincount(runs["spy"].fold).tolist()) == [25, 25, 25, 25]


def test_pooled_outcomes_are_the_true_outcomes_of_the_choices() -> None:
    data, emb = toy_dataset(120)
    lambdas = np.array([0.0, 0.999, 1.0])
    runs = cross_validate(data, emb, [RouterMethod(k=10), Oracle(), SingleArm(5, "dear")], lambdas=lambdas, n_folds=3)
    quality, cost = flat_outcomes(data)
    assert np.array_equal(runs["dear"].quality[0], quality[:, 5]) and runs["dear"].lambdas.shape == (1,)
    assert np.array_equal(runs["dear"].cost[0], cost[:, 5])
    router, oracle = runs["R2-Router"], runs["oracle"]
    assert router.quality.shape == (3, 120) and not np.isnan(router.quality).any()
    util = lambda run, i, lam: (1 - lam) * run.quality[i] - lam * run.cost[i]  # noqa: E731
    for i, lam in enumerate(lambdas):  # the oracle bounds the router query by query
        assert np.all(util(oracle, i, lam) >= util(router, i, lam) - 1e-15)
    assert router.curve().quality[0] <= oracle.curve().quality[0]


def test_cross_validate_shows_a_progress_bar_and_checks_inputs(capsys: pytest.CaptureFixture[str]) -> None:
    data, emb = toy_dataset(60)
    cross_validate(data, emb, [SingleArm(0, "a")], lambdas=[0.5], n_folds=3, progress=True)
    assert "toy" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unique"):
        cross_validate(data, emb, [SingleArm(0, "a"), SingleArm(1, "a")], lambdas=[0.5])
    with pytest.raises(ValueError, match="embeddings"):
        cross_validate(data, emb[:10], [SingleArm(0, "a")], lambdas=[0.5])


def test_complete_queries_drops_sporadic_holes_but_keeps_never_run_arms() -> None:
    data, _ = toy_dataset(50)
    quality = data.quality.copy()
    quality[:, 1, 2] = np.nan  # an arm nobody ran
    quality[[3, 7], 0, 0] = np.nan  # two queries lack one arm
    holed = RoutingDataset("holed", data.prompts, data.query_ids, data.models, data.budgets, quality, data.tokens)
    kept, rows = complete_queries(holed)
    assert kept.n_queries == 48 and 3 not in rows and 7 not in rows
