"""R2RouterSelector under RouterQueryEngine / RouterRetriever over real indexes, offline.

Oracle: ``router.route_text(question)`` -- the selector must run the engine that
realises that decision, and the LLM under it must run at the decided budget.
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import SummaryIndex, VectorStoreIndex
from llama_index.core.base.base_selector import SelectorResult
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RouterQueryEngine
from llama_index.core.retrievers import RouterRetriever
from llama_index.core.tools import QueryEngineTool, RetrieverTool, ToolMetadata
from pydantic import ValidationError

from r2router_core import R2Router
from r2router_core.errors import ConfigError, ConstraintError, InputError
from r2router_integrations.llamaindex import (
    BudgetedQueryEngine,
    R2RouterSelector,
    R2RouterSelectorResult,
    budgeted_query_engine_tools,
    selection_for,
)
from r2router_integrations.llamaindex.testing import RecordingLLM

from .conftest import BUDGETS, MATH, POEM, RecordingEmbedder


def _tools(
    pool: dict[str, RecordingLLM], vector_index: VectorStoreIndex, summary_index: SummaryIndex
) -> list[QueryEngineTool]:
    """small@* answer from the summary index, big@* from the vector index."""
    return budgeted_query_engine_tools(
        {"small": pool["small"]}, BUDGETS, lambda llm: summary_index.as_query_engine(llm=llm)
    ) + budgeted_query_engine_tools({"big": pool["big"]}, BUDGETS, lambda llm: vector_index.as_query_engine(llm=llm))


@pytest.fixture
def engine(
    router: R2Router, pool: dict[str, RecordingLLM], vector_index: VectorStoreIndex, summary_index: SummaryIndex
) -> RouterQueryEngine:
    tools = _tools(pool, vector_index, summary_index)
    return RouterQueryEngine(selector=R2RouterSelector(router), query_engine_tools=tools, llm=MockLLM())


@pytest.mark.parametrize("question", [MATH, POEM])
def test_router_query_engine_runs_the_engine_and_budget_the_decision_names(
    question: str, router: R2Router, engine: RouterQueryEngine, pool: dict[str, RecordingLLM]
) -> None:
    decision = router.route_text(question)
    response = engine.query(question)

    result = (response.metadata or {})["selector_result"]
    assert isinstance(result, R2RouterSelectorResult)
    assert (result.model, result.token_limit) == (decision.model, decision.token_limit)
    assert result.choice_name == f"{decision.model}@{decision.token_limit}"
    assert result.decision["model"] == decision.model and len(result.decision["candidates"]) == 6
    assert result.predicted_quality == pytest.approx(decision.predicted_quality)
    assert str(decision.token_limit) in result.reason and decision.model in result.reason

    other = "small" if decision.model == "big" else "big"
    assert pool[decision.model].calls and not pool[other].calls
    assert {c.max_tokens for c in pool[decision.model].calls} == {decision.token_limit}
    assert str(response).split()[0].startswith(decision.model)
    assert pool[decision.model].max_tokens is None  # the pool LLM itself is never modified


def test_the_designed_data_gives_distinct_decisions(router: R2Router) -> None:
    """Guard: the two test questions must exercise different (model, budget) arms."""
    math, poem = router.route_text(MATH), router.route_text(POEM)
    assert (math.model, math.token_limit) == ("big", 400)
    assert (poem.model, poem.token_limit) == ("small", 100)


def test_vector_and_summary_engines_are_the_ones_answering(
    engine: RouterQueryEngine, vector_index: VectorStoreIndex
) -> None:
    math = engine.query(MATH)  # big -> vector index, top-2 retrieval
    poem = engine.query(POEM)  # small -> summary index, every node
    assert len(math.source_nodes) == 2
    assert len(poem.source_nodes) == len(vector_index.docstore.docs)


async def test_async_query_routes_like_the_sync_one(
    router: R2Router, engine: RouterQueryEngine, pool: dict[str, RecordingLLM]
) -> None:
    response = await engine.aquery(MATH)
    decision = router.route_text(MATH)
    result = R2RouterSelectorResult.from_response(response)
    assert (result.model, result.token_limit) == (decision.model, decision.token_limit)
    assert [c.max_tokens for c in pool["big"].calls] == [400] * len(pool["big"].calls)
    assert all(c.method.startswith("a") for c in pool["big"].calls)


async def test_select_and_aselect_return_equal_results(router: R2Router) -> None:
    selector = R2RouterSelector.from_defaults(router)
    choices = ["small@100", "small@400", "big@400", "big@uncapped"]
    for question in (MATH, POEM):
        sync = selector.select(choices, question)
        assert sync == await selector.aselect(choices, question)
        assert isinstance(sync, SelectorResult)


def test_routing_is_on_the_query_str(router: R2Router, engine: RouterQueryEngine, embedder: RecordingEmbedder) -> None:
    engine.query(MATH)
    assert embedder.texts == [MATH]


def test_routing_is_restricted_to_models_the_choices_realise(
    router: R2Router, pool: dict[str, RecordingLLM], summary_index: SummaryIndex
) -> None:
    tools = budgeted_query_engine_tools(
        {"small": pool["small"]}, (100, 400), lambda llm: summary_index.as_query_engine(llm=llm)
    )
    engine = RouterQueryEngine(selector=R2RouterSelector(router), query_engine_tools=tools, llm=MockLLM())
    result = R2RouterSelectorResult.from_response(engine.query(MATH))
    expected = router.route_text(MATH, allowed_models=["small"])
    assert (result.model, result.token_limit) == ("small", expected.token_limit)


def test_nearest_offered_budget_runs_and_both_budgets_are_reported(
    router: R2Router, pool: dict[str, RecordingLLM], vector_index: VectorStoreIndex
) -> None:
    # math -> big@400, but only big@100 and big@1000 are offered: the smallest >= 400 is 1000
    tools = budgeted_query_engine_tools(
        {"big": pool["big"]}, (100, 1000), lambda llm: vector_index.as_query_engine(llm=llm)
    )
    engine = RouterQueryEngine(selector=R2RouterSelector(router), query_engine_tools=tools, llm=MockLLM())
    result = R2RouterSelectorResult.from_response(engine.query(MATH))
    assert (result.token_limit, result.choice_budget, result.choice_name) == (400, 1000, "big@1000")
    assert {c.max_tokens for c in pool["big"].calls} == {1000}
    assert "400" in result.reason and "1000" in result.reason


@pytest.mark.parametrize("as_list", [False, True])
def test_choice_models_with_budgeted_engines_cap_the_engine_llm(
    as_list: bool,
    router: R2Router,
    pool: dict[str, RecordingLLM],
    vector_index: VectorStoreIndex,
    summary_index: SummaryIndex,
) -> None:
    tools = [
        QueryEngineTool.from_defaults(
            BudgetedQueryEngine(pool["small"], lambda llm: summary_index.as_query_engine(llm=llm)),
            name="summaries",
            description="Whole-document summaries.",
        ),
        QueryEngineTool.from_defaults(
            BudgetedQueryEngine(pool["big"], lambda llm: vector_index.as_query_engine(llm=llm)),
            name="vectors",
            description="Top-k retrieval.",
        ),
    ]
    mapping = ["small", "big"] if as_list else {"summaries": "small", "vectors": "big"}
    engine = RouterQueryEngine(
        selector=R2RouterSelector(router, choice_models=mapping), query_engine_tools=tools, llm=MockLLM()
    )
    for question in (MATH, POEM):
        decision = router.route_text(question)
        result = R2RouterSelectorResult.from_response(engine.query(question))
        assert result.choice_name == ("vectors" if decision.model == "big" else "summaries")
        assert result.choice_budget == result.token_limit == decision.token_limit
        assert pool[decision.model].calls[-1].max_tokens == decision.token_limit


def test_budgeted_engine_outside_a_router_runs_the_plain_llm(
    pool: dict[str, RecordingLLM], vector_index: VectorStoreIndex
) -> None:
    engine = BudgetedQueryEngine(pool["big"], lambda llm: vector_index.as_query_engine(llm=llm))
    engine.query(MATH)
    assert pool["big"].calls[-1].max_tokens is None


def test_selection_is_kept_per_query_bundle_only(router: R2Router) -> None:
    from llama_index.core.schema import QueryBundle

    selector = R2RouterSelector(router)
    asked, other = QueryBundle(MATH), QueryBundle(MATH)
    result = selector.select(["big@400", "small@100"], asked)
    assert selection_for(asked) is result
    assert selection_for(other) is None


def test_router_retriever_uses_the_selector(
    router: R2Router, vector_index: VectorStoreIndex, summary_index: SummaryIndex
) -> None:
    tools = [
        RetrieverTool.from_defaults(summary_index.as_retriever(), name="small@100", description="All nodes."),
        RetrieverTool.from_defaults(
            vector_index.as_retriever(similarity_top_k=1), name="big@400", description="Top-1."
        ),
    ]
    retriever = RouterRetriever(selector=R2RouterSelector(router), retriever_tools=tools, llm=MockLLM())
    assert len(retriever.retrieve(MATH)) == 1  # big -> the top-1 vector retriever
    assert len(retriever.retrieve(POEM)) == len(summary_index.docstore.docs)  # small -> every node


async def test_router_retriever_async(
    router: R2Router, vector_index: VectorStoreIndex, summary_index: SummaryIndex
) -> None:
    tools = [
        RetrieverTool.from_defaults(summary_index.as_retriever(), name="small@100", description="All nodes."),
        RetrieverTool.from_defaults(
            vector_index.as_retriever(similarity_top_k=1), name="big@400", description="Top-1."
        ),
    ]
    retriever = RouterRetriever(selector=R2RouterSelector(router), retriever_tools=tools, llm=MockLLM())
    assert len(await retriever.aretrieve(MATH)) == 1


def test_unmappable_choices_fail_with_the_choices_and_the_pool(
    router: R2Router, vector_index: VectorStoreIndex, summary_index: SummaryIndex
) -> None:
    tools = [
        QueryEngineTool.from_defaults(vector_index.as_query_engine(llm=MockLLM()), name="vector", description="v"),
        QueryEngineTool.from_defaults(summary_index.as_query_engine(llm=MockLLM()), name="summary", description="s"),
    ]
    engine = RouterQueryEngine(selector=R2RouterSelector(router), query_engine_tools=tools, llm=MockLLM())
    with pytest.raises(ConstraintError, match=r"\['vector', 'summary'\].*\['small', 'big'\]"):
        engine.query(MATH)


def test_selector_has_no_prompts(router: R2Router) -> None:
    selector = R2RouterSelector(router)
    assert selector.get_prompts() == {}
    selector.update_prompts({"anything": None})  # type: ignore[dict-item]
    assert selector.get_prompts() == {}


def test_result_is_immutable(router: R2Router) -> None:
    result = R2RouterSelector(router).select([ToolMetadata(description="d", name="big@400")], MATH)
    with pytest.raises(ValidationError):
        result.token_limit = 1


def test_router_without_embedder_is_refused_at_construction(router: R2Router) -> None:
    bare = R2Router(router.config, router.training_data)
    with pytest.raises(ConfigError, match=r"no embedder.*LlamaIndexEmbedder"):
        R2RouterSelector(bare)


def test_from_response_refuses_other_selectors_results(engine: RouterQueryEngine) -> None:
    from llama_index.core.base.response.schema import Response

    assert R2RouterSelectorResult.from_response(engine.query(POEM)).model == "small"
    with pytest.raises(InputError, match="R2RouterSelector"):
        R2RouterSelectorResult.from_response(Response("x", metadata={"selector_result": SelectorResult(selections=[])}))


@pytest.mark.parametrize("options", [{"max_budget": 100}, {"lambda_": 1.0}, {"max_cost": 1e-4}])
def test_routing_options_reach_the_router(router: R2Router, options: dict[str, float]) -> None:
    choices = [f"{m}@{b if b else 'uncapped'}" for m in ("small", "big") for b in BUDGETS]
    result = R2RouterSelector(router, **options).select(choices, MATH)  # type: ignore[arg-type]
    expected = router.route_text(MATH, **options)
    assert (result.model, result.token_limit) == (expected.model, expected.token_limit)
    assert (
        result.choice_name == choices[["small", "big"].index(expected.model) * 3 + BUDGETS.index(expected.token_limit)]
    )


def test_per_model_budgets_in_the_tool_helper(pool: dict[str, RecordingLLM], summary_index: SummaryIndex) -> None:
    tools = budgeted_query_engine_tools(
        pool, {"small": (100,), "big": (400, None)}, lambda llm: summary_index.as_query_engine(llm=llm)
    )
    assert [t.metadata.name for t in tools] == ["small@100", "big@400", "big@uncapped"]
    assert "big" in (tools[2].metadata.description or "") and "uncapped" in tools[2].metadata.description
    with pytest.raises(ConfigError, match="no tools to build"):
        budgeted_query_engine_tools(pool, {}, lambda llm: summary_index.as_query_engine(llm=llm))


@pytest.mark.parametrize(
    ("options", "word"),
    [({"lambda_": 1.5}, "lambda"), ({"max_budget": 0}, "max_budget"), ({"max_cost": -1.0}, "max_cost")],
)
def test_bad_routing_options_fail_at_construction(router: R2Router, options: dict[str, Any], word: str) -> None:
    from r2router_integrations.llamaindex import R2RouterLLM

    with pytest.raises(ConfigError, match=word):
        R2RouterSelector(router, **options)
    with pytest.raises(ConfigError, match=word):
        R2RouterLLM(router, {"small": RecordingLLM()}, **options)


def test_unknown_model_names_warn_once_per_choice_set(router: R2Router, caplog: pytest.LogCaptureFixture) -> None:
    selector = R2RouterSelector(router)
    for _ in range(3):
        assert selector.select(["small@100", "gpt-9@100"], MATH).choice_name == "small@100"
    assert [r.getMessage().count("'gpt-9'") for r in caplog.records] == [1]
