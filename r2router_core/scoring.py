"""From predictions to utilities: cost of each (model, budget) arm, the
per-call constraints, and the argmax.

    utility(M, b) = (1 - lambda) * Q(x, M, b) - lambda * cost(x, M, b)
    cost(x, M, b) = min(T(x, M, b), b) * output_price_M / 1e6
                    + input_tokens * input_price_M / 1e6        (when known)

All functions work on whole batches: arrays of shape (n, M, C) for n queries,
M models and C candidate budgets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.config import Budget, RouterConfig, validate_lambda
from r2router_core.errors import ConfigError, ConstraintError, NoCandidateError

__all__ = ["Prediction", "RoutingOptions", "arm_costs", "choose", "eligibility", "interpolate_budgets", "utilities"]


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


@dataclass(frozen=True)
class RoutingOptions:
    """Per-call options, validated against a config.

    Attributes:
        lambda_: Cost weight in [0, 1] (the config's unless the call gave one).
        allowed_models: Restrict the choice to these pool models; ``None`` = all.
        max_budget: Only budgets <= this (excludes uncapped); ``None`` = no limit.
        max_cost: Only arms whose predicted cost per query (USD) is <= this.
        input_tokens: Prompt length in tokens, adds each model's input cost.
    """

    lambda_: float
    allowed_models: tuple[str, ...] | None = None
    max_budget: int | None = None
    max_cost: float | None = None
    input_tokens: int | None = None

    @classmethod
    def build(
        cls,
        config: RouterConfig,
        *,
        lambda_: float | None = None,
        allowed_models: Sequence[str] | None = None,
        max_budget: int | None = None,
        max_cost: float | None = None,
        input_tokens: int | None = None,
    ) -> RoutingOptions:
        """Validate raw keyword options; errors name the value and what is allowed."""
        lam = config.lambda_ if lambda_ is None else validate_lambda(lambda_)
        allowed: tuple[str, ...] | None = None
        if allowed_models is not None:
            if isinstance(allowed_models, str):
                allowed_models = [allowed_models]
            allowed = tuple(allowed_models)
            if not allowed:
                raise ConstraintError(f"allowed_models is empty; pick some of {list(config.model_names)}")
            for name in allowed:
                config.model(name)  # raises UnknownModelError naming the pool
        if max_budget is not None and (
            isinstance(max_budget, bool) or not isinstance(max_budget, int) or max_budget < 1
        ):
            raise ConfigError(f"max_budget must be a positive int (output tokens) or None, got {max_budget!r}")
        if max_cost is not None and (
            isinstance(max_cost, bool)
            or not isinstance(max_cost, int | float)
            or not math.isfinite(max_cost)
            or max_cost < 0
        ):
            raise ConfigError(f"max_cost must be a finite number >= 0 (USD per query) or None, got {max_cost!r}")
        if input_tokens is not None and (
            isinstance(input_tokens, bool) or not isinstance(input_tokens, int) or input_tokens < 0
        ):
            raise ConfigError(f"input_tokens must be an int >= 0 or None, got {input_tokens!r}")
        return cls(lam, allowed, max_budget, None if max_cost is None else float(max_cost), input_tokens)

    @property
    def restricts_arms(self) -> bool:
        """True if ``allowed_models``, ``max_budget`` or ``max_cost`` may exclude some arms."""
        return self.allowed_models is not None or self.max_budget is not None or self.max_cost is not None


@dataclass(frozen=True, eq=False)
class _ArmPricing:
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
    def of(cls, config: RouterConfig, budgets: Sequence[Budget] | None = None) -> _ArmPricing:
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

    def costs(self, capped: NDArray[np.float64], input_tokens: int | None = None) -> NDArray[np.float64]:
        """USD per query (n, M, C) from capped output tokens (n, M, C), plus the input cost when known."""
        cost = capped * self.output_price / 1e6
        if input_tokens:
            cost = cost + input_tokens * self.input_price / 1e6
        return cost


def arm_costs(prediction: Prediction, config: RouterConfig, input_tokens: int | None = None) -> NDArray[np.float64]:
    """Predicted USD per query of every arm, shape (n, M, C)."""
    pricing = _ArmPricing.of(config, prediction.budgets)
    return pricing.costs(pricing.capped_tokens(prediction.tokens), input_tokens)


def utilities(quality: NDArray[np.float64], cost: NDArray[np.float64], lambda_: float) -> NDArray[np.float64]:
    """``(1 - lambda) * quality - lambda * cost``, elementwise."""
    return (1.0 - lambda_) * quality - lambda_ * cost


def eligibility(
    prediction: Prediction, cost: NDArray[np.float64], config: RouterConfig, options: RoutingOptions
) -> NDArray[np.bool_]:
    """Boolean (n, M, C): arms that satisfy the options and have a prediction."""
    ok = ~np.isnan(prediction.quality)
    if options.allowed_models is not None:
        allowed = np.array([m in options.allowed_models for m in config.model_names])
        ok &= allowed[None, :, None]
    if options.max_budget is not None:
        fits = np.array([b is not None and b <= options.max_budget for b in prediction.budgets])
        ok &= fits[None, None, :]
    if options.max_cost is not None:
        ok &= cost <= options.max_cost
    return ok


def choose(utility: NDArray[np.float64], eligible: NDArray[np.bool_], options: Any = None) -> NDArray[np.intp]:
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
            f"no (model, budget) candidate is left for query {first} after the constraints {options}; "
            "allow more models, a larger max_budget or a larger max_cost"
        )
    return np.argmax(flat_u, axis=1)
