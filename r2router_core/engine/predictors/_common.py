"""What every predictor shares: input checks and the grouping of heads by their observed rows.

A *head* is one output column (the quality of one (model, budget) arm, or the
output tokens of one model or arm). Labels may be missing (NaN); heads whose
labels are observed on exactly the same training rows form one *group*, and one
fit serves every head of a group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.errors import DataError, EmbeddingError

__all__ = ["check_fit_input", "check_query", "group_heads"]


def check_fit_input(X: Any, Y: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``X`` (N, D) and ``Y`` (N, H) as float64, or a :class:`DataError` naming the shapes."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0] or X.shape[0] == 0:
        raise DataError(f"X must be (N, D) and Y (N, H) with the same N >= 1, got {X.shape} and {Y.shape}")
    if not np.isfinite(X).all():
        raise DataError("X holds NaN or inf; training embeddings must be finite")
    return X, Y


def check_query(X: Any, n_features: int, name: str) -> NDArray[np.float64]:
    """Query embeddings (n, D) as float64; an :class:`EmbeddingError` for another shape."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise EmbeddingError(f"{name} expects embeddings of shape (n, {n_features}), got {X.shape}")
    return X


def group_heads(Y: NDArray[np.float64]) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Heads grouped by their pattern of observed rows.

    Args:
        Y: Labels, shape (N, H); NaN marks a missing label.

    Returns:
        ``(heads, rows)`` pairs: the output columns of a group and the training
        rows observed for all of them. Heads with no observed row are left out.
    """
    observed = ~np.isnan(Y)
    patterns: dict[bytes, list[int]] = {}
    for h in range(Y.shape[1]):
        patterns.setdefault(np.packbits(observed[:, h]).tobytes(), []).append(h)
    groups = []
    for heads in patterns.values():
        rows = np.flatnonzero(observed[:, heads[0]])
        if rows.size:
            groups.append((np.asarray(heads, dtype=np.intp), rows))
    return groups
