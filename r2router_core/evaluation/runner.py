"""The experiment: methods x folds -> a results table, curves, JSON, CSV and a plot.

:func:`evaluate` runs every method through :func:`cross_validate` over a
lambda sweep (the deferral curves) and picks each lambda method's operating
point for the table without looking at the test fold: for each outer fold,
lambda is calibrated by an inner k-fold cross-validation on that fold's
training part only (:func:`~r2router_core.evaluation.calibration.select_operating_point`
on the inner curve), then applied to the held-out fold.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import PredictorName
from r2router_core.errors import ConfigError
from r2router_core.evaluation.baselines import (
    BEST_SINGLE_ON_TRAIN,
    Method,
    RouterMethod,
    arm_label,
    default_methods,
    flat_outcomes,
)
from r2router_core.evaluation.calibration import CalibrationTarget, select_operating_point
from r2router_core.evaluation.cross_validation import MethodRun, complete_queries, cross_validate, kfold_splits
from r2router_core.evaluation.curves import DeferralCurve, plot_deferral_curves
from r2router_core.evaluation.metrics import (
    arena_score,
    arm_means,
    audc,
    best_single_arm,
    cost_range_of,
    lambda_grid,
    matched_quality_costs,
    peak_quality,
    qnc,
)
from r2router_core.evaluation.routing_dataset import RoutingDataset
from r2router_core.evaluation.selection import AutoRouterMethod
from r2router_core.evaluation.token_error import token_errors

__all__ = [
    "EvalResult",
    "MethodResult",
    "evaluate",
    "format_rows",
    "held_out_choices",
    "plot_results",
    "results_stem",
    "write_results",
]

logger = logging.getLogger(__name__)

RESULTS_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class MethodResult:
    """One row of the results table (held-out numbers pooled over all folds).

    Attributes:
        name: Method name.
        kind: ``"router"``, ``"arm"``, ``"random"`` or ``"oracle"``.
        accuracy: Mean true quality at the operating point.
        cost_per_1k: Mean true USD per 1K queries there.
        arena_score: RouterArena score of that point (0-100, the leaderboard's scale).
        audc: Area under the pooled deferral curve (normalised cost axis); NaN for a
            method of one point (a single arm, random), which has no area.
        peak_quality: Highest mean quality among the curve's points and the operating point.
        qnc: Query-normalised cost (``inf`` if the best single arm's quality is never reached).
        fold_lambdas: Operating lambda of each fold (empty for methods without a knob).
        fold_accuracy: Accuracy on each held-out fold.
        fold_cost_per_1k: Cost per 1K queries on each held-out fold.
        curve: The pooled deferral curve.
        token_error: For routers, the held-out error of the predicted output
            tokens per arm (:func:`~r2router_core.evaluation.token_error.token_errors`).
    """

    name: str
    kind: str
    accuracy: float
    cost_per_1k: float
    arena_score: float
    audc: float
    peak_quality: float
    qnc: float
    fold_lambdas: tuple[float, ...]
    fold_accuracy: tuple[float, ...]
    fold_cost_per_1k: tuple[float, ...]
    curve: DeferralCurve
    token_error: dict[str, dict[str, float]] | None = None

    def to_dict(self, *, with_curve: bool = True) -> dict[str, Any]:
        """JSON-ready form (``qnc`` = ``None`` when never reached)."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "accuracy": self.accuracy,
            "cost_per_1k": self.cost_per_1k,
            "arena_score": self.arena_score,
            "audc": self.audc if math.isfinite(self.audc) else None,
            "peak_quality": self.peak_quality,
            "qnc": self.qnc if math.isfinite(self.qnc) else None,  # never reached (inf) or no reference (nan)
            "fold_lambdas": list(self.fold_lambdas),
            "fold_accuracy": list(self.fold_accuracy),
            "fold_cost_per_1k": list(self.fold_cost_per_1k),
        }
        if self.token_error is not None:
            out["token_error"] = self.token_error
        if with_curve:
            out["curve"] = self.curve.to_dict()
        return out


def method_row(methods: Sequence[MethodResult], name: str) -> MethodResult:
    """The row of the method called ``name``.

    Raises:
        KeyError: No such row (the message lists the rows).
    """
    for m in methods:
        if m.name == name:
            return m
    raise KeyError(f"no method {name!r}; the rows are {[m.name for m in methods]}")


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Everything one evaluation measured.

    Attributes:
        dataset: Dataset name.
        synthetic: Whether the data is generated.
        n_queries: Queries evaluated (complete ones).
        n_folds: Outer folds.
        inner_folds: Folds of the per-fold lambda calibration.
        seed: Seed of the splits.
        k: Neighbours of the kNN routers.
        target: What the operating lambda was calibrated for.
        embedder: Id of the embedder of the prompts (``None`` if unknown).
        cost_range: (c_lo, c_hi), USD per 1K: the AUDC cost axis.
        reference_arm: Label of the best single arm (the QNC reference).
        reference_quality: Its mean quality.
        reference_cost: Its mean cost per 1K queries.
        methods: The rows.
        matched: R2-Router vs the point router at matched quality (the first two
            router rows): ``{"methods": [a, b], "quality": q, "cost_per_1k": [ca, cb]}``,
            or ``None`` with fewer than two router rows.
        meta: Dataset provenance.
    """

    dataset: str
    synthetic: bool
    n_queries: int
    n_folds: int
    inner_folds: int
    seed: int
    k: int
    target: str
    embedder: str | None
    cost_range: tuple[float, float]
    reference_arm: str
    reference_quality: float
    reference_cost: float
    methods: tuple[MethodResult, ...]
    matched: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    single_budget: bool = False

    def method(self, name: str) -> MethodResult:
        """The row of one method."""
        return method_row(self.methods, name)

    def title(self) -> str:
        """Dataset and protocol in one line (says SYNTHETIC for generated data)."""
        label = f"{self.dataset} (SYNTHETIC data)" if self.synthetic else self.dataset
        emb = f", {self.embedder}" if self.embedder else ""
        return f"{label}: {self.n_queries} queries, {self.n_folds}-fold CV, k={self.k}{emb}"

    plot_note = "(stars: operating points calibrated on training folds; squares: single arms)"

    def table(self) -> str:
        """The results table as fixed-width text."""
        lines = [self.title(), *format_rows(self.methods)]
        lo, hi = self.cost_range
        lines += [
            "",
            f"operating lambda: calibrated for '{self.target}' by {self.inner_folds}-fold CV inside each "
            "training part; accuracy/cost/arena pooled over the held-out folds",
            f"arena = RouterArena score (0-100); AUDC cost axis: {lo:.4g} .. {hi:.4g} USD per 1K "
            "(cheapest .. dearest single arm); single points have no AUDC; peak >= the operating point",
            f"QNC reference: best single arm {self.reference_arm} "
            f"(quality {self.reference_quality:.4f} at {self.reference_cost:.4g} USD per 1K)",
        ]
        lines += self._versus_lines()
        if self.single_budget:
            lines.append("one budget: R2-Router is the point router here (no budget axis), so no point-router row")
        lines += self._token_lines()
        if self.matched:
            (a, b), (ca, cb) = self.matched["methods"], self.matched["cost_per_1k"]
            lines.append(
                f"matched quality {self.matched['quality']:.4f} (the lower of the two peaks): "
                f"{a} {ca:.4g} vs {b} {cb:.4g} USD per 1K ({ca / cb:.2f}x)"
            )
        return "\n".join(lines)

    def versus_best_single(self) -> dict[str, float] | None:
        """R2-Router minus the best single arm chosen on each training part, per fold and overall.

        Returns:
            ``{"accuracy", "accuracy_se", "arena", "arena_se", "n_folds"}`` (standard errors over
            folds), or ``None`` without both rows.
        """
        names = {m.name for m in self.methods}
        if "R2-Router" not in names or BEST_SINGLE_ON_TRAIN not in names:
            return None
        r, b = self.method("R2-Router"), self.method(BEST_SINGLE_ON_TRAIN)
        dq = np.array(r.fold_accuracy) - np.array(b.fold_accuracy)
        da = np.array(
            [
                arena_score(_unit(qa), ca) - arena_score(_unit(qb), cb)
                for qa, ca, qb, cb in zip(
                    r.fold_accuracy, r.fold_cost_per_1k, b.fold_accuracy, b.fold_cost_per_1k, strict=True
                )
            ]
        )
        se = math.sqrt(len(dq)) if len(dq) > 1 else math.nan
        return {
            "accuracy": r.accuracy - b.accuracy,
            "accuracy_se": float(dq.std(ddof=1) / se) if len(dq) > 1 else math.nan,
            "arena": r.arena_score - b.arena_score,
            "arena_se": float(da.std(ddof=1) / se) if len(da) > 1 else math.nan,
            "n_folds": len(dq),
        }

    def _versus_lines(self) -> list[str]:
        v = self.versus_best_single()
        if v is None:
            return []
        return [
            f"router vs best single (chosen on train): arena {v['arena']:+.2f} ± {v['arena_se']:.2f}, accuracy "
            f"{v['accuracy']:+.4f} ± {v['accuracy_se']:.4f} (± = standard error over the {v['n_folds']} folds)"
        ]

    def _token_lines(self) -> list[str]:
        """The first router's held-out token error per arm (cost is tokens x price)."""
        router = next((m for m in self.methods if m.token_error), None)
        if router is None or router.token_error is None:
            return []
        lines = [f"token head of {router.name}, held-out per arm: MAE (tokens), relative error, bias"]
        for arm, e in router.token_error.items():
            lines.append(f"  {arm:<44} {e['mae']:>8.1f}  {e['relative']:>6.1%}  {e['bias']:>+8.1f}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with every curve."""
        return {
            "format_version": RESULTS_FORMAT_VERSION,
            "dataset": self.dataset,
            "synthetic": self.synthetic,
            "n_queries": self.n_queries,
            "n_folds": self.n_folds,
            "inner_folds": self.inner_folds,
            "seed": self.seed,
            "k": self.k,
            "target": self.target,
            "embedder": self.embedder,
            "cost_range_per_1k": list(self.cost_range),
            "reference_arm": self.reference_arm,
            "reference_quality": self.reference_quality,
            "reference_cost_per_1k": self.reference_cost,
            "matched_quality": self.matched,
            "arena_scale": 100,
            "single_budget": self.single_budget,
            "versus_best_single_on_train": self.versus_best_single(),
            "meta": _jsonable(self.meta),
            "methods": [m.to_dict() for m in self.methods],
        }


def _unit(q: float) -> float:
    return min(max(q, 0.0), 1.0)


def format_rows(methods: Sequence[MethodResult]) -> list[str]:
    """The header and one fixed-width line per method (n/a for a point's AUDC and a missing QNC)."""
    width = max(len("method"), *(len(m.name) for m in methods))
    head = f"{'method':<{width}}  {'accuracy':>8}  {'USD/1K':>9}  {'arena':>6}  {'AUDC':>6}  {'peak':>6}  {'QNC':>11}"
    lines = [head, "-" * len(head)]
    for m in methods:
        q = f"{m.qnc:.3f}" if math.isfinite(m.qnc) else ("not reached" if m.qnc == math.inf else "n/a")
        a = f"{m.audc:.4f}" if math.isfinite(m.audc) else "n/a"
        lines.append(
            f"{m.name:<{width}}  {m.accuracy:>8.4f}  {m.cost_per_1k:>9.4g}  {m.arena_score:>6.2f}  "
            f"{a:>6}  {m.peak_quality:>6.4f}  {q:>11}"
        )
    return lines


def _jsonable(value: Any) -> Any:
    """Keep what JSON can hold; render the rest with ``str``."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_jsonable(v) for v in value]
        return str(value)
    return value


def _operating_indices(
    run: MethodRun,
    method: Method,
    dataset: RoutingDataset,
    embeddings: NDArray[Any],
    *,
    target: CalibrationTarget,
    n_folds: int,
    inner_folds: int,
    seed: int,
) -> list[int]:
    """Per outer fold, the lambda index chosen by inner CV on that fold's training part."""
    chosen = []
    for train_rows, _ in kfold_splits(dataset.n_queries, n_folds, seed=seed):
        inner = cross_validate(
            dataset.subset(train_rows),
            embeddings[train_rows],
            [method],
            lambdas=run.lambdas,
            n_folds=inner_folds,
            seed=seed + 1,
        )
        index, _ = select_operating_point(inner[method.name].curve(), target)
        chosen.append(index)
    return chosen


def _method_result(
    run: MethodRun,
    indices: Sequence[int],
    *,
    cost_range: tuple[float, float],
    reference: tuple[float, float],
) -> MethodResult:
    n_folds = int(run.fold.max()) + 1
    per_query = np.array([indices[f] for f in run.fold])  # each query's operating row
    cols = np.arange(run.quality.shape[1])
    quality, cost = run.quality[per_query, cols], run.cost[per_query, cols]
    acc, c1k = float(quality.mean()), float(cost.mean() * 1000.0)
    curve = run.curve()
    folds = [run.fold == f for f in range(n_folds)]
    return MethodResult(
        name=run.name,
        kind=run.kind,
        accuracy=acc,
        cost_per_1k=c1k,
        arena_score=arena_score(_unit(acc), c1k),
        audc=audc(curve, cost_range=cost_range) if curve.distinct_points() > 1 else math.nan,  # a point: no area
        peak_quality=max(peak_quality(curve), acc),
        qnc=qnc(curve, reference_quality=reference[0], reference_cost=reference[1]),
        fold_lambdas=tuple(float(run.lambdas[i]) for i in indices) if not np.isnan(run.lambdas).all() else (),
        fold_accuracy=tuple(float(quality[rows].mean()) for rows in folds),
        fold_cost_per_1k=tuple(float(cost[rows].mean() * 1000.0) for rows in folds),
        curve=curve,
    )


def evaluate(
    dataset: RoutingDataset,
    embeddings: NDArray[Any],
    *,
    methods: Sequence[Method] | None = None,
    n_folds: int = 5,
    inner_folds: int = 5,
    seed: int = 0,
    k: int = 80,
    target: str | CalibrationTarget = "arena",
    lambdas: NDArray[np.float64] | None = None,
    embedder: str | None = None,
    progress: bool = False,
    predictor: PredictorName = "knn",
) -> EvalResult:
    """Cross-validate R2-Router and the baselines on a dataset.

    Args:
        dataset: Queries with true outcomes; incomplete queries are dropped (logged).
        embeddings: shape (N, D), prompt embeddings in dataset order.
        methods: Methods to compare; default :func:`default_methods` (with ``k``, ``seed``).
        n_folds: Outer folds.
        inner_folds: Folds of the lambda calibration inside each training part.
        seed: Seed of the splits and of random routing.
        k: Neighbours of the default kNN routers.
        target: Operating-point target (``"arena"``, ``"cost=X"``, ``"quality=Y"``).
        lambdas: The sweep; default :func:`lambda_grid` of the arms' mean costs.
        embedder: Embedder id, recorded in the result.
        progress: tqdm bars over folds on stderr.
        predictor: Predictor of the default routers (``"auto"``: chosen by CV inside each training part).

    Returns:
        The :class:`EvalResult`.
    """
    t = CalibrationTarget.parse(target)
    data, rows = complete_queries(dataset)
    emb = np.asarray(embeddings)[rows]
    quality, cost = flat_outcomes(data)
    mean_q, mean_c = arm_means(quality, cost)
    grid = lambda_grid(mean_c / 1000.0) if lambdas is None else np.asarray(lambdas, dtype=np.float64)
    if methods is None:
        methods = default_methods(data, k=k, seed=seed, predictor=predictor, target=t)
        if predictor == "auto":
            methods = [AutoRouterMethod.like(m) if isinstance(m, RouterMethod) else m for m in methods]
    runs = cross_validate(data, emb, methods, lambdas=grid, n_folds=n_folds, seed=seed, progress=progress)
    cost_range = cost_range_of(mean_c)
    best = best_single_arm(quality, cost)
    reference = (float(mean_q[best]), float(mean_c[best]))
    results = []
    for method in methods:
        run = runs[method.name]
        if method.uses_lambda:
            indices = _operating_indices(
                run, method, data, emb, target=t, n_folds=n_folds, inner_folds=inner_folds, seed=seed
            )
        else:
            indices = [0] * n_folds
        result = _method_result(run, indices, cost_range=cost_range, reference=reference)
        if isinstance(method, RouterMethod):
            errors = token_errors(data, emb, method, n_folds=n_folds, seed=seed)
            result = dataclasses.replace(result, token_error=errors)
        results.append(result)
    return EvalResult(
        dataset=dataset.name,
        synthetic=dataset.synthetic,
        n_queries=data.n_queries,
        n_folds=n_folds,
        inner_folds=inner_folds,
        seed=seed,
        k=k,
        target=str(t),
        embedder=embedder,
        cost_range=cost_range,
        reference_arm=arm_label(data, best),
        reference_quality=reference[0],
        reference_cost=reference[1],
        methods=tuple(results),
        matched=_matched(results),
        meta={k: v for k, v in dataset.meta.items() if k != "path"},  # no machine-specific paths in results
        single_budget=len(data.budgets) == 1,
    )


def _matched(results: Sequence[MethodResult]) -> dict[str, Any] | None:
    routers = [m for m in results if m.kind == "router"][:2]
    if len(routers) < 2:
        return None
    quality, ca, cb = matched_quality_costs(routers[0].curve, routers[1].curve)
    return {"methods": [routers[0].name, routers[1].name], "quality": quality, "cost_per_1k": [ca, cb]}


def results_stem(dataset_name: str) -> str:
    """File stem of a dataset's result files: ``eval_<name>`` with unsafe characters replaced."""
    return "eval_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset_name).strip("_")


class Results(Protocol):
    """What :func:`write_results` and :func:`plot_results` read: an :class:`EvalResult` or a ``HeldOutResult``."""

    @property
    def dataset(self) -> str:
        """Dataset name."""

    @property
    def cost_range(self) -> tuple[float, float]:
        """The AUDC cost axis."""

    @property
    def methods(self) -> tuple[MethodResult, ...]:
        """The rows."""

    @property
    def single_budget(self) -> bool:
        """One budget only."""

    @property
    def plot_note(self) -> str:
        """Second line of the plot title."""

    def title(self) -> str:
        """One-line title."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""


def write_results(result: Results, out_dir: str | Path, *, stem: str | None = None) -> dict[str, Path]:
    """Write ``<stem>.json`` (all numbers and curves), ``<stem>.csv`` (the table) and ``<stem>.png``.

    Returns:
        ``{"json": path, "csv": path, "png": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or results_stem(result.dataset)
    paths = {"json": out / f"{stem}.json", "csv": out / f"{stem}.csv", "png": out / f"{stem}.png"}
    paths["json"].write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as fh:
        fields = ["name", "kind", "accuracy", "cost_per_1k", "arena_score", "audc", "peak_quality", "qnc"]
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for m in result.methods:
            row = m.to_dict(with_curve=False)
            row["qnc"] = "inf" if m.qnc == math.inf else row["qnc"]
            writer.writerow(row)
    plot_results(result, paths["png"])
    return paths


def plot_results(result: Results, path: str | Path) -> Path:
    """The deferral curves of the lambda methods, their operating points, random and the single arms."""
    curves = {m.name: m.curve for m in result.methods if m.kind in ("router", "oracle")}
    points = {m.name: (m.cost_per_1k, m.accuracy) for m in result.methods if m.kind in ("router", "oracle", "random")}
    arms = {m.name.removeprefix("always "): (m.cost_per_1k, m.accuracy) for m in result.methods if m.kind == "arm"}
    lo, hi = result.cost_range
    title = result.title() + "\n" + result.plot_note
    if result.single_budget:
        title += "\none budget: R2-Router is the point router (one curve, not two identical ones)"
    return plot_deferral_curves(
        curves,
        path,
        title=title,
        points=points,
        arms=arms,
        quality_label="mean quality (held-out folds)",
        log_cost=lo > 0 and hi / lo > 20,
    )


def held_out_choices(
    dataset: RoutingDataset,
    embeddings: NDArray[Any],
    method: Method,
    fold_lambdas: Sequence[float],
    *,
    n_folds: int = 5,
    seed: int = 0,
) -> NDArray[np.intp]:
    """Each query's arm as chosen by the method fitted without its fold, at that fold's lambda.

    With the ``fold_lambdas`` of an :class:`EvalResult` row (and its dataset's
    complete queries, folds and seed) these are the choices behind the row's
    accuracy and cost, e.g. for :func:`~r2router_core.interop.routerarena.routerarena_predictions`.

    Returns:
        shape (N,), flat arm indices.
    """
    if len(fold_lambdas) != n_folds:
        raise ConfigError(f"need one lambda per fold ({n_folds}), got {len(fold_lambdas)}")
    emb = np.asarray(embeddings)
    out = np.empty(dataset.n_queries, dtype=np.intp)
    for f, (train_rows, test_rows) in enumerate(kfold_splits(dataset.n_queries, n_folds, seed=seed)):
        method.fit(dataset.subset(train_rows), emb[train_rows])
        lam = np.array([fold_lambdas[f]])
        out[test_rows] = method.choose(dataset.subset(test_rows), emb[test_rows], lam)[0]
    return out
