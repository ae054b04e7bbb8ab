"""From predictions to utilities: cost of each (model, budget) arm, the
per-call constraints, and the argmax.

    utility(M, b) = (1 - lambda) * Q(x, M, b) - lambda * cost(x, M, b)
    cost(x, M, b) = min(T(x, M, b), b) * output_price_M / 1e6
                    + input_tokens(x) * input_price_M / 1e6     (when known)

``input_tokens(x)`` is the caller's ``input_tokens`` if given, else the prompt's counted
tokens (``route_text``), else the config's ``default_input_tokens`` (vectors alone).

All functions work on whole batches: arrays of shape (n, M, C) for n queries,
M models and C candidate budgets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import Budget, RouterConfig
from r2router_core.engine.options import RoutingOptions
from r2router_core.errors import NoCandidateError

__all__ = [
    "ArmPricing",
    "Prediction",
    "arm_costs",
    "budget_mask",
    "choose",
    "eligibility",
    "interpolate_budgets",
    "utilities",
]


@dataclass(frozen=True, eq=False)
class Prediction:
    """Predicted quality and output tokens of every (model, budget) arm.

    Attributes:
        quality: shape (n, M, C), in [0, 1]; NaN for arms with no training data.
        tokens: shape (n, M, C), predicted output tokens; the router clips them to
            [0, budget] of each arm, so a capped arm never exceeds its budget.
        models: the M model names.
        budgets: the C candidate budgets (anchors, then interpolated ones).
    """

    quality: NDArray[np.float64]
    tokens: NDArray[np.float64]
    models: tuple[str, ...]
    budgets: tuple[Budget, ...]

    def capped_tokens(self) -> NDArray[np.float64]:
        """Predicted tokens capped at each arm's budget, shape (n, M, C)."""
        caps = np.array([math.inf if b is None else b for b in self.budgets])
        return np.minimum(self.tokens, caps)


def interpolate_budgets(
    values: NDArray[np.float64], anchors: Sequence[Budget], extra: Sequence[int]
) -> NDArray[np.float64]:
    """Append piecewise-linear interpolations at ``extra`` budgets along the last axis.

    Args:
        values: shape (..., B), one value per anchor budget.
        anchors: the B anchor budgets (``None`` ones are ignored for interpolation).
        extra: budgets strictly inside the range of the int anchors.

    Returns:
        shape (..., B + len(extra)).
    """
    if not extra:
        return values
    pairs = sorted((b, i) for i, b in enumerate(anchors) if b is not None)
    xs = np.array([b for b, _ in pairs], dtype=np.float64)
    cols = [i for _, i in pairs]
    out = [values]
    for b in extra:
        hi = int(np.searchsorted(xs, b))
        lo = hi - 1
        a = (b - xs[lo]) / (xs[hi] - xs[lo])
        out.append(((1 - a) * values[..., cols[lo]] + a * values[..., cols[hi]])[..., None])
    return np.concatenate(out, axis=-1)


@dataclass(frozen=True, eq=False)
class ArmPricing:
    """A config's price and cap arrays, built once (the router keeps one for its hot path).

    Attributes:
        output_price: USD per 1M output tokens, shape (1, M, 1).
        input_price: USD per 1M input tokens, shape (1, M, 1).
        caps: Token cap of each candidate budget (inf = uncapped), shape (C,).
    """

    output_price: NDArray[np.float64]
    input_price: NDArray[np.float64]
    caps: NDArray[np.float64]

    @classmethod
    def of(cls, config: RouterConfig, budgets: Sequence[Budget] | None = None) -> ArmPricing:
        """The arrays of ``config`` for ``budgets`` (default: its candidate budgets)."""
        budgets = config.candidate_budgets if budgets is None else budgets
        return cls(
            output_price=np.array([m.output_price for m in config.models], dtype=np.float64)[None, :, None],
            input_price=np.array([m.input_price for m in config.models], dtype=np.float64)[None, :, None],
            caps=np.array([math.inf if b is None else b for b in budgets], dtype=np.float64),
        )

    def capped_tokens(self, tokens: NDArray[np.float64]) -> NDArray[np.float64]:
        """``tokens`` (n, M, C) capped at each arm's budget."""
        return np.minimum(tokens, self.caps)

    def costs(
        self, capped: NDArray[np.float64], input_tokens: int | NDArray[np.float64] | None = None
    ) -> NDArray[np.float64]:
        """USD per query (n, M, C): capped output tokens (n, M, C) x output price, plus the input cost when known.

        Args:
            capped: Output tokens capped at each arm's budget.
            input_tokens: The prompt's tokens: one count for every row, or one per row, shape (n,).
        """
        cost = capped * self.output_price / 1e6
        if input_tokens is None:
            return cost
        if isinstance(input_tokens, np.ndarray):
            return cost + input_tokens.reshape(-1, 1, 1) * self.input_price / 1e6
        if input_tokens:
            cost = cost + input_tokens * self.input_price / 1e6
        return cost


