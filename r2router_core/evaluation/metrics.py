"""The evaluation metrics, defined once: every table, test and README number uses these.

Arms are flattened: a dataset with M models and B budgets has A = M * B arms,
arm ``m * B + b`` being model m at budget b. Per-query arrays are (n, A).

* **accuracy**: mean realised quality (RouterArena: mean per-query score).
* **cost per 1K queries**: mean realised USD per query x 1000.
* **arena score** (RouterArena, beta = 0.1, c_max = 200, c_min = 0.0044, cost in
  USD per 1K queries), on the leaderboard's 0-100 scale everywhere in this
  library (Python results, JSON, tables, ``info``)::

      C = (log2 c_max - log2 cost) / (log2 c_max - log2 c_min)
      S = 100 * (1 + beta) * acc * C / (beta * acc + C)

  The cost is first clamped to [c_min, c_max], as RouterArena's
  ``llm_evaluation/run.py`` does (its ``compute_scores.py`` does not clamp; the
  two agree on every cost inside the range).
* **AUDC** (area under the deferral curve): the cost axis is normalised to
  [0, 1] by ``x = (cost - c_lo) / (c_hi - c_lo)`` where c_lo and c_hi are the
  mean costs of the cheapest and of the dearest single (model, budget) arm on
  the same queries (one pair for every method of a table). The curve is the
  step function ``q(x)`` = best mean quality among the method's operating
  points with normalised cost <= x (0 left of its cheapest point; points left
  of 0 count at 0): only points the method realises, no mixing of two routers.
  AUDC = the integral of q over [0, 1]. It is defined for curves only: a single
  arm (or random routing) is one point, which has no area (the rule above would
  give the dearest arm 0 however accurate it is), so tables show it as n/a and
  compare points by accuracy, cost and arena score. When every single arm costs
  the same, the axis is [0, 2 x that cost] (:func:`cost_range_of`).
* **peak quality**: the highest mean quality among the method's points shown,
  its operating point included (so the peak is never below the operating
  point's accuracy).
* **QNC** (query-normalised cost): the smallest mean cost among the method's
  operating points whose mean quality reaches the best single arm's (the arm of
  highest mean quality, ties to the cheaper), divided by that arm's mean cost.
  ``inf`` when no point reaches it; the best arm itself scores 1.
* **cost at matched quality** (R2-Router vs the point router, the paper's "same
  quality at lower cost"): the highest quality both curves reach (the lower of
  the two peaks) and the smallest mean cost at which each reaches it. Unlike
  QNC it needs no third reference, so it is defined even when neither router
  reaches the best single arm.
* **oracle**: per query, the arm of best *true* utility
  ``(1 - lambda) * quality - lambda * cost`` (ties to the cheaper arm); at
  lambda = 0 it is the max-quality oracle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.errors import ConfigError, DataError
from r2router_core.evaluation.curves import DeferralCurve

__all__ = [
    "ARENA_BETA",
    "ARENA_C_MAX",
    "ARENA_C_MIN",
    "accuracy",
    "arena_score",
    "arm_means",
    "audc",
    "best_single_arm",
    "cost_per_1k",
    "cost_range_of",
    "cost_to_reach",
    "lambda_grid",
    "matched_quality_costs",
    "max_quality_arms",
    "oracle_arms",
    "peak_quality",
    "qnc",
    "realise",
]

ARENA_BETA = 0.1
ARENA_C_MAX = 200.0
ARENA_C_MIN = 0.0044


def _finite_1d(values: Any, what: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise DataError(f"{what} needs at least one value and no NaN/inf, got {arr.size} values")
    return arr


def accuracy(quality: Sequence[float] | NDArray[np.float64]) -> float:
    """Mean realised quality of n queries, shape (n,)."""
    return float(_finite_1d(quality, "accuracy").mean())


def cost_per_1k(cost: Sequence[float] | NDArray[np.float64]) -> float:
    """Mean realised USD per query x 1000, from per-query costs of shape (n,)."""
    return float(_finite_1d(cost, "cost_per_1k").mean() * 1000.0)


def arena_score(
    accuracy: float,
    cost_per_1k: float,
    *,
    beta: float = ARENA_BETA,
    c_max: float = ARENA_C_MAX,
    c_min: float = ARENA_C_MIN,
) -> float:
    """RouterArena's score of a router, on the leaderboard's 0-100 scale.

    Args:
        accuracy: Mean per-query score in [0, 1].
        cost_per_1k: Mean USD per 1K queries; clamped to [c_min, c_max].
        beta: Weight between accuracy and cost.
        c_max: Cost (USD per 1K) that scores C = 0.
        c_min: Cost (USD per 1K) that scores C = 1.
    """
    if not 0.0 <= accuracy <= 1.0:
        raise DataError(f"accuracy must lie in [0, 1], got {accuracy!r}")
    if not (math.isfinite(cost_per_1k) and cost_per_1k >= 0):
        raise DataError(f"cost_per_1k must be a finite number >= 0 (USD per 1K queries), got {cost_per_1k!r}")
    cost = min(max(cost_per_1k, c_min), c_max)
    c = (math.log2(c_max) - math.log2(cost)) / (math.log2(c_max) - math.log2(c_min))
    if accuracy == 0.0 and c == 0.0:
        return 0.0
    return 100.0 * (1.0 + beta) * accuracy * c / (beta * accuracy + c)


def arm_means(quality: NDArray[np.float64], cost: NDArray[np.float64]) -> tuple[NDArray[Any], NDArray[Any]]:
    """Mean quality and mean cost per 1K of every single arm.

    Args:
        quality: shape (n, A); NaN where an arm was not run.
        cost: shape (n, A), USD per query.

    Returns:
        (quality, cost_per_1k), each shape (A,); NaN for an arm missing on any query.
    """
    return quality.mean(axis=0), cost.mean(axis=0) * 1000.0


def best_single_arm(quality: NDArray[np.float64], cost: NDArray[np.float64]) -> int:
    """Index of the single arm of highest mean quality (ties: the cheaper), over arms run on every query."""
    mq, mc = arm_means(quality, cost)
    ok = ~(np.isnan(mq) | np.isnan(mc))
    if not ok.any():
        raise DataError("no arm has an outcome on every query; drop incomplete queries first")
    order = np.lexsort((np.where(ok, mc, np.inf), np.where(ok, -mq, np.inf)))
    return int(order[0])


def cost_range_of(arm_cost_per_1k: NDArray[np.float64]) -> tuple[float, float]:
    """The AUDC cost axis (c_lo, c_hi) from the single arms' mean costs per 1K (NaN ignored).

    The cheapest and the dearest arm; when they cost the same (equal prices and
    lengths), ``(0, 2 x that cost)`` (``(0, 1)`` if it is 0), so the axis is never empty.
    """
    costs = np.asarray(arm_cost_per_1k, dtype=np.float64)
    costs = costs[np.isfinite(costs)]
    if costs.size == 0:
        raise DataError("no arm has a mean cost; drop incomplete queries first")
    lo, hi = float(costs.min()), float(costs.max())
    if hi - lo > 1e-12 * max(1.0, abs(hi)):
        return lo, hi
    return 0.0, 2.0 * hi if hi > 0 else 1.0


def audc(curve: DeferralCurve, *, cost_range: tuple[float, float]) -> float:
    """Area under the step-function deferral curve on the normalised cost axis (module docstring).

    Args:
        curve: The method's operating points.
        cost_range: (c_lo, c_hi) in USD per 1K queries, c_lo < c_hi: the mean
            costs of the cheapest and dearest single arms.
    """
    lo, hi = cost_range
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ConfigError(f"cost_range must be finite with c_lo < c_hi, got {cost_range!r}")
    cost, quality = curve.frontier()
    x = np.clip((cost - lo) / (hi - lo), 0.0, 1.0)
    # on [x_i, x_{i+1}) the curve is at quality_i (frontier qualities increase with x)
    edges = np.append(x, 1.0)
    return float(np.sum(quality * np.diff(edges)))


def peak_quality(curve: DeferralCurve) -> float:
    """The highest mean quality on the curve."""
    return float(curve.quality.max())


def cost_to_reach(curve: DeferralCurve, quality: float) -> float:
    """Smallest mean cost per 1K of the curve's points with mean quality >= ``quality``; ``inf`` if none."""
    ok = curve.quality >= quality - 1e-12 * max(1.0, abs(quality))
    return float(curve.cost_per_1k[ok].min()) if ok.any() else math.inf


