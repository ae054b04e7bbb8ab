"""Make a decided budget really cap an LLM inside LlamaIndex.

Pitfall this module exists for: with ``llama-index-llms-openai`` a per-call
``llm.complete(prompt, max_tokens=b)`` is overridden by the instance's own
``max_tokens``, and query engines never pass per-call options anyway. So a
budget is applied by copying the LLM with ``max_tokens=b``
(:func:`with_budget`) and running the engine over the copy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.response.schema import RESPONSE_TYPE
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.llms import LLM
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.schema import QueryBundle
from llama_index.core.tools import QueryEngineTool

from r2router_core import Budget, ConfigError, format_budget
from r2router_integrations.llamaindex.choices import format_choice_name
from r2router_integrations.llamaindex.selector import selection_for

__all__ = [
    "DEFAULT_TOOL_DESCRIPTION",
    "ApplyBudget",
    "BudgetedQueryEngine",
    "budgeted_query_engine_tools",
    "with_budget",
]

ApplyBudget = Callable[[LLM, Budget], LLM]
"""``(llm, budget) -> llm capped at budget``; must not modify ``llm``."""

DEFAULT_TOOL_DESCRIPTION = "Answers with {model}, using at most {budget} output tokens."


def with_budget(llm: LLM, budget: Budget) -> LLM:
    """A copy of ``llm`` whose ``max_tokens`` is ``budget``; the original is untouched.

    ``None`` (uncapped) imposes no cap from the router: the copy keeps the LLM's
    own ``max_tokens``. For an LLM whose output limit has another name, pass
    your own :data:`ApplyBudget` function wherever this one is the default.

    Raises:
        ConfigError: ``llm`` has no ``max_tokens`` field.
    """
    if "max_tokens" not in type(llm).model_fields:
        raise ConfigError(
            f"{type(llm).__name__} has no max_tokens field, so a budget cannot cap it; pass "
            "apply_budget=lambda llm, budget: <a copy of llm limited to budget tokens>"
        )
    return llm.model_copy(update={} if budget is None else {"max_tokens": budget})


def budgeted_query_engine_tools(
    pool: Mapping[str, LLM],
    budgets: Sequence[Budget] | Mapping[str, Sequence[Budget]],
    build_engine: Callable[[LLM], BaseQueryEngine],
    *,
    description: str = DEFAULT_TOOL_DESCRIPTION,
    apply_budget: ApplyBudget = with_budget,
) -> list[QueryEngineTool]:
    """One ``QueryEngineTool`` per (model, budget), named ``"model@budget"``, over a budget-capped LLM.

    Hand the tools to ``RouterQueryEngine(selector=R2RouterSelector(router), ...)``.

    Args:
        pool: Pool model name (as in the router's config) -> its LlamaIndex LLM.
        budgets: Budgets offered for every model (e.g. ``router.config.budgets``),
            or per model name.
        build_engine: Builds the engine over a given LLM, e.g.
            ``lambda llm: index.as_query_engine(llm=llm)``.
        description: Tool description, formatted with ``model`` and ``budget``.
        apply_budget: How a budget caps an LLM (default :func:`with_budget`).

    Returns:
        ``len(pool) * len(budgets)`` tools, model-major.
    """
    tools = []
    for model, llm in pool.items():
        model_budgets = budgets.get(model, ()) if isinstance(budgets, Mapping) else budgets
        for budget in model_budgets:
            engine = build_engine(apply_budget(llm, budget))
            tools.append(
                QueryEngineTool.from_defaults(
                    engine,
                    name=format_choice_name(model, budget),
                    description=description.format(model=model, budget=format_budget(budget)),
                )
            )
    if not tools:
        raise ConfigError(f"no tools to build: pool {list(pool)} with budgets {budgets!r}")
    return tools


class BudgetedQueryEngine(BaseQueryEngine):
    """An engine whose LLM runs at the budget an :class:`R2RouterSelector` chose for the query.

    For choice sets mapped with ``choice_models`` (one choice per model): the
    selector's result is looked up for the very ``QueryBundle`` that
    ``RouterQueryEngine`` passes on, and the engine is built (once per budget)
    over ``apply_budget(llm, budget)``. Queried outside a router, it runs over
    ``llm`` unchanged.

    Args:
        llm: The LLM of the pool model this choice stands for.
        build_engine: Builds the engine over a given LLM.
        apply_budget: How a budget caps an LLM (default :func:`with_budget`).
        callback_manager: Callback manager of this wrapper.
    """

    def __init__(
        self,
        llm: LLM,
        build_engine: Callable[[LLM], BaseQueryEngine],
        *,
        apply_budget: ApplyBudget = with_budget,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if apply_budget is with_budget:
            with_budget(llm, None)  # fail now if llm has no max_tokens
        self._llm = llm
        self._build_engine = build_engine
        self._apply_budget = apply_budget
        self._engines: dict[Any, BaseQueryEngine] = {}
        self._lock = threading.Lock()
        super().__init__(callback_manager=callback_manager)

    def _get_prompt_modules(self) -> PromptMixinType:
        return {}

    def engine_for(self, query: QueryBundle) -> BaseQueryEngine:
        """The engine for this query: at the selector's budget, or over the plain LLM."""
        selection = selection_for(query)
        key: Any = "unrouted" if selection is None else selection.choice_budget
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                llm = self._llm if selection is None else self._apply_budget(self._llm, selection.choice_budget)
                engine = self._engines[key] = self._build_engine(llm)
        return engine

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        return self.engine_for(query_bundle).query(query_bundle)

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        return await self.engine_for(query_bundle).aquery(query_bundle)
