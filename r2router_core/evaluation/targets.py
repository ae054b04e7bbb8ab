"""Targets users think in (dollars, accuracy, the arena score) and how a point or an arm meets one.

:class:`CalibrationTarget` parses ``"arena"``, ``"cost=X"`` and ``"quality=Y"``;
:func:`select_operating_point` picks the point of a curve that best meets it and
:func:`single_arm_for_target` the single arm that does (the "best single model"
every evaluation compares a router with). Re-exported by
:mod:`r2router_core.evaluation.calibration`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from r2router_core.errors import ConfigError, DataError
from r2router_core.evaluation.curves import DeferralCurve
from r2router_core.evaluation.metrics import arena_score

__all__ = ["CalibrationTarget", "TargetKind", "select_operating_point", "single_arm_for_target"]

TargetKind = Literal["arena", "cost", "quality"]


@dataclass(frozen=True)
class CalibrationTarget:
    """What lambda should achieve.

    Attributes:
        kind: ``"cost"`` (value = max mean USD per 1K queries), ``"quality"``
            (value = min mean quality) or ``"arena"`` (no value).
        value: The bound, for ``cost`` and ``quality``.
    """

    kind: TargetKind
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind == "arena":
            if self.value is not None:
                raise ConfigError("the 'arena' target takes no value; write target='arena'")
            return
        if self.kind not in ("cost", "quality"):
            raise ConfigError(f"target kind must be 'cost', 'quality' or 'arena', got {self.kind!r}")
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"target {self.kind} needs a finite number >= 0, got {v!r}")
        if self.kind == "quality" and v > 1:
            raise ConfigError(f"target quality must lie in [0, 1], got {v!r}")

    @classmethod
    def parse(cls, spec: str | CalibrationTarget) -> CalibrationTarget:
        """From ``"arena"``, ``"cost=0.5"`` (USD per 1K queries) or ``"quality=0.7"``."""
        if isinstance(spec, CalibrationTarget):
            return spec
        kind, sep, raw = str(spec).strip().partition("=")
        kind = kind.strip().lower()
        if kind not in ("arena", "cost", "quality") or (kind == "arena") == bool(sep):
            raise ConfigError(f"target must be 'arena', 'cost=USD_PER_1K' or 'quality=Q', got {spec!r}")
        if kind == "arena":
            return cls("arena")
        try:
            value = float(raw)
        except ValueError as exc:
            raise ConfigError(f"target {kind}= needs a number, got {raw!r}") from exc
        return cls(kind, value)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return "arena" if self.kind == "arena" else f"{self.kind}={self.value:g}"


def _middle(candidates: NDArray[np.intp]) -> int:
    return int(candidates[(len(candidates) - 1) // 2])


def select_operating_point(curve: DeferralCurve, target: str | CalibrationTarget) -> tuple[int, bool]:
    """Index of the curve point that best meets the target, and whether it was met.

    Args:
        curve: A swept deferral curve.
        target: See :class:`CalibrationTarget`.

    Returns:
        (index into ``curve.lambdas``, met).
    """
    t = CalibrationTarget.parse(target)
    q, c = curve.quality, curve.cost_per_1k
    if t.kind == "arena":
        scores = np.array([arena_score(float(a), float(b)) for a, b in zip(q, c, strict=True)])
        return _middle(np.flatnonzero(scores == scores.max())), True
    value = 0.0 if t.value is None else t.value  # never None for cost/quality (validated)
    if t.kind == "cost":
        ok = c <= value * (1 + 1e-12)
        if not ok.any():
            return _middle(np.flatnonzero(c == c.min())), False
        best = q[ok].max()
        tied = np.flatnonzero(ok & (q == best))
        return _middle(tied[c[tied] == c[tied].min()]), True
    ok = q >= value - 1e-12
    if not ok.any():
        tied = np.flatnonzero(q == q.max())
        return _middle(tied[c[tied] == c[tied].min()]), False
    cheapest = c[ok].min()
    tied = np.flatnonzero(ok & (c == cheapest))
    return _middle(tied[q[tied] == q[tied].max()]), True


def single_arm_for_target(
    quality: NDArray[np.float64], cost: NDArray[np.float64], target: str | CalibrationTarget
) -> int:
    """The single arm that best meets ``target`` by its mean outcomes, as a router's lambda would be chosen.

    Args:
        quality: shape (n, A), true quality; arms with a NaN are skipped.
        cost: shape (n, A), USD per query.
        target: ``arena`` (highest arena score), ``cost=X`` (best quality within X USD
            per 1K), ``quality=Y`` (cheapest reaching Y).

    Returns:
        The flat arm index.
    """
    mean_q, mean_c = quality.mean(axis=0), cost.mean(axis=0) * 1000.0
    arms = np.flatnonzero(~(np.isnan(mean_q) | np.isnan(mean_c)))
    if arms.size == 0:
        raise DataError("no arm has an outcome on every query; drop incomplete queries first")
    # arms in order of decreasing quality then cost: ties of the target go to the better, then cheaper arm
    arms = arms[np.lexsort((mean_c[arms], -mean_q[arms]))]
    points = DeferralCurve(np.full(arms.size, np.nan), mean_c[arms], np.clip(mean_q[arms], 0.0, 1.0))
    t = CalibrationTarget.parse(target)
    if t.kind == "arena":
        pairs = zip(points.quality, points.cost_per_1k, strict=True)
        scores = np.array([arena_score(float(a), float(b)) for a, b in pairs])
        return int(arms[int(np.argmax(scores))])
    index, _ = select_operating_point(points, t)
    return int(arms[index])
