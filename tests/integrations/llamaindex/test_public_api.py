"""The public surface of the integration, and that LlamaIndex stays out of the core's imports."""

from __future__ import annotations

import subprocess
import sys

import r2router_integrations.llamaindex as integration

PUBLIC = {
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
}


def test_all_is_pinned_and_importable() -> None:
    assert set(integration.__all__) == PUBLIC
    assert all(getattr(integration, name) is not None for name in PUBLIC)


def test_llamaindex_is_imported_only_by_the_integration() -> None:
    code = (
        "import sys, r2router_core, r2router_integrations; "
        "from r2router_core.testing import HashEmbedder; "
        "print(any(m.startswith('llama_index') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
