"""Deferral curves: construction, frontier, JSON form and the PNG plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from r2router_core.errors import DataError
from r2router_core.evaluation.curves import DeferralCurve, deferral_curve, plot_deferral_curves


def test_deferral_curve_is_the_mean_over_queries() -> None:
    quality = np.array([[1.0, 0.0, 0.5], [0.0, 0.0, 0.3]])
    cost = np.array([[3e-4, 1e-4, 2e-4], [1e-4, 1e-4, 1e-4]])
    c = deferral_curve(quality, cost, [0.0, 1.0])
    assert c.quality.tolist() == pytest.approx([0.5, 0.1])
    assert c.cost_per_1k.tolist() == pytest.approx([0.2, 0.1])
    assert c.best_quality_within(0.15) == pytest.approx(0.1)
    assert np.isnan(c.best_quality_within(0.05))
    assert c.to_dict()["lambda"] == [0.0, 1.0]


def test_curve_validation() -> None:
    with pytest.raises(DataError):
        deferral_curve(np.zeros((2, 3)), np.zeros((2, 4)), [0.0, 1.0])
    with pytest.raises(DataError):
        DeferralCurve(np.array([0.0]), np.array([np.nan]), np.array([0.5]))
    assert DeferralCurve(np.array([np.nan]), np.array([1.0]), np.array([0.5])).to_dict()["lambda"] == [None]


def test_plot_writes_a_png(tmp_path: Path) -> None:
    lam = np.linspace(0, 1, 5)
    curves = {
        "R2-Router": DeferralCurve(lam, np.array([5.0, 3.0, 2.0, 1.0, 0.5]), np.array([0.8, 0.75, 0.6, 0.4, 0.2]))
    }
    path = plot_deferral_curves(
        curves,
        tmp_path / "sub" / "curves.png",
        title="toy data",
        points={"R2-Router": (2.0, 0.6), "random": (2.5, 0.4)},
        arms={"a @ 100": (1.0, 0.3), "b @ uncapped": (5.0, 0.7)},
        log_cost=True,
    )
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
