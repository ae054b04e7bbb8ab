"""Deferral curves: mean quality against mean cost over a lambda sweep, and their plot.

A router's deferral curve is the set of operating points it realises as its
cost weight lambda goes from 0 (best quality) to 1 (cheapest): one point
(mean cost per 1K queries, mean quality) per lambda. A method without a knob
(one fixed arm, random routing) is a curve of one point.

matplotlib is imported only by :func:`plot_deferral_curves`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from r2router_core.errors import DataError, missing_dependency

__all__ = ["DeferralCurve", "deferral_curve", "plot_deferral_curves"]


@dataclass(frozen=True, eq=False)
class DeferralCurve:
    """Operating points of one method, in lambda order.

    Attributes:
        lambdas: shape (L,), the cost weights swept (NaN for a method without a knob).
        cost_per_1k: shape (L,), mean realised USD per 1K queries at each lambda.
        quality: shape (L,), mean realised quality at each lambda.
    """

    lambdas: NDArray[np.float64]
    cost_per_1k: NDArray[np.float64]
    quality: NDArray[np.float64]

    def __post_init__(self) -> None:
        shapes = {np.shape(self.lambdas), np.shape(self.cost_per_1k), np.shape(self.quality)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1 or np.size(self.quality) < 1:
            raise DataError(f"a deferral curve needs three 1-d arrays of one length >= 1, got shapes {shapes}")
        if not (np.all(np.isfinite(self.cost_per_1k)) and np.all(np.isfinite(self.quality))):
            raise DataError("a deferral curve's costs and qualities must be finite")

    def frontier(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The Pareto frontier: points no cheaper-or-equal point beats on quality.

        Returns:
            (cost_per_1k, quality), each of shape (F,), cost increasing and
            quality strictly increasing.
        """
        order = np.lexsort((-self.quality, self.cost_per_1k))
        cost, quality = self.cost_per_1k[order], self.quality[order]
        keep = quality > np.concatenate([[-np.inf], np.maximum.accumulate(quality)[:-1]])
        return cost[keep], quality[keep]

    def distinct_points(self) -> int:
        """How many different (cost, quality) points the curve has (1 for a single arm or a fallback router)."""
        return len(set(zip(self.cost_per_1k.tolist(), self.quality.tolist(), strict=True)))

    def best_quality_within(self, cost_per_1k: float) -> float:
        """Highest mean quality among the points costing at most ``cost_per_1k``; NaN if none does."""
        ok = self.cost_per_1k <= cost_per_1k
        return float(self.quality[ok].max()) if ok.any() else float("nan")

    def to_dict(self) -> dict[str, list[float | None]]:
        """JSON-ready form (NaN lambdas become ``None``)."""
        return {
            "lambda": [None if np.isnan(x) else float(x) for x in self.lambdas],
            "cost_per_1k": [float(x) for x in self.cost_per_1k],
            "quality": [float(x) for x in self.quality],
        }


def deferral_curve(
    quality: NDArray[np.float64], cost: NDArray[np.float64], lambdas: Sequence[float] | NDArray[np.float64]
) -> DeferralCurve:
    """The curve from realised per-query outcomes.

    Args:
        quality: shape (L, n), realised quality of each query at each lambda.
        cost: shape (L, n), realised USD per query.
        lambdas: the L lambdas.

    Returns:
        The mean quality and the mean cost per 1K queries at each lambda.
    """
    q, c = np.asarray(quality, dtype=np.float64), np.asarray(cost, dtype=np.float64)
    if q.ndim != 2 or q.shape != c.shape or q.shape[0] != len(lambdas):
        raise DataError(f"quality and cost must both be (L={len(lambdas)}, n), got {q.shape} and {c.shape}")
    return DeferralCurve(
        lambdas=np.asarray(lambdas, dtype=np.float64),
        cost_per_1k=c.mean(axis=1) * 1000.0,
        quality=q.mean(axis=1),
    )


def plot_deferral_curves(
    curves: Mapping[str, DeferralCurve],
    path: str | Path,
    *,
    title: str,
    points: Mapping[str, tuple[float, float]] | None = None,
    arms: Mapping[str, tuple[float, float]] | None = None,
    quality_label: str = "mean quality",
    log_cost: bool = False,
) -> Path:
    """Draw deferral curves, operating points and single arms into a PNG.

    Args:
        curves: Method name -> its curve (drawn as lines through the Pareto frontier).
        path: Output PNG file.
        title: Plot title; name the dataset (and say "synthetic" for synthetic data).
        points: Method name -> (cost per 1K, quality) of its chosen operating point.
        arms: Arm label -> (cost per 1K, quality) of each single (model, budget) arm.
        quality_label: Y-axis label.
        log_cost: Log-scale cost axis (for pools whose prices span decades).

    Returns:
        The PNG path.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise missing_dependency("matplotlib", "eval", "Plotting deferral curves") from exc
    fig, ax = plt.subplots(figsize=(9.5, 5.2), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, curve) in enumerate(curves.items()):
        cost, quality = curve.frontier()
        color = colors[i % len(colors)]
        ax.step(cost, quality, where="post", color=color, label=f"{name} (deferral curve)", linewidth=1.6)
        ax.plot(cost, quality, "o", color=color, markersize=2.5)
        if points and name in points:  # earlier curves get bigger stars, so coinciding points stay visible
            size = max(7, 16 - 3 * i)
            ax.plot(*points[name], "*", color=color, markersize=size, markeredgecolor="black", zorder=5 + i)
    if points:
        for name, (x, y) in points.items():
            if name not in curves:
                ax.plot(x, y, "D", color="tab:purple", markersize=7, markeredgecolor="black", label=name, zorder=4)
    if arms:
        xs, ys = zip(*arms.values(), strict=True)
        ax.plot(xs, ys, "s", color="grey", markersize=5, label="single (model, budget) arms", zorder=3)
        for label, (x, y) in arms.items():
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, -9), fontsize=6.5, color="dimgray")
    if log_cost:
        ax.set_xscale("log")
    ax.set_xlabel("mean cost (USD per 1K queries)")
    ax.set_ylabel(quality_label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(x=0.1, y=0.08)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
