"""Score a trained router on a held-out test file: the question to answer before deploying it.

:func:`evaluate_router` routes every test query with the fitted router at its
own lambda and scores the *true* outcome of the chosen arm (never a
prediction). Beside it, on the same queries and the router's own arms:

* the best single arm **chosen on the router's training data** (the model you
  would use without a router; what the router must beat),
* the best single arm on the test file itself (labelled *hindsight*: it was
  picked by looking at the answers being scored),
* the cheapest arm, uniform random routing (expected value) and the per-query
  oracle at the router's lambda (an upper bound that reads the test outcomes).

"Best" follows the target the router's lambda was calibrated for (``arena``
by default: the highest arena score; ``cost=X``: the best quality within X;
``quality=Y``: the cheapest reaching Y), read by
:func:`~r2router_core.evaluation.calibration.select_operating_point`.
The difference "router minus best single (chosen on train)" comes with its
spread: the paired standard error over test queries for accuracy and a paired
bootstrap over test queries for the arena score.

Example:
    >>> result = evaluate_router(router, test_dataset)      # doctest: +SKIP
    >>> print(result.table())                               # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import RouterConfig, format_budget
from r2router_core.engine.router import R2Router
from r2router_core.errors import DataError
from r2router_core.evaluation.baselines import RouterMethod, arm_label, flat_outcomes
from r2router_core.evaluation.calibration import (
    CalibrationTarget,
    dataset_from_training_data,
    single_arm_for_target,
    warn_overlap,
)
from r2router_core.evaluation.cross_validation import complete_queries
from r2router_core.evaluation.curves import DeferralCurve, deferral_curve
from r2router_core.evaluation.metrics import (
    arena_score,
    arm_means,
    audc,
    cost_range_of,
    lambda_grid,
    oracle_arms,
    qnc,
    realise,
)
from r2router_core.evaluation.routing_dataset import RoutingDataset
from r2router_core.evaluation.runner import MethodResult, format_rows, method_row

__all__ = ["BOOTSTRAP_RESAMPLES", "HeldOutResult", "evaluate_router", "restrict_to_router", "train_best_single"]

logger = logging.getLogger(__name__)

BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True, eq=False)
class HeldOutResult:
    """A trained router scored on a held-out file, with the baselines beside it.

    Attributes:
        dataset: Test dataset name.
        synthetic: Whether the test data is generated.
        n_queries: Test queries scored (those with an outcome for every router arm).
        lambda_: The router's own lambda (its operating point).
        target: What "best single" means (the router's calibration target).
        embedder: Embedder id of the router.
        cost_range: (c_lo, c_hi) USD per 1K: the AUDC cost axis (cheapest .. dearest arm on the test file).
        methods: Rows: ``R2-Router``, ``best single (chosen on train)`` (when the router has
            training data or a recorded choice), ``best single on test (hindsight)``,
            ``cheapest``, ``random``, ``oracle``; arena scores 0-100.
        versus: Router minus the best single chosen on train: ``{"arm", "accuracy", "accuracy_se",
            "arena", "arena_se", "cost_per_1k"}`` (``None`` without that row).
        single_budget: The router has one budget (its curve is the point router's).
        overlap: Test queries that are also in the router's training data (should be 0).
        fallback: The arm the best-single guard restricted the router to at training, if it did.
        meta: Test dataset provenance.
    """

    dataset: str
    synthetic: bool
    n_queries: int
    lambda_: float
    target: str
    embedder: str | None
    cost_range: tuple[float, float]
    methods: tuple[MethodResult, ...]
    versus: dict[str, Any] | None
    single_budget: bool
    overlap: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    fallback: str | None = None

    plot_note = "(star: the router's operating point; squares: single arms)"

    def method(self, name: str) -> MethodResult:
        """The row of one method."""
        return method_row(self.methods, name)

    def title(self) -> str:
        """Dataset and protocol in one line."""
        label = f"{self.dataset} (SYNTHETIC data)" if self.synthetic else self.dataset
        emb = f", {self.embedder}" if self.embedder else ""
        return f"{label}: {self.n_queries} held-out queries, router at its lambda {self.lambda_:.6g}{emb}"

    def table(self) -> str:
        """The results table as fixed-width text, with the verdict line."""
        lines = [self.title(), *format_rows(self.methods)]
        lo, hi = self.cost_range
        lines += [
            "",
            "accuracy, cost and arena are the TRUE outcomes of each method's chosen arm on the test file",
            f"arena = RouterArena score (0-100); best single = best for target '{self.target}'; "
            f"AUDC cost axis {lo:.4g} .. {hi:.4g} USD per 1K; single points have no AUDC",
        ]
        if self.fallback:
            lines.append(
                f"the router sends every query to {self.fallback}: at training, routing did not beat it beyond "
                "one standard error in cross-validation (train --no-fallback to route anyway)"
            )
        elif self.single_budget:
            lines.append("one budget: the router's curve is the point router's (no budget axis to route on)")
        if self.overlap:
            lines.append(
                f"WARNING: {self.overlap} test queries are in the router's training data: those scores are in-sample"
            )
        lines.append(self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        """One line: does the router beat the best single arm chosen on its training data, beyond noise?"""
        v = self.versus
        if v is None:
            return "router vs best single (chosen on train): n/a (the router has no training data to choose it on)"
        beyond = abs(v["arena"]) > 2 * v["arena_se"]
        word = ("beats" if v["arena"] > 0 else "loses to") if beyond else "ties (within 2 standard errors) with"
        return (
            f"router vs best single (chosen on train: {v['arm']}): arena {v['arena']:+.2f} ± {v['arena_se']:.2f}, "
            f"accuracy {v['accuracy']:+.4f} ± {v['accuracy_se']:.4f}, cost {v['cost_per_1k']:+.4g} USD per 1K "
            f"(± = standard error over test queries): the router {word} it"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with every curve."""
        return {
            "format_version": 1,
            "kind": "held_out",
            "dataset": self.dataset,
            "synthetic": self.synthetic,
            "n_queries": self.n_queries,
            "lambda": self.lambda_,
            "target": self.target,
            "embedder": self.embedder,
            "cost_range_per_1k": list(self.cost_range),
            "arena_scale": 100,
            "single_budget": self.single_budget,
            "overlap": self.overlap,
            "fallback": self.fallback,
            "versus_best_single_on_train": self.versus,
            "meta": {k: v for k, v in self.meta.items() if k != "path"},
            "methods": [m.to_dict() for m in self.methods],
        }


def restrict_to_router(test: RoutingDataset, config: RouterConfig) -> RoutingDataset:
    """The test dataset on the router's pool only: its models and budgets, in its order.

    A router that the best-single guard restricted to one arm is scored on the pool it
    was trained on (``selection["guard"]["pool"]``), so the baselines still range over
    every arm it could have routed to.

    Raises:
        DataError: A model or budget of that pool has no outcomes in the test file.
    """
    pool = ((config.selection or {}).get("guard") or {}).get("pool")
    models = tuple(pool["models"]) if pool else config.model_names
    budgets = tuple(pool["budgets"]) if pool else config.budgets
    missing = [m for m in models if m not in test.model_names]
    missing += [format_budget(b) for b in budgets if b not in test.budgets]
    if missing:
        raise DataError(
            f"the router's models/budgets {missing} are not in test file {test.name!r} "
            f"(models {list(test.model_names)}, budgets {[format_budget(b) for b in test.budgets]}); "
            "the test file must hold an outcome for every arm the router can choose"
        )
    mi = np.array([test.model_names.index(m) for m in models], dtype=np.intp)
    bi = np.array([test.budgets.index(b) for b in budgets], dtype=np.intp)
    if list(mi) == list(range(len(test.models))) and list(bi) == list(range(len(test.budgets))):
        return test
    pick = np.ix_(np.arange(test.n_queries), mi, bi)
    assert test.cost is not None  # always set by RoutingDataset
    inp = test.input_tokens
    if inp is not None and np.ndim(inp) == 2:
        inp = np.asarray(inp)[:, mi]
    return RoutingDataset(
        name=test.name,
        prompts=test.prompts,
        query_ids=test.query_ids,
        models=tuple(test.models[i] for i in mi),
        budgets=tuple(test.budgets[i] for i in bi),
        quality=test.quality[pick],
        tokens=test.tokens[pick],
        cost=test.cost[pick],
        input_tokens=inp,
        synthetic=test.synthetic,
        meta=test.meta,
    )


def train_best_single(router: R2Router, target: str | CalibrationTarget) -> tuple[str, Any] | None:
    """(model, budget) of the best single arm on the router's training data for ``target``.

    Read from ``config.selection["best_single"]`` when training recorded it, else
    computed from the training data (cost = tokens x output price); ``None`` for a
    router of fitted weights alone.
    """
    recorded = (router.config.selection or {}).get("best_single")
    if recorded and recorded.get("target") == str(CalibrationTarget.parse(target)):
        return str(recorded["model"]), recorded["budget"]
    if not router.has_training_data:
        return None
    view, _ = complete_queries(dataset_from_training_data(router.training_data, router.config))
    quality, cost = flat_outcomes(view)
    arm = single_arm_for_target(quality, cost, target)
    m, b = divmod(arm, len(view.budgets))
    return view.models[m].name, view.budgets[b]


def _row(
    name: str, kind: str, curve: DeferralCurve, index: int, cost_range: tuple[float, float], ref: Any
) -> MethodResult:
    acc, c1k = float(curve.quality[index]), float(curve.cost_per_1k[index])
    has_curve = curve.distinct_points() > 1  # one point (e.g. a fallback router) has no area
    return MethodResult(
        name=name,
        kind=kind,
        accuracy=acc,
        cost_per_1k=c1k,
        arena_score=arena_score(min(max(acc, 0.0), 1.0), c1k),
        audc=audc(curve, cost_range=cost_range) if has_curve else math.nan,
        peak_quality=float(curve.quality.max()),
        qnc=qnc(curve, reference_quality=ref[0], reference_cost=ref[1]),
        fold_lambdas=(float(curve.lambdas[index]),) if has_curve else (),
        fold_accuracy=(),
        fold_cost_per_1k=(),
        curve=curve,
    )


def _point(quality: NDArray[np.float64], cost: NDArray[np.float64], arm: int) -> DeferralCurve:
    return deferral_curve(quality[None, :, arm], cost[None, :, arm], [math.nan])


def _bootstrap_arena_se(
    q: tuple[NDArray[np.float64], NDArray[np.float64]], c: tuple[NDArray[np.float64], NDArray[np.float64]], seed: int
) -> float:
    """Standard error of arena(router) - arena(arm) by a paired bootstrap over test queries."""
    n = len(q[0])
    idx = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    diffs = []
    for rows in idx:
        a = arena_score(float(np.clip(q[0][rows].mean(), 0, 1)), float(c[0][rows].mean() * 1000))
        b = arena_score(float(np.clip(q[1][rows].mean(), 0, 1)), float(c[1][rows].mean() * 1000))
        diffs.append(a - b)
    return float(np.std(diffs, ddof=1))


def evaluate_router(
    router: R2Router,
    test: RoutingDataset,
    embeddings: NDArray[Any] | None = None,
    *,
    target: str | CalibrationTarget | None = None,
    lambdas: NDArray[np.float64] | None = None,
    seed: int = 0,
) -> HeldOutResult:
    """Score a fitted router on held-out queries with the true outcomes of the arms it chooses.

    Args:
        router: A fitted router (e.g. ``R2Router.from_pretrained(DIR)``) whose models and
            budgets all have outcomes in ``test``.
        test: Held-out queries with true outcomes (keep them out of the training data).
        embeddings: shape (N, D), embeddings of ``test.prompts`` by the router's embedder;
            ``None``: the router's embedder embeds them.
        target: What "best single arm" means; default the target the router's lambda
            was calibrated for (``config.selection``), else ``"arena"``.
        lambdas: The sweep of the deferral curve (the router's lambda is always added);
            default :func:`lambda_grid` of the test arms' mean costs.
        seed: Seed of the bootstrap of the arena difference.

    Returns:
        The :class:`HeldOutResult` (``print(result.table())``).

    Raises:
        DataError: The test file lacks a router arm, or no test query has every router arm.
    """
    config = router.config
    t = CalibrationTarget.parse(target or (config.selection or {}).get("lambda", {}).get("target") or "arena")
    data, rows = complete_queries(restrict_to_router(test, config))
    emb = router.embed(list(data.prompts)) if embeddings is None else np.asarray(embeddings)[rows]
    overlap = warn_overlap(router.training_data, data) if router.has_training_data else 0
    quality, cost = flat_outcomes(data)
    mean_q, mean_c = arm_means(quality, cost)
    lam = float(config.lambda_)
    base = lambda_grid(mean_c / 1000.0) if lambdas is None else np.asarray(lambdas, dtype=np.float64)
    grid = np.unique(np.append(base, lam))
    op = int(np.flatnonzero(grid == lam)[0])
    cost_range = cost_range_of(mean_c)
    hindsight = single_arm_for_target(quality, cost, t)
    ref = (float(mean_q[hindsight]), float(mean_c[hindsight]))

    choices = RouterMethod.from_router(router, data).choose(data, emb, grid)
    rq, rc = realise(quality, cost, choices)
    rows_out = [_row("R2-Router", "router", deferral_curve(rq, rc, grid), op, cost_range, ref)]
    chosen = train_best_single(router, t)
    versus = None
    if chosen is not None:
        arm = data.model_names.index(chosen[0]) * len(data.budgets) + data.budgets.index(chosen[1])
        label = arm_label(data, arm)
        rows_out.append(_row("best single (chosen on train)", "arm", _point(quality, cost, arm), 0, cost_range, ref))
        versus = _versus(rq[op], rc[op], quality[:, arm], cost[:, arm], label, seed)
    cheapest = int(np.nanargmin(mean_c))
    rows_out += [
        _row(
            f"best single on test (hindsight): {arm_label(data, hindsight)}",
            "arm",
            _point(quality, cost, hindsight),
            0,
            cost_range,
            ref,
        ),
        _row(f"cheapest: {arm_label(data, cheapest)}", "arm", _point(quality, cost, cheapest), 0, cost_range, ref),
        _row("random (expected)", "random", _random_curve(quality, cost), 0, cost_range, ref),
    ]
    oracle = np.stack([oracle_arms(quality, cost, float(x)) for x in grid])
    oq, oc = realise(quality, cost, oracle)
    rows_out.append(
        _row("oracle (per query, at the router's lambda)", "oracle", deferral_curve(oq, oc, grid), op, cost_range, ref)
    )
    return HeldOutResult(
        dataset=test.name,
        synthetic=test.synthetic,
        n_queries=data.n_queries,
        lambda_=lam,
        target=str(t),
        embedder=config.embedder,
        cost_range=cost_range,
        methods=tuple(rows_out),
        versus=versus,
        single_budget=len(config.budgets) == 1,
        overlap=overlap,
        meta=dict(test.meta),
        fallback=((config.selection or {}).get("guard") or {}).get("fallback"),
    )


def _random_curve(quality: NDArray[np.float64], cost: NDArray[np.float64]) -> DeferralCurve:
    """Uniform over the arms observed on every query (arms the data never ran are not choices)."""
    arms = ~(np.isnan(quality).any(axis=0) | np.isnan(cost).any(axis=0))
    return deferral_curve(quality[:, arms].mean(axis=1)[None], cost[:, arms].mean(axis=1)[None], [math.nan])


def _versus(
    rq: NDArray[np.float64],
    rc: NDArray[np.float64],
    aq: NDArray[np.float64],
    ac: NDArray[np.float64],
    label: str,
    seed: int,
) -> dict[str, Any]:
    n = len(rq)
    dq = rq - aq
    a = arena_score(float(np.clip(rq.mean(), 0, 1)), float(rc.mean() * 1000))
    b = arena_score(float(np.clip(aq.mean(), 0, 1)), float(ac.mean() * 1000))
    return {
        "arm": label,
        "accuracy": float(dq.mean()),
        "accuracy_se": float(dq.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        "arena": a - b,
        "arena_se": _bootstrap_arena_se((rq, aq), (rc, ac), seed) if n > 1 else math.nan,
        "cost_per_1k": float((rc.mean() - ac.mean()) * 1000),
        "n_queries": n,
    }