def matched_quality_costs(curve: DeferralCurve, other: DeferralCurve) -> tuple[float, float, float]:
    """The highest quality both curves reach, and the cost each needs for it.

    Returns:
        (quality, cost per 1K of ``curve``, cost per 1K of ``other``).
    """
    quality = min(peak_quality(curve), peak_quality(other))
    return quality, cost_to_reach(curve, quality), cost_to_reach(other, quality)


def qnc(curve: DeferralCurve, *, reference_quality: float, reference_cost: float) -> float:
    """Query-normalised cost: cheapest cost reaching the reference quality / the reference cost.

    Args:
        curve: The method's operating points.
        reference_quality: Mean quality of the best single arm.
        reference_cost: Its mean cost per 1K queries (> 0).

    Returns:
        The ratio; ``inf`` if no point of the curve reaches ``reference_quality``.
    """
    if not math.isfinite(reference_cost) or reference_cost < 0:
        raise ConfigError(f"reference_cost must be a finite number >= 0, got {reference_cost!r}")
    if reference_cost == 0:  # a free reference arm: no ratio to take
        return math.nan
    return cost_to_reach(curve, reference_quality) / reference_cost


def oracle_arms(quality: NDArray[np.float64], cost: NDArray[np.float64], lambda_: float) -> NDArray[np.intp]:
    """Per query, the arm of best true utility; ties go to the cheaper arm.

    Args:
        quality: shape (n, A); NaN arms are never chosen.
        cost: shape (n, A), USD per query.
        lambda_: Cost weight in [0, 1].

    Returns:
        shape (n,), arm indices.
    """
    observed = ~np.isnan(quality)
    if not observed.any(axis=1).all():
        raise DataError("some query has no observed arm; drop it before evaluating")
    util = np.where(observed, (1.0 - lambda_) * quality - lambda_ * cost, -np.inf)
    best = util.max(axis=1, keepdims=True)
    tied = observed & (util >= best)
    return np.argmin(np.where(tied, cost, np.inf), axis=1)


