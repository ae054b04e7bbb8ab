"""Typed, immutable routing results: a decision and its candidates.

Every arm's predicted cost is shown whole and apart: ``predicted_cost =
predicted_input_cost + predicted_output_cost``, where the input cost is the prompt's
tokens x the model's input price and the output cost the predicted (capped) output
tokens x its output price, both in USD per query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import Budget, RouterConfig, format_budget
from r2router_core.engine.options import RoutingOptions

__all__ = ["ArmTable", "Candidate", "RoutingDecision"]


@dataclass(frozen=True)
class Candidate:
    """One (model, budget) arm with its predicted numbers for one query.

    Attributes:
        model: Pool model name.
        model_full_name: The provider's model id.
        token_limit: Output-token budget, ``None`` = uncapped.
        predicted_quality: Predicted quality in [0, 1].
        predicted_tokens: Predicted output tokens, capped at the budget.
        predicted_cost: Predicted USD for this query.
        utility: ``(1 - lambda) * quality - lambda * cost``.
        eligible: False if the call's constraints excluded this arm.
        interpolated: True for a budget between anchors (the continuous extension).
        predicted_input_cost: The prompt's tokens x the input price, USD (0 when no prompt
            length was known; NaN for an arm not priced by the router, e.g. a collector's cell).
        predicted_output_cost: Predicted output tokens x the output price, USD.
    """

    model: str
    model_full_name: str
    token_limit: Budget
    predicted_quality: float
    predicted_tokens: float
    predicted_cost: float
    utility: float
    eligible: bool
    interpolated: bool = False
    predicted_input_cost: float = math.nan
    predicted_output_cost: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "model_full_name": self.model_full_name,
            "token_limit": self.token_limit,
            "predicted_quality": self.predicted_quality,
            "predicted_tokens": self.predicted_tokens,
            "predicted_cost": self.predicted_cost,
            "utility": self.utility,
            "eligible": self.eligible,
            "interpolated": self.interpolated,
            "predicted_input_cost": self.predicted_input_cost,
            "predicted_output_cost": self.predicted_output_cost,
        }


_new_candidate = object.__new__


@dataclass(frozen=True, eq=False)
class ArmTable:
    """Arrays behind the decisions of one batch, shape (n, M, C) each; shared, read by row.

    ``input_tokens`` (n,) is each row's priced prompt length, ``None`` when no row had one.
    """

    config: RouterConfig
    options: RoutingOptions
    budgets: tuple[Budget, ...]
    quality: NDArray[np.float64]
    tokens: NDArray[np.float64]
    cost: NDArray[np.float64]
    utility: NDArray[np.float64]
    eligible: NDArray[np.bool_]
    input_tokens: NDArray[np.float64] | None = None

    def row_input_tokens(self, row: int) -> int | None:
        """The prompt length priced for ``row``, or ``None``."""
        return None if self.input_tokens is None else int(self.input_tokens.item(row))

    def split_costs(self, row: int) -> tuple[list[float], list[list[float]]]:
        """(input cost per model (M,), output cost per model and budget (M, C)) of ``row``, USD.

        The same arithmetic as :meth:`ArmPricing.costs`, so input + output is the arm's cost.
        """
        tokens = self.row_input_tokens(row)
        models = self.config.models
        inputs = [0.0 if not tokens else tokens * m.input_price / 1e6 for m in models]
        outputs = [[t * m.output_price / 1e6 for t in self.tokens[row, mi].tolist()] for mi, m in enumerate(models)]
        return inputs, outputs

    def order(self, row: int) -> list[int]:
        """Flat arm indices (into M x C) of ``row``, best utility first, ineligible arms last.

        Ties keep (model, budget) order, as the argmax does (``lexsort`` is stable); a NaN
        utility sorts last among its group.
        """
        utility = self.utility[row].ravel()
        key = np.where(np.isnan(utility), np.inf, -utility)
        order: list[int] = np.lexsort((key, ~self.eligible[row].ravel())).tolist()
        return order

    def candidate(self, row: int, flat: int) -> Candidate:
        """The :class:`Candidate` of arm ``flat`` (index into M x C) of ``row``."""
        mi, bi = divmod(flat, len(self.budgets))
        spec = self.config.models[mi]
        tokens = self.row_input_tokens(row)
        return Candidate(
            model=spec.name,
            model_full_name=spec.full_name,
            token_limit=self.budgets[bi],
            predicted_quality=self.quality.item(row, mi, bi),
            predicted_tokens=self.tokens.item(row, mi, bi),
            predicted_cost=self.cost.item(row, mi, bi),
            utility=self.utility.item(row, mi, bi),
            eligible=self.eligible.item(row, mi, bi),
            interpolated=bi >= len(self.config.budgets),
            predicted_input_cost=0.0 if not tokens else tokens * spec.input_price / 1e6,
            predicted_output_cost=self.tokens.item(row, mi, bi) * spec.output_price / 1e6,
        )

    def candidates(self, row: int) -> tuple[Candidate, ...]:
        """Every arm of ``row`` as a :class:`Candidate`, in :meth:`order`.

        Each array's row is read once as Python numbers (``tolist``), not element by element.
        """
        n_budgets, n_anchor = len(self.budgets), len(self.config.budgets)
        values = [a[row].ravel().tolist() for a in (self.quality, self.tokens, self.cost, self.utility, self.eligible)]
        quality, tokens, cost, utility, eligible = values
        models = self.config.models
        input_costs, output_costs = self.split_costs(row)
        out = []
        for flat in self.order(row):
            mi, bi = divmod(flat, n_budgets)
            spec = models[mi]
            # Candidate's own fields set directly: a frozen dataclass's __init__ sets each through
            # object.__setattr__, about 4x slower, and Candidate has no __post_init__ to skip
            candidate = _new_candidate(Candidate)
            candidate.__dict__.update(
                model=spec.name,
                model_full_name=spec.full_name,
                token_limit=self.budgets[bi],
                predicted_quality=quality[flat],
                predicted_tokens=tokens[flat],
                predicted_cost=cost[flat],
                utility=utility[flat],
                eligible=eligible[flat],
                interpolated=bi >= n_anchor,
                predicted_input_cost=input_costs[mi],
                predicted_output_cost=output_costs[mi][bi],
            )
            out.append(candidate)
        return tuple(out)


# Keys of the model card's dict result, and our aliases, for result["..."].
_ITEM_KEYS = {
    "model": "model",
    "model_name": "model",
    "model_full_name": "model_full_name",
    "token_limit": "token_limit",
    "budget": "token_limit",
    "predicted_quality": "predicted_quality",
    "predicted_tokens": "predicted_tokens",
    "predicted_cost": "predicted_cost",
    "predicted_input_cost": "predicted_input_cost",
    "predicted_output_cost": "predicted_output_cost",
    "input_tokens": "input_tokens",
    "utility": "utility",
    "risk": "utility",
    "lambda": "lambda_",
}


@dataclass(frozen=True, eq=False)
class RoutingDecision:
    """The chosen (model, budget) for one query, and every candidate.

    Also readable as the model card's dict: ``result["model_full_name"]``,
    ``result["token_limit"]``, ``result["predicted_quality"]``.

    Attributes:
        model: Chosen pool model name.
        model_full_name: Its provider id.
        token_limit: Chosen output-token budget; ``None`` = uncapped.
        predicted_quality: Predicted quality in [0, 1].
        predicted_tokens: Predicted output tokens (capped at the budget).
        predicted_cost: Predicted USD for this query (:attr:`predicted_input_cost` +
            :attr:`predicted_output_cost`).
        utility: The maximised utility.
        lambda_: The lambda used.
    """

    model: str
    model_full_name: str
    token_limit: Budget
    predicted_quality: float
    predicted_tokens: float
    predicted_cost: float
    utility: float
    lambda_: float
    _table: ArmTable = field(repr=False)
    _row: int = field(default=0, repr=False)

    @cached_property
    def candidates(self) -> tuple[Candidate, ...]:
        """Every (model, budget) arm, best utility first; ineligible arms last (built on first access)."""
        return self._table.candidates(self._row)

    @property
    def input_tokens(self) -> int | None:
        """The prompt length priced: the caller's ``input_tokens``, else the prompt's counted tokens
        (``route_text``), else the config's ``default_input_tokens``; ``None`` = no input cost."""
        return self._table.row_input_tokens(self._row)

    @property
    def predicted_input_cost(self) -> float:
        """USD of the prompt on the chosen model: :attr:`input_tokens` x its input price (0 if none)."""
        return self.chosen.predicted_input_cost

    @property
    def predicted_output_cost(self) -> float:
        """USD of the predicted output of the chosen arm: :attr:`predicted_tokens` x the output price."""
        return self.chosen.predicted_output_cost

    @property
    def options(self) -> RoutingOptions:
        """The routing options this decision was made under (``lambda_`` filled in)."""
        return self._table.options

    @cached_property
    def chosen(self) -> Candidate:
        """The chosen arm as a :class:`Candidate`."""
        t = self._table
        mi = next(i for i, spec in enumerate(t.config.models) if spec.name == self.model)
        return t.candidate(self._row, mi * len(t.budgets) + t.budgets.index(self.token_limit))

    @property
    def max_tokens(self) -> int | None:
        """The output-token cap to send with the chosen arm (:meth:`max_tokens_for`)."""
        return self.max_tokens_for(self.token_limit)

    def max_tokens_for(self, budget: Budget) -> int | None:
        """The output-token cap to send for an arm of ``budget``; ``None`` = no cap.

        The budget, raised to the options' ``min_budget`` floor, then bounded by the
        caller's own ``max_tokens`` (which wins over the floor).
        """
        options = self._table.options
        cap = budget
        if cap is not None and options.min_budget is not None:
            cap = max(cap, options.min_budget)
        if options.max_tokens is not None:
            cap = options.max_tokens if cap is None else min(cap, options.max_tokens)
        return cap

    def fallback_plan(self, fallbacks: int) -> tuple[Candidate, ...]:
        """The arms to try in order: the chosen one, then the best eligible arm of up to
        ``fallbacks`` other models, in utility order.

        Each fallback is another model: a model that just failed would likely fail
        again at another budget.
        """
        plan, seen = [self.chosen], {self.model}
        t, row = self._table, self._row
        if fallbacks < 1:
            return tuple(plan)
        eligible = t.eligible[row].ravel().tolist()
        for flat in t.order(row):  # the candidates' order, building only the arms taken
            if len(plan) > fallbacks:
                break
            model = t.config.models[flat // len(t.budgets)].name
            if eligible[flat] and model not in seen:
                plan.append(t.candidate(row, flat))
                seen.add(model)
        return tuple(plan)

    def answered_by(self, used: Candidate | None = None, failures: Sequence[Any] = ()) -> dict[str, Any]:
        """JSON-ready record of this decision as answered by ``used`` (default: the chosen arm).

        What every integration attaches to an answer: the arm that answered (after a
        fallback, not the chosen one), its predictions, the cap sent for it, lambda, and
        ``fallbacks``, the failed attempts before it (the core's ``FailedAttempt`` dicts).
        """
        arm = self.chosen if used is None else used
        return {
            "model": arm.model,
            "model_full_name": arm.model_full_name,
            "token_limit": arm.token_limit,
            "max_tokens": self.max_tokens_for(arm.token_limit),
            "predicted_quality": arm.predicted_quality,
            "predicted_tokens": arm.predicted_tokens,
            "predicted_cost": arm.predicted_cost,
            "predicted_input_cost": arm.predicted_input_cost,
            "predicted_output_cost": arm.predicted_output_cost,
            "input_tokens": self.input_tokens,
            "utility": arm.utility,
            "lambda": self.lambda_,
            "fallbacks": [f.to_dict() for f in failures],
        }

    def alternatives(self, n: int = 3) -> tuple[Candidate, ...]:
        """The ``n`` best eligible candidates after the chosen one."""
        return tuple(c for c in self.candidates[1:] if c.eligible)[:n]

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, _ITEM_KEYS[key])
        except KeyError:
            raise KeyError(f"{key!r}; a decision has the keys {sorted(_ITEM_KEYS)}") from None

    def __contains__(self, key: object) -> bool:
        return key in _ITEM_KEYS

    def get(self, key: str, default: Any = None) -> Any:
        """``result.get(key, default)``, as on the card's dict."""
        return self[key] if key in _ITEM_KEYS else default

    def __str__(self) -> str:
        return (
            f"{self.model} @ {format_budget(self.token_limit)} tokens "
            f"(quality {self.predicted_quality:.3f}, cost ${self.predicted_cost:.6f})"
        )

    def to_dict(self, *, with_candidates: bool = False) -> dict[str, Any]:
        """JSON-ready form; ``with_candidates`` adds every candidate."""
        data: dict[str, Any] = {
            "model": self.model,
            "model_full_name": self.model_full_name,
            "token_limit": self.token_limit,
            "predicted_quality": self.predicted_quality,
            "predicted_tokens": self.predicted_tokens,
            "predicted_cost": self.predicted_cost,
            "predicted_input_cost": self.predicted_input_cost,
            "predicted_output_cost": self.predicted_output_cost,
            "input_tokens": self.input_tokens,
            "utility": self.utility,
            "lambda": self.lambda_,
            "max_tokens": self.max_tokens,
        }
        if with_candidates:
            data["candidates"] = [c.to_dict() for c in self.candidates]
        return data
