"""Let the training data choose: the predictor, its main knob, and lambda, by k-fold cross-validation.

Every candidate (a predictor and its knob) is run through the evaluation's own
:func:`~r2router_core.evaluation.cross_validation.cross_validate` on the training set
and scored on the decisions it produces, with the evaluation's metrics:

* target ``arena`` (the default, :data:`~r2router_core.engine.config.DEFAULT_TARGET`):
  the RouterArena arena score at the best lambda of the pooled held-out curve;
* target ``cost=X`` or ``quality=Y``: the AUDC of the pooled held-out curve.

Candidates: kNN with k in :data:`K_GRID` and ridge with alpha in
:data:`ALPHA_GRID`, then logistic with the best ridge alpha (one fit per head
makes it the slowest) and the blend of the best kNN and the best ridge with
weight in :data:`BLEND_GRID`, all on the same folds. The best pooled score wins, unless the configured kNN (the
default) is within one standard error of it (paired over folds): then the
default is kept, so ``auto`` leaves kNN only for a gain larger than the noise.

Lambda is then read off the chosen candidate's pooled held-out curve with
:func:`~r2router_core.evaluation.calibration.select_operating_point`, the
curve is recorded, and the config carries both choices in ``selection``
(``selection["predictor"]`` records the margin of the best candidate over the
default and its standard error).

**The best-single guard.** On the same folds, the router (at a lambda read off
the other folds' held-out curve, so no fold scores a lambda chosen on itself)
is compared with the single arm chosen on each training part
(:class:`~r2router_core.evaluation.baselines.BestSingleOnTrain`), paired over
folds, in the target's own terms (arena score; for ``cost=X`` the accuracy;
for ``quality=Y`` the cost). ``selection["guard"]`` records the gain, its
standard error and whether routing beats the arm beyond one standard error.
When it does not, :func:`train_router` (``fallback_to_best_single=True``, the
default; ``r2router train --no-fallback`` turns it off) restricts the router to
that arm, chosen on the whole training set, so it is never knowingly a worse
choice than no router; retrain with more data to route again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from r2router_core.engine.config import DEFAULT_TARGET, RouterConfig
from r2router_core.engine.router import R2Router
from r2router_core.engine.training_data import TrainingData
from r2router_core.errors import DataError
from r2router_core.evaluation.baselines import BestSingleOnTrain, RouterMethod, arm_label, flat_outcomes
from r2router_core.evaluation.calibration import (
    CalibrationTarget,
    dataset_from_training_data,
    select_operating_point,
    single_arm_for_target,
)
from r2router_core.evaluation.cross_validation import MethodRun, complete_queries, cross_validate
from r2router_core.evaluation.curves import DeferralCurve
from r2router_core.evaluation.metrics import arena_score, arm_means, audc, lambda_grid
from r2router_core.evaluation.routing_dataset import RoutingDataset

__all__ = [
    "ALPHA_GRID",
    "BLEND_GRID",
    "K_GRID",
    "AutoRouterMethod",
    "Candidate",
    "SelectionResult",
    "pick_one_se",
    "select_predictor",
    "train_router",
]

logger = logging.getLogger(__name__)

K_GRID = (20, 40, 80, 160)
ALPHA_GRID = (0.3, 1.0, 3.0, 10.0)
BLEND_GRID = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class Candidate:
    """One predictor with its knob, scored by cross-validation.

    Attributes:
        predictor: ``knn``, ``ridge``, ``logistic`` or ``blend``.
        k: Neighbours (kNN, blend).
        alpha: Ridge strength (ridge, logistic, blend).
        blend_weight: kNN weight (blend).
        score: Pooled held-out score (arena score or AUDC).
        fold_scores: The same score per fold.
    """

    predictor: str
    k: int
    alpha: float
    blend_weight: float
    score: float = math.nan
    fold_scores: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        """``"knn k=80"``, ``"ridge alpha=1"``, ``"blend w=0.5 (k=80, alpha=1)"``."""
        if self.predictor == "knn":
            return f"knn k={self.k}"
        if self.predictor == "blend":
            return f"blend w={self.blend_weight:g} (k={self.k}, alpha={self.alpha:g})"
        return f"{self.predictor} alpha={self.alpha:g}"

    def settings(self) -> dict[str, Any]:
        """The config fields of this candidate."""
        return {"predictor": self.predictor, "k": self.k, "alpha": self.alpha, "blend_weight": self.blend_weight}

    def method(self, weights: Any = "distance") -> RouterMethod:
        """The evaluation method that routes with this candidate (kNN neighbour ``weights``)."""
        return RouterMethod(self.label, weights=weights, **self.settings())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**self.settings(), "label": self.label, "score": self.score, "fold_scores": list(self.fold_scores)}


@dataclass(frozen=True, eq=False)
class SelectionResult:
    """What cross-validation chose.

    Attributes:
        config: The input config with the chosen predictor, knob and lambda set
            and the scores recorded in ``selection``.
        candidates: Every candidate with its scores, in the order tried.
        chosen: The chosen candidate.
        curve: The chosen candidate's pooled held-out cost/quality curve.
    """

    config: RouterConfig
    candidates: tuple[Candidate, ...]
    chosen: Candidate
    curve: DeferralCurve


def _score(curve: DeferralCurve, metric: str, cost_range: tuple[float, float]) -> float:
    if metric == "audc":
        return audc(curve, cost_range=cost_range)
    return max(arena_score(float(q), float(c)) for q, c in zip(curve.quality, curve.cost_per_1k, strict=True))


class _Scorer:
    """Cross-validates candidates on one dataset, always on the same folds."""

    def __init__(
        self, data: RoutingDataset, emb: Any, target: CalibrationTarget, n_folds: int, seed: int, weights: Any
    ) -> None:
        self.data, self.emb, self.n_folds, self.seed, self.weights = data, emb, n_folds, seed, weights
        quality, cost = flat_outcomes(data)
        self.grid = lambda_grid(cost.mean(axis=0))
        _, mean_c = arm_means(quality, cost)
        ok = ~np.isnan(mean_c)
        self.cost_range = (float(mean_c[ok].min()), float(mean_c[ok].max()))
        self.metric = "arena" if target.kind == "arena" else "audc"
        self.runs: dict[str, MethodRun] = {}

    def score(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        runs = cross_validate(
            self.data,
            self.emb,
            [c.method(self.weights) for c in candidates],
            lambdas=self.grid,
            n_folds=self.n_folds,
            seed=self.seed,
        )
        self.runs.update(runs)
        out = []
        for c in candidates:
            run = runs[c.label]
            folds = [np.flatnonzero(run.fold == f) for f in range(self.n_folds)]
            fold_scores = tuple(_score(run.curve(rows), self.metric, self.cost_range) for rows in folds)
            out.append(_with_scores(c, _score(run.curve(), self.metric, self.cost_range), fold_scores))
        return out


def _with_scores(c: Candidate, score: float, fold_scores: tuple[float, ...]) -> Candidate:
    return Candidate(c.predictor, c.k, c.alpha, c.blend_weight, score, fold_scores)


def _candidates(config: RouterConfig, n_train: int) -> list[Candidate]:
    # the configured kNN first (it wins ties); no k above a fold's training rows (they would all be k = n)
    ks = [config.k, *(k for k in K_GRID if k != config.k and k <= n_train)]
    out = [Candidate("knn", k, config.alpha, config.blend_weight) for k in ks]
    out += [Candidate("ridge", config.k, a, config.blend_weight) for a in ALPHA_GRID]
    return out


def _paired_se(a: Sequence[float], b: Sequence[float]) -> float:
    """Standard error of the mean of the paired differences a - b (0 with one pair)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0


