"""Cross-validation by query: seeded k folds, fit on the others, evaluate on the held-out fold.

No query is ever in the training part and the test part of the same fold,
and every query is tested exactly once, so the held-out choices of all folds
pool into one set of outcomes per method over the whole dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from r2router_core.errors import ConfigError, DataError, missing_dependency
from r2router_core.evaluation.baselines import Method, flat_outcomes, observed_arms
from r2router_core.evaluation.curves import DeferralCurve, deferral_curve
from r2router_core.evaluation.metrics import realise
from r2router_core.evaluation.routing_dataset import RoutingDataset

__all__ = ["MethodRun", "complete_queries", "cross_validate", "kfold_splits"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def kfold_splits(n: int, n_folds: int = 5, *, seed: int = 0) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Seeded k-fold split of ``n`` queries.

    Args:
        n: Number of queries.
        n_folds: Number of folds, 2 <= n_folds <= n.
        seed: Seed of the shuffle.

    Returns:
        ``n_folds`` pairs (train rows, test rows), sorted; the test parts are
        disjoint and cover every row once.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or not 2 <= n_folds <= n:
        raise ConfigError(f"n_folds must be an int in [2, n_queries = {n}], got {n_folds!r}")
    order = np.random.default_rng(seed).permutation(n)
    folds = [np.sort(part) for part in np.array_split(order, n_folds)]
    everything = np.arange(n)
    return [(np.setdiff1d(everything, test), test) for test in folds]


def complete_queries(dataset: RoutingDataset) -> tuple[RoutingDataset, NDArray[np.intp]]:
    """The queries with an outcome for every arm that was run at all (others cannot be scored fairly).

    Returns:
        (the subset, its row indices in ``dataset``).
    """
    quality, _ = flat_outcomes(dataset)
    arms = observed_arms(dataset)
    rows = np.flatnonzero(~np.isnan(quality[:, arms]).any(axis=1))
    if rows.size < dataset.n_queries:
        logger.warning(
            "%s: %d of %d queries lack an outcome for some arm; evaluating the %d complete ones",
            dataset.name,
            dataset.n_queries - rows.size,
            dataset.n_queries,
            rows.size,
        )
    if rows.size == 0:
        raise DataError(f"{dataset.name}: no query has an outcome for every arm")
    return (dataset if rows.size == dataset.n_queries else dataset.subset(rows)), rows


@dataclass(frozen=True, eq=False)
class MethodRun:
    """Held-out outcomes of one method over all folds.

    Attributes:
        name: The method's name.
        kind: ``"router"``, ``"arm"``, ``"random"`` or ``"oracle"``.
        lambdas: shape (L,); ``[nan]`` for a method without a knob.
        quality: shape (L, N), realised quality of every query (in dataset order)
            when it was in the test fold.
        cost: shape (L, N), realised USD per query.
        fold: shape (N,), the fold in which each query was tested.
    """

    name: str
    kind: str
    lambdas: NDArray[np.float64]
    quality: NDArray[np.float64]
    cost: NDArray[np.float64]
    fold: NDArray[np.intp]

    def curve(self, rows: NDArray[np.intp] | None = None) -> DeferralCurve:
        """The deferral curve pooled over all queries, or over ``rows`` only."""
        q = self.quality if rows is None else self.quality[:, rows]
        c = self.cost if rows is None else self.cost[:, rows]
        return deferral_curve(q, c, self.lambdas)


def _progress(items: Sequence[T], *, enabled: bool, desc: str) -> Iterable[T]:
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise missing_dependency("tqdm", "eval", "The progress bar") from exc
    return tqdm(items, desc=desc, unit="fold", leave=False)


def _fold_outcomes(
    methods: Sequence[Method],
    train: RoutingDataset,
    test: RoutingDataset,
    embeddings: tuple[NDArray[Any], NDArray[Any]],
    lambdas: NDArray[np.float64],
) -> Iterator[tuple[Method, NDArray[np.float64], NDArray[np.float64]]]:
    quality, cost = flat_outcomes(test)
    for method in methods:
        grid = lambdas if method.uses_lambda else np.array([np.nan])
        method.fit(train, embeddings[0])
        q, c = realise(quality, cost, method.policy(test, embeddings[1], grid))
        yield method, q, c


def cross_validate(
    dataset: RoutingDataset,
    embeddings: NDArray[Any],
    methods: Sequence[Method],
    *,
    lambdas: NDArray[np.float64] | Sequence[float],
    n_folds: int = 5,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, MethodRun]:
    """Fit every method on k-1 folds and record its choices' true outcomes on the held-out fold.

    Args:
        dataset: N queries with complete outcomes (see :func:`complete_queries`).
        embeddings: shape (N, D), embeddings of the prompts, in dataset order.
        methods: Methods to run (names must be unique).
        lambdas: The lambda sweep (L,) of methods with a knob.
        n_folds: Number of folds.
        seed: Seed of the split.
        progress: Show a tqdm bar over folds on stderr.

    Returns:
        Method name -> its :class:`MethodRun`.
    """
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != dataset.n_queries:
        raise DataError(f"embeddings must be ({dataset.n_queries}, D) for {dataset.name}, got {emb.shape}")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ConfigError(f"method names must be unique, got {names}")
    grid = np.asarray(lambdas, dtype=np.float64)
    n = dataset.n_queries
    shape = {m.name: (len(grid) if m.uses_lambda else 1, n) for m in methods}
    quality = {name: np.full(s, np.nan) for name, s in shape.items()}
    cost = {name: np.full(s, np.nan) for name, s in shape.items()}
    fold_of = np.full(n, -1, dtype=np.intp)
    splits = kfold_splits(n, n_folds, seed=seed)
    for f, (train_rows, test_rows) in enumerate(_progress(splits, enabled=progress, desc=dataset.name)):
        fold_of[test_rows] = f
        parts = (dataset.subset(train_rows), dataset.subset(test_rows))
        for method, q, c in _fold_outcomes(methods, *parts, (emb[train_rows], emb[test_rows]), grid):
            quality[method.name][:, test_rows] = q
            cost[method.name][:, test_rows] = c
    return {
        m.name: MethodRun(
            name=m.name,
            kind=m.kind,
            lambdas=grid if m.uses_lambda else np.array([np.nan]),
            quality=quality[m.name],
            cost=cost[m.name],
            fold=fold_of,
        )
        for m in methods
    }
