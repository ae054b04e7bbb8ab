"""Choose lambda for a target users think in: dollars, accuracy, or the arena score.

lambda's useful range depends on the pool's price scale: the choice depends on
``lambda / (1 - lambda)`` quality points per USD, so one lambda can balance one
pool and send every query to the cheapest model of another. :func:`calibrate`
sweeps lambda on a calibration set and picks, by the *true* outcomes of the
routed arms:

* ``cost=X``: the highest mean quality with mean cost <= X USD per 1K queries;
* ``quality=Y``: the lowest mean cost with mean quality >= Y;
* ``arena``: the best RouterArena arena score.

When several lambdas give the same best point, the middle one of them is taken
(the most robust to a shift between calibration and deployment).

Example:
    >>> result = calibrate(dataset, embeddings, target="cost=0.5")   # doctest: +SKIP
    >>> router = result.apply(router)                                  # doctest: +SKIP
    >>> router.save("my_router")                                       # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import RouterConfig
from r2router_core.engine.router import R2Router
from r2router_core.engine.training_data import TrainingData
from r2router_core.errors import ConfigError, DataError
from r2router_core.evaluation.baselines import RouterMethod, flat_outcomes
from r2router_core.evaluation.cross_validation import complete_queries, cross_validate
from r2router_core.evaluation.curves import DeferralCurve, deferral_curve
from r2router_core.evaluation.metrics import arena_score, lambda_grid, realise
from r2router_core.evaluation.routing_dataset import RoutingDataset
from r2router_core.evaluation.targets import CalibrationTarget, select_operating_point, single_arm_for_target

__all__ = [
    "CalibrationResult",
    "CalibrationTarget",
    "calibrate",
    "dataset_from_training_data",
    "select_operating_point",
    "single_arm_for_target",
    "warn_overlap",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """The chosen lambda and what it achieved on the calibration set.

    Attributes:
        lambda_: The chosen cost weight.
        target: The target it was chosen for.
        accuracy: Mean true quality at that lambda on the calibration set.
        cost_per_1k: Mean true USD per 1K queries there.
        arena_score: RouterArena score of that point (0-100, the leaderboard's scale).
        met: False when no lambda met a cost/quality target (the closest point was taken).
        curve: The whole swept curve.
    """

    lambda_: float
    target: CalibrationTarget
    accuracy: float
    cost_per_1k: float
    arena_score: float
    met: bool
    curve: DeferralCurve

    def apply(self, router: R2Router) -> R2Router:
        """The router with this lambda as its default (save it to store the lambda in its config)."""
        return router.with_settings(lambda_=self.lambda_)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the curve)."""
        return {
            "lambda": self.lambda_,
            "target": str(self.target),
            "accuracy": self.accuracy,
            "cost_per_1k": self.cost_per_1k,
            "arena_score": self.arena_score,
            "met": self.met,
        }


def _result(curve: DeferralCurve, target: CalibrationTarget) -> CalibrationResult:
    i, met = select_operating_point(curve, target)
    acc, cost = float(curve.quality[i]), float(curve.cost_per_1k[i])
    if not met:
        logger.warning(
            "no lambda meets target %s on the calibration set; closest point: accuracy %.4f at %.4g USD per 1K",
            target,
            acc,
            cost,
        )
    return CalibrationResult(float(curve.lambdas[i]), target, acc, cost, arena_score(acc, cost), met, curve)


def calibrate(
    calibration: RoutingDataset,
    embeddings: NDArray[Any] | None = None,
    *,
    target: str | CalibrationTarget,
    router: R2Router | None = None,
    k: int = 80,
    n_folds: int = 5,
    seed: int = 0,
    lambdas: NDArray[np.float64] | None = None,
    progress: bool = False,
) -> CalibrationResult:
    """Choose lambda on a calibration set for a target.

    With ``router``, that fitted router routes the calibration queries (keep
    them out of its training data). Without, the lambda is chosen by k-fold
    cross-validation of a kNN router with ``k`` neighbours on the calibration
    set itself: the lambda for a router trained on data like it.

    Args:
        calibration: Queries with true outcomes of the router's arms.
        embeddings: shape (N, D), embeddings of its prompts; with ``router`` and
            ``None``, the router's embedder embeds them.
        target: ``"cost=X"`` (USD per 1K queries), ``"quality=Y"`` or ``"arena"``.
        router: A fitted router whose models and budgets are in the dataset.
        k: Neighbours of the cross-validated router.
        n_folds: Folds of the cross-validation.
        seed: Seed of the folds.
        lambdas: The sweep; default :func:`lambda_grid` of the dataset's arm costs.
        progress: tqdm bar over folds.

    Returns:
        The chosen lambda with its calibration accuracy and cost.
    """
    t = CalibrationTarget.parse(target)
    data, rows = complete_queries(calibration)
    quality, cost = flat_outcomes(data)
    grid = lambda_grid(cost.mean(axis=0)) if lambdas is None else np.asarray(lambdas, dtype=np.float64)
    if router is None:
        if embeddings is None:
            raise ConfigError("calibrate() without a router needs the embeddings of the calibration prompts")
        emb = np.asarray(embeddings)[rows]
        run = cross_validate(
            data, emb, [RouterMethod(k=k)], lambdas=grid, n_folds=n_folds, seed=seed, progress=progress
        )
        return _result(run["R2-Router"].curve(), t)
    if router.has_training_data:  # a router converted from fitted weights has no rows to overlap
        warn_overlap(router.training_data, data)
    emb = router.embed(list(data.prompts)) if embeddings is None else np.asarray(embeddings)[rows]
    method = RouterMethod.from_router(router, data)
    q, c = realise(quality, cost, method.policy(data, emb, grid))
    return _result(deferral_curve(q, c, grid), t)


def warn_overlap(train: TrainingData, queries: RoutingDataset) -> int:
    """Log a warning when some of ``queries`` are in the router's training data; return how many are."""
    if train.query_ids is None:
        return 0
    shared = len(set(train.query_ids) & set(queries.query_ids))
    if shared:
        logger.warning(
            "%d of the %d queries of %s are in the router's training data; their predictions are "
            "in-sample and optimistic. Use held-out queries",
            shared,
            queries.n_queries,
            queries.name,
        )
    return shared


def dataset_from_training_data(
    data: TrainingData, config: RouterConfig, *, name: str = "training data"
) -> RoutingDataset:
    """A :class:`RoutingDataset` view of a checkpoint's training data (cost = tokens x output price).

    Its prompts are placeholders (the query ids): use it with ``data.embeddings``.
    """
    if tuple(data.models) != config.model_names or tuple(data.budgets) != config.budgets:
        raise DataError("the training data's models/budgets differ from the config's")
    n, _, b = data.quality.shape
    tokens = data.tokens if data.tokens.ndim == 3 else np.repeat(data.tokens[:, :, None], b, axis=2)
    caps = np.array([np.inf if x is None else x for x in data.budgets], dtype=np.float64)
    tokens = np.where(np.isnan(data.quality), np.nan, np.minimum(tokens, caps))
    ids = data.query_ids or tuple(f"query-{i}" for i in range(n))
    return RoutingDataset(
        name=name,
        prompts=tuple(ids),
        query_ids=tuple(ids),
        models=config.models,
        budgets=config.budgets,
        quality=data.quality,
        tokens=tokens,
    )