def pick_one_se(scored: Sequence[Candidate], default: Candidate) -> tuple[Candidate, float, float]:
    """The one-standard-error rule: the best pooled score, unless its gain over ``default`` is within one SE.

    Args:
        scored: Candidates with their pooled and per-fold scores (the same folds).
        default: The configured kNN: kept unless another candidate beats it by more than
            one standard error of the paired per-fold differences.

    Returns:
        (the chosen candidate, the best candidate's margin over the default, that standard error).
    """
    best = max(scored, key=lambda c: c.score)  # max keeps the first of equal scores
    margin = best.score - default.score
    se = _paired_se(best.fold_scores, default.fold_scores)
    if best is not default and margin <= se:
        logger.info(
            "auto: %s beats %s by %.4g, within one standard error (%.4g); keeping the default",
            best.label,
            default.label,
            margin,
            se,
        )
        return default, margin, se
    return best, margin, se


def select_predictor(
    config: RouterConfig,
    data: TrainingData,
    *,
    target: str | CalibrationTarget | None = None,
    calibrate_lambda: bool = False,
    n_folds: int = 5,
    seed: int = 0,
) -> SelectionResult:
    """Choose the predictor (when ``config.predictor == "auto"``) and optionally lambda by cross-validation.

    Args:
        config: The router config; ``predictor="auto"`` tries every candidate,
            a concrete predictor is only scored (for its lambda curve).
        data: The training set.
        target: What decisions are scored for (default :data:`DEFAULT_TARGET`).
        calibrate_lambda: Also set ``lambda_`` to the target's operating point.
        n_folds: Folds of the cross-validation.
        seed: Seed of the folds.

    Returns:
        The :class:`SelectionResult`; its ``config`` names a concrete predictor.

    Raises:
        DataError: Fewer complete training queries than folds.
    """
    t = CalibrationTarget.parse(DEFAULT_TARGET if target is None else target)
    dataset, rows = complete_queries(dataset_from_training_data(data, config))
    if dataset.n_queries < 2 * n_folds:
        raise DataError(
            f"choosing the predictor or lambda by {n_folds}-fold cross-validation needs at least {2 * n_folds} "
            f"training queries with every arm observed, got {dataset.n_queries}; pass a predictor and lambda"
        )
    scorer = _Scorer(dataset, data.embeddings[rows], t, n_folds, seed, config.weights)
    given = Candidate(config.predictor, config.k, config.alpha, config.blend_weight)
    if config.predictor != "auto":
        scored = scorer.score([given])
        chosen = scored[0]
    else:
        scored = scorer.score(_candidates(config, dataset.n_queries - dataset.n_queries // n_folds - 1))
        best_knn = max((c for c in scored if c.predictor == "knn"), key=lambda c: c.score)
        best_ridge = max((c for c in scored if c.predictor == "ridge"), key=lambda c: c.score)
        second = [Candidate("logistic", config.k, best_ridge.alpha, config.blend_weight)]
        second += [Candidate("blend", best_knn.k, best_ridge.alpha, w) for w in BLEND_GRID]
        scored += scorer.score(second)
        chosen, margin, se = pick_one_se(scored, scored[0])
    curve = scorer.runs[chosen.label].curve()
    record = dict(config.selection or {})
    settings = chosen.settings()
    if config.predictor == "auto":
        record["predictor"] = {
            "metric": scorer.metric,
            "target": str(t),
            "n_folds": n_folds,
            "seed": seed,
            "n_queries": dataset.n_queries,
            "chosen": chosen.label,
            "default": scored[0].label,
            "best": max(scored, key=lambda c: c.score).label,
            "margin": margin,
            "standard_error": se,
            "rule": "one standard error: the default kNN is kept unless the best candidate's margin exceeds it",
            "candidates": [c.to_dict() for c in scored],
        }
    if calibrate_lambda:
        index, met = select_operating_point(curve, t)
        acc, c1k = float(curve.quality[index]), float(curve.cost_per_1k[index])
        settings["lambda_"] = float(curve.lambdas[index])
        record["lambda"] = {
            "target": str(t),
            "lambda": settings["lambda_"],
            "met": met,
            "accuracy": acc,
            "cost_per_1k": c1k,
            "arena_score": arena_score(min(max(acc, 0.0), 1.0), c1k),
            "arena_scale": 100,
            "n_folds": n_folds,
            "seed": seed,
            "curve": curve.to_dict(),
        }
    record["guard"] = _guard(scorer, scorer.runs[chosen.label], t)
    best = single_arm_for_target(*flat_outcomes(dataset), t)
    m, b = divmod(best, len(dataset.budgets))
    record["best_single"] = {
        "model": dataset.models[m].name,
        "budget": dataset.budgets[b],
        "label": arm_label(dataset, best),
        "target": str(t),
    }
    resolved = config.with_options(**settings, selection=record)
    return SelectionResult(config=resolved, candidates=tuple(scored), chosen=chosen, curve=curve)


class AutoRouterMethod(RouterMethod):
    """R2-Router with ``predictor="auto"``: the predictor chosen by CV inside each training part, as ``train`` does."""

    def resolve(self, config: RouterConfig, data: Any) -> RouterConfig:
        """Resolve ``auto`` by :func:`select_predictor` on this training part (lambda is chosen by the caller)."""
        return select_predictor(config, data).config if config.predictor == "auto" else config

    @classmethod
    def like(cls, method: RouterMethod) -> AutoRouterMethod:
        """The same router row with ``auto`` resolved per training part."""
        return cls(
            method.name,
            k=method.k,
            weights=method.weights,
            budgets=method.budgets,
            predictor=method.predictor,
            alpha=method.alpha,
            blend_weight=method.blend_weight,
        )


def _target_value(t: CalibrationTarget, accuracy: float, cost_per_1k: float) -> float:
    """What the target prizes, higher is better: arena score, accuracy (cost=X) or minus the cost (quality=Y)."""
    if t.kind == "arena":
        return arena_score(min(max(accuracy, 0.0), 1.0), cost_per_1k)
    return accuracy if t.kind == "cost" else -cost_per_1k


def _guard(scorer: _Scorer, run: MethodRun, t: CalibrationTarget) -> dict[str, Any]:
    """Does routing beat the best single arm chosen on each training part, beyond one standard error?"""
    single = cross_validate(
        scorer.data, scorer.emb, [BestSingleOnTrain(t)], lambdas=scorer.grid, n_folds=scorer.n_folds, seed=scorer.seed
    )[BestSingleOnTrain(t).name]
    routed, alone = [], []
    for f in range(scorer.n_folds):
        rows = run.fold == f
        # fold f's lambda is read off the other folds' held-out curve, so the choice never sees fold f
        index, _ = select_operating_point(run.curve(np.flatnonzero(~rows)), t)
        routed.append(_target_value(t, run.quality[index, rows].mean(), run.cost[index, rows].mean() * 1000))
        alone.append(_target_value(t, single.quality[0, rows].mean(), single.cost[0, rows].mean() * 1000))
    gain = float(np.mean(routed) - np.mean(alone))
    se = _paired_se(routed, alone)
    return {
        "metric": {"arena": "arena score", "cost": "accuracy", "quality": "minus USD per 1K"}[t.kind],
        "router": float(np.mean(routed)),
        "best_single": float(np.mean(alone)),
        "gain": gain,
        "standard_error": se,
        "n_folds": scorer.n_folds,
        "beats": bool(gain > se),
    }


def train_router(
    config: RouterConfig,
    data: TrainingData,
    *,
    target: str | CalibrationTarget | None = None,
    calibrate_lambda: bool = True,
    n_folds: int = 5,
    seed: int = 0,
    fallback_to_best_single: bool = True,
    **router_options: Any,
) -> R2Router:
    """Fit a router as ``r2router train`` does: predictor ``auto`` resolved and lambda calibrated by CV.

    Args:
        config: The config (``predictor`` may be ``"auto"``).
        data: The training set.
        target: What predictor and lambda are chosen for (default :data:`DEFAULT_TARGET`).
        calibrate_lambda: Choose lambda by cross-validation (else keep ``config.lambda_``).
        n_folds: Folds of the cross-validation.
        seed: Seed of the folds.
        fallback_to_best_single: When cross-validation finds that routing does not beat the
            best single arm beyond one standard error (``selection["guard"]``), restrict the
            router to that arm (recorded in ``selection["guard"]["fallback"]``).
        **router_options: Passed to :class:`R2Router` (e.g. ``embedder``).

    Returns:
        The fitted router; its config records the choices and their CV scores.
    """
    if calibrate_lambda or config.predictor == "auto":
        config = select_predictor(
            config, data, target=target, calibrate_lambda=calibrate_lambda, n_folds=n_folds, seed=seed
        ).config
    guard = (config.selection or {}).get("guard")
    if guard is not None and not guard["beats"] and fallback_to_best_single:
        config, data = _fallback(config, data)
    return R2Router(config, data, **router_options)


def _fallback(config: RouterConfig, data: TrainingData) -> tuple[RouterConfig, TrainingData]:
    """The router restricted to the best single arm: every query goes there."""
    record = dict(config.selection or {})
    best = record["best_single"]
    pool = {"models": list(config.model_names), "budgets": list(config.budgets)}  # evaluate_router scores on it
    record["guard"] = {**record["guard"], "fallback": best["label"], "pool": pool}
    logger.warning(
        "routing does not beat %s beyond one standard error in cross-validation (gain %.4g ± %.4g); "
        "the router sends every query to it (fallback_to_best_single=False / --no-fallback to route anyway)",
        best["label"],
        record["guard"]["gain"],
        record["guard"]["standard_error"],
    )
    spec = next(m for m in config.models if m.name == best["model"])
    arm = config.with_options(models=(spec,), budgets=(best["budget"],), interpolated_budgets=(), selection=record)
    return arm, data.select(models=[best["model"]], budgets=[best["budget"]])