def max_quality_arms(quality: NDArray[np.float64], cost: NDArray[np.float64]) -> NDArray[np.intp]:
    """Per query, the arm of highest true quality, ties to the cheaper: the oracle at lambda = 0."""
    return oracle_arms(quality, cost, 0.0)


def realise(
    quality: NDArray[np.float64], cost: NDArray[np.float64], policy: NDArray[Any]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """True quality and cost of the arms a method chose (expected values for a stochastic method).

    Args:
        quality: shape (n, A), the dataset's true quality; NaN = arm not run.
        cost: shape (n, A), the dataset's true USD per query.
        policy: int arm indices of shape (L, n), or arm probabilities of shape (L, n, A).

    Returns:
        (quality, cost), each shape (L, n).

    Raises:
        DataError: The policy puts weight on an arm that was not run for that query.
    """
    n, a = quality.shape
    policy = np.asarray(policy)
    if policy.ndim == 2 and np.issubdtype(policy.dtype, np.integer):
        if policy.shape[1] != n or policy.min(initial=0) < 0 or policy.max(initial=0) >= a:
            raise DataError(f"choices must be (L, {n}) arm indices in [0, {a}), got shape {policy.shape}")
        rows = np.arange(n)[None, :]
        q, c = quality[rows, policy], cost[rows, policy]
        bad = np.isnan(q) | np.isnan(c)
    elif policy.ndim == 3 and policy.shape[1:] == (n, a):
        missing = np.isnan(quality) | np.isnan(cost)
        bad = (policy * missing[None]).sum(axis=2) > 0
        q = np.einsum("lna,na->ln", policy, np.where(missing, 0.0, quality))
        c = np.einsum("lna,na->ln", policy, np.where(missing, 0.0, cost))
    else:
        raise DataError(f"policy must be (L, {n}) int choices or (L, {n}, {a}) probabilities, got {policy.shape}")
    if bad.any():
        li, qi = (int(v[0]) for v in np.nonzero(bad))
        raise DataError(
            f"a method chose an arm with no outcome (query {qi}, lambda index {li}); missing arms must be "
            "excluded before routing (routers mask them in training; evaluate complete queries only)"
        )
    return q, c


def lambda_grid(arm_cost: NDArray[np.float64], *, n: int = 101, decades: float = 3.0) -> NDArray[np.float64]:
    """Lambdas that sweep a pool's whole deferral curve, from best quality to cheapest.

    The choice depends only on the ratio ``r = lambda / (1 - lambda)`` (quality
    points per USD): an arm beats a cheaper one when its quality gain exceeds r
    times its extra cost. Quality gains run from ~1e-3 to 1 and cost gaps from
    ~1e-3 of the cheapest arm's cost to the dearest arm's cost, so r sweeps
    ``10**-decades / c_hi`` to ``10**decades / c_lo`` log-uniformly (c_lo, c_hi:
    the smallest positive and the largest mean arm cost per query, USD), and
    ``lambda = r / (1 + r)``. lambda = 0 and 1 are added at the ends.

    Args:
        arm_cost: Mean USD per query of the arms, any shape; NaN ignored.
        n: Number of interior points.
        decades: Margin on each side of the cost range, in powers of ten.

    Returns:
        shape (n + 2,), increasing from 0 to 1.
    """
    costs = np.asarray(arm_cost, dtype=np.float64)
    positive = costs[np.isfinite(costs) & (costs > 0)]
    lo, hi = (positive.min(), positive.max()) if positive.size else (1.0, 1.0)
    ratio = np.logspace(np.log10(10.0**-decades / hi), np.log10(10.0**decades / lo), n)
    return np.concatenate([[0.0], ratio / (1.0 + ratio), [1.0]])
