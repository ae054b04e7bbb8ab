"""R2RouterSelector: a LlamaIndex selector that picks the choice realising the router's (LLM, budget).

Use it as the ``selector`` of a ``RouterQueryEngine`` or a ``RouterRetriever``.
It routes on ``query.query_str`` (the user's question) and maps the choices to
the router's arms in one of two explicit ways (see :mod:`.choices`):

* choices named ``"model@budget"`` -- build them with
  :func:`~r2router_integrations.llamaindex.budgets.budgeted_query_engine_tools`,
  one engine per arm with its LLM copied at that budget;
* ``choice_models`` -- one choice per model; wrap each engine in a
  :class:`~r2router_integrations.llamaindex.budgets.BudgetedQueryEngine` so the
  decided budget caps its LLM.

The budget is never lost: :class:`R2RouterSelectorResult` carries it, and
``RouterQueryEngine`` stores the result in ``response.metadata["selector_result"]``.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

from llama_index.core.base.base_selector import BaseSelector, MetadataType, SelectorResult, SingleSelection
from llama_index.core.bridge.pydantic import ConfigDict
from llama_index.core.prompts.mixin import PromptDictType
from llama_index.core.schema import QueryBundle, QueryType
from llama_index.core.tools.types import ToolMetadata

from r2router_core import Budget, InputError, R2Router, RoutingDecision, RoutingOptions
from r2router_integrations.llamaindex._routing import check_router, route
from r2router_integrations.llamaindex.choices import ChoiceMap, ChoiceModels

__all__ = ["R2RouterSelector", "R2RouterSelectorResult", "selection_for"]


class R2RouterSelectorResult(SelectorResult):
    """A ``SelectorResult`` that keeps the router's decision, budget included.

    Attributes:
        selections: One selection: the chosen choice's index and a reason that
            states model and budget.
        model: The decided pool model.
        token_limit: The decided output-token budget; ``None`` = uncapped.
        choice_budget: The budget the chosen choice runs at (equal to
            ``token_limit`` unless a ``"model@budget"`` choice set offers
            other budgets; see :func:`~.choices.nearest_budget`).
        choice_name: Name of the chosen choice.
        predicted_quality: Predicted quality in [0, 1].
        predicted_tokens: Predicted output tokens (capped at the budget).
        predicted_cost: Predicted USD for this query.
        utility: The maximised utility.
        decision: The full decision, ``RoutingDecision.to_dict(with_candidates=True)``.
    """

    model_config = ConfigDict(frozen=True)

    model: str
    token_limit: int | None
    choice_budget: int | None
    choice_name: str
    predicted_quality: float
    predicted_tokens: float
    predicted_cost: float
    utility: float
    decision: dict[str, Any]

    @classmethod
    def from_response(cls, response: Any) -> R2RouterSelectorResult:
        """The result a ``RouterQueryEngine`` stored in ``response.metadata["selector_result"]``.

        Raises:
            InputError: the response carries no result of an :class:`R2RouterSelector`.
        """
        result = (getattr(response, "metadata", None) or {}).get("selector_result")
        if not isinstance(result, cls):
            raise InputError(
                f"this response carries no R2RouterSelectorResult (selector_result = {type(result).__name__}); "
                "it must come from a RouterQueryEngine whose selector is an R2RouterSelector"
            )
        return result


class R2RouterSelector(BaseSelector):
    """Select the choice that realises the router's (model, budget) decision for the query.

    A choice is identified by its ``ToolMetadata.name``, or its description when
    unnamed (so ``select(["small@100", "big@400"], question)`` works). Routing
    is restricted to the pool models that the choices can realise.
    This selector has no prompts: ``get_prompts()`` returns ``{}`` and
    ``update_prompts()`` changes nothing.

    Args:
        router: A fitted router with an embedder attached.
        choice_models: ``None`` to map choices by their ``"model@budget"`` names;
            else a mapping choice name -> pool model, or one pool model (or
            ``None``) per choice, in order.
        lambda_: Cost weight in [0, 1]; ``None`` = the router's config.
        max_budget: Only budgets <= this many output tokens.
        max_cost: Only arms with predicted cost <= this many USD per query.
    """

    def __init__(
        self,
        router: R2Router,
        *,
        choice_models: ChoiceModels | None = None,
        lambda_: float | None = None,
        max_budget: int | None = None,
        max_cost: float | None = None,
    ) -> None:
        self._router = check_router(router, owner="R2RouterSelector")
        self._choice_models = choice_models
        self._options = RoutingOptions(lambda_=lambda_, max_budget=max_budget, max_cost=max_cost)
        self._options.resolved(router.config)  # a bad option fails here, not at the first query
        self._maps: dict[tuple[str, ...], ChoiceMap] = {}  # one map (and one warning) per choice set

    @classmethod
    def from_defaults(
        cls,
        router: R2Router,
        *,
        choice_models: ChoiceModels | None = None,
        lambda_: float | None = None,
        max_budget: int | None = None,
        max_cost: float | None = None,
    ) -> R2RouterSelector:
        """Build a selector; same arguments as the constructor (LlamaIndex's spelling)."""
        return cls(router, choice_models=choice_models, lambda_=lambda_, max_budget=max_budget, max_cost=max_cost)

    @property
    def router(self) -> R2Router:
        """The router that decides."""
        return self._router

    def _get_prompts(self) -> dict[str, Any]:
        """This selector has no prompts."""
        return {}

    def _update_prompts(self, prompts: PromptDictType) -> None:
        """No-op: this selector has no prompts."""

    def select(self, choices: Sequence[MetadataType], query: QueryType) -> R2RouterSelectorResult:
        """Select the choice realising the router's decision for ``query`` (typed override)."""
        return cast(R2RouterSelectorResult, super().select(choices, query))

    async def aselect(self, choices: Sequence[MetadataType], query: QueryType) -> R2RouterSelectorResult:
        """Async :meth:`select`; the routing runs in a worker thread."""
        return cast(R2RouterSelectorResult, await super().aselect(choices, query))

    def _select(self, choices: Sequence[ToolMetadata], query: QueryBundle) -> SelectorResult:
        return self._decide(choices, query)

    async def _aselect(self, choices: Sequence[ToolMetadata], query: QueryBundle) -> SelectorResult:
        return await asyncio.to_thread(self._decide, choices, query)

    def _decide(self, choices: Sequence[ToolMetadata], query: QueryBundle) -> R2RouterSelectorResult:
        """The one body of sync and async selection."""
        names = tuple(c.name or c.description for c in choices)
        choice_map = self._maps.get(names)
        if choice_map is None:
            choice_map = ChoiceMap.build(names, self._router.config.model_names, self._choice_models)
            self._maps[names] = choice_map
        tokens = self._router.count_tokens([query.query_str])[0]  # the query is what the selector sees of the prompt
        options = replace(self._options, allowed_models=choice_map.models, input_tokens=tokens)
        decision = route(self._router, query.query_str, options)
        index, budget = choice_map.pick(decision)
        result = _result(decision, index, names[index], budget)
        _remember(query, result)
        return result


def _result(decision: RoutingDecision, index: int, name: str, budget: Budget) -> R2RouterSelectorResult:
    reason = (
        f"R2-Router chose {decision.model} with {_budget_words(decision.token_limit)} "
        f"(predicted quality {decision.predicted_quality:.3f}, cost ${decision.predicted_cost:.6f}); "
        f"choice {name!r} runs it with {_budget_words(budget)}"
    )
    return R2RouterSelectorResult(
        selections=[SingleSelection(index=index, reason=reason)],
        model=decision.model,
        token_limit=decision.token_limit,
        choice_budget=budget,
        choice_name=name,
        predicted_quality=decision.predicted_quality,
        predicted_tokens=decision.predicted_tokens,
        predicted_cost=decision.predicted_cost,
        utility=decision.utility,
        decision=decision.to_dict(with_candidates=True),
    )


def _budget_words(budget: Budget) -> str:
    return "no output-token cap" if budget is None else f"a budget of {budget} output tokens"


# -- the selection of a query, for BudgetedQueryEngine -------------------------------
# RouterQueryEngine and RouterRetriever hand the same QueryBundle object to the
# selector and then to the chosen engine, so the result is kept per bundle
# object (by identity, dropped when the bundle is garbage-collected).
_SELECTIONS: dict[int, R2RouterSelectorResult] = {}
_LOCK = threading.Lock()


def _forget(key: int) -> None:
    with _LOCK:
        _SELECTIONS.pop(key, None)


def _remember(query: QueryBundle, result: R2RouterSelectorResult) -> None:
    key = id(query)
    with _LOCK:
        known = key in _SELECTIONS
        _SELECTIONS[key] = result
    if not known:
        weakref.finalize(query, _forget, key)


def selection_for(query: QueryBundle) -> R2RouterSelectorResult | None:
    """The result an :class:`R2RouterSelector` returned for this very ``QueryBundle``, if any."""
    with _LOCK:
        return _SELECTIONS.get(id(query))
