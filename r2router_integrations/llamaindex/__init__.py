"""LlamaIndex integration: route queries to an (LLM, output-token budget) with R2-Router.

Public API::

    R2RouterSelector             selector for RouterQueryEngine / RouterRetriever
    R2RouterSelectorResult       its SelectorResult, carrying model, budget and scores
    budgeted_query_engine_tools  one QueryEngineTool per (model, budget), named "model@budget"
    BudgetedQueryEngine          an engine capped at the budget the selector chose (choice_models)
    with_budget                  a copy of an LLM with max_tokens = budget
    R2RouterLLM, routing_query   an LLM that routes every call; route on the user's question
    LlamaIndexEmbedder           a LlamaIndex BaseEmbedding as the router's embedder

Needs ``pip install 'r2router[llamaindex]'``.
"""

from __future__ import annotations

from r2router_core import missing_dependency

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_dependency("llama_index.core", "llamaindex", "The LlamaIndex integration") from exc

from r2router_integrations.llamaindex.budgets import (
    BudgetedQueryEngine,
    budgeted_query_engine_tools,
    with_budget,
)
from r2router_integrations.llamaindex.choices import format_choice_name, nearest_budget
from r2router_integrations.llamaindex.embeddings import LlamaIndexEmbedder
from r2router_integrations.llamaindex.llm import R2RouterLLM, routing_query
from r2router_integrations.llamaindex.selector import R2RouterSelector, R2RouterSelectorResult, selection_for

__all__ = [
    "BudgetedQueryEngine",
    "LlamaIndexEmbedder",
    "R2RouterLLM",
    "R2RouterSelector",
    "R2RouterSelectorResult",
    "budgeted_query_engine_tools",
    "format_choice_name",
    "nearest_budget",
    "routing_query",
    "selection_for",
    "with_budget",
]