def arm_costs(prediction: Prediction, config: RouterConfig, input_tokens: int | None = None) -> NDArray[np.float64]:
    """Predicted USD per query of every arm, shape (n, M, C)."""
    pricing = ArmPricing.of(config, prediction.budgets)
    return pricing.costs(pricing.capped_tokens(prediction.tokens), input_tokens)


def utilities(quality: NDArray[np.float64], cost: NDArray[np.float64], lambda_: float) -> NDArray[np.float64]:
    """``(1 - lambda) * quality - lambda * cost``, elementwise."""
    return (1.0 - lambda_) * quality - lambda_ * cost


def budget_mask(budgets: Sequence[Budget], options: RoutingOptions) -> NDArray[np.bool_]:
    """Boolean (C,): the budgets the options allow (see :mod:`r2router_core.engine.options` for the rules).

    ``max_budget`` removes larger budgets and uncapped. The caller's ``max_tokens``
    keeps the budgets <= it, or else the smallest budget left. ``min_budget`` then
    keeps the budgets >= it and uncapped, or else the largest budget left.
    """
    ok = np.ones(len(budgets), dtype=bool)
    if options.max_budget is not None:
        ok &= np.array([b is not None and b <= options.max_budget for b in budgets])
    if options.max_tokens is not None:
        ok = _prefer(ok, [b is not None and b <= options.max_tokens for b in budgets], budgets, smallest=True)
    if options.min_budget is not None:
        ok = _prefer(ok, [b is None or b >= options.min_budget for b in budgets], budgets, smallest=False)
    return ok


def _prefer(
    ok: NDArray[np.bool_], wanted: list[bool], budgets: Sequence[Budget], *, smallest: bool
) -> NDArray[np.bool_]:
    """``ok & wanted`` if any is left, else only the smallest (or largest) int budget of ``ok``."""
    both = ok & np.array(wanted)
    if both.any():
        return both
    ints = [b for b, keep in zip(budgets, ok, strict=True) if keep and b is not None]
    if not ints:
        return ok
    edge = min(ints) if smallest else max(ints)
    return ok & np.array([b == edge for b in budgets])


def eligibility(
    prediction: Prediction, cost: NDArray[np.float64], config: RouterConfig, options: RoutingOptions
) -> NDArray[np.bool_]:
    """Boolean (n, M, C): arms that satisfy the options and have a prediction."""
    ok = ~np.isnan(prediction.quality)
    if options.allowed_models is not None:
        allowed = np.array([m in options.allowed_models for m in config.model_names])
        ok &= allowed[None, :, None]
    ok &= budget_mask(prediction.budgets, options)[None, None, :]
    if options.max_cost is not None:
        ok &= cost <= options.max_cost
    return ok


def choose(
    utility: NDArray[np.float64], eligible: NDArray[np.bool_], options: RoutingOptions | None = None
) -> NDArray[np.intp]:
    """Index (into the flattened M x C arms) of the best eligible arm per query.

    Ties go to the first arm in (model, budget) order.

    Raises:
        NoCandidateError: Some query has no eligible arm; the message says which
            constraint to loosen.
    """
    flat_u = np.where(eligible, utility, -np.inf).reshape(utility.shape[0], -1)
    none_left = ~eligible.reshape(utility.shape[0], -1).any(axis=1)
    if none_left.any():
        first = int(np.flatnonzero(none_left)[0])
        raise NoCandidateError(
            f"no (model, budget) candidate is left for query {first} after the constraints ({options}); "
            "allow more models, a larger max_budget or a larger max_cost"
        )
    return np.argmax(flat_u, axis=1)
