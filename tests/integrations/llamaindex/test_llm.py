"""R2RouterLLM: every call routed to a pool LLM at the decided budget, decision in additional_kwargs."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.llms import LLM
from llama_index.core.prompts import PromptTemplate

from r2router_core import R2Router
from r2router_core.errors import ConfigError, UnknownModelError
from r2router_integrations.llamaindex import BudgetedQueryEngine, R2RouterLLM, routing_query, with_budget
from r2router_integrations.llamaindex.testing import RecordingLLM

from .conftest import MATH, POEM, RecordingEmbedder


def _check(response: Any, router: R2Router, question: str, pool: dict[str, RecordingLLM], method: str) -> None:
    """The oracle: the response and the recorded call match router.route_text(question)."""
    decision = router.route_text(question)
    info = response.additional_kwargs["r2router"]
    assert (info["model"], info["token_limit"]) == (decision.model, decision.token_limit)
    call = pool[decision.model].calls[-1]
    assert (call.method, call.max_tokens) == (method, decision.token_limit)


@pytest.mark.parametrize("question", [MATH, POEM])
def test_complete_and_chat(question: str, router: R2Router, pool: dict[str, RecordingLLM]) -> None:
    llm = R2RouterLLM(router, pool)
    response = llm.complete(question)
    _check(response, router, question, pool, "complete")
    assert len(response.text.split()) == router.route_text(question).token_limit  # the cap really cuts
    chat = llm.chat([ChatMessage(role=MessageRole.SYSTEM, content="Be brief."), ChatMessage(content=question)])
    _check(chat, router, question, pool, "chat")


@pytest.mark.parametrize("question", [MATH, POEM])
def test_streaming(question: str, router: R2Router, pool: dict[str, RecordingLLM]) -> None:
    llm = R2RouterLLM(router, pool)
    chunks = list(llm.stream_complete(question))
    assert all("r2router" in c.additional_kwargs for c in chunks)
    _check(chunks[-1], router, question, pool, "stream_complete")
    assert len(chunks) == router.route_text(question).token_limit
    chat_chunks = list(llm.stream_chat([ChatMessage(content=question)]))
    _check(chat_chunks[-1], router, question, pool, "stream_chat")


@pytest.mark.parametrize("question", [MATH, POEM])
async def test_async_variants(question: str, router: R2Router, pool: dict[str, RecordingLLM]) -> None:
    llm = R2RouterLLM(router, pool)
    _check(await llm.acomplete(question), router, question, pool, "acomplete")
    _check(await llm.achat([ChatMessage(content=question)]), router, question, pool, "achat")
    chunks = [c async for c in await llm.astream_complete(question)]
    _check(chunks[-1], router, question, pool, "astream_complete")
    chat_chunks = [c async for c in await llm.astream_chat([ChatMessage(content=question)])]
    _check(chat_chunks[-1], router, question, pool, "astream_chat")


def test_budgeted_copies_are_cached_and_pool_llms_untouched(router: R2Router, pool: dict[str, RecordingLLM]) -> None:
    llm = R2RouterLLM(router, pool)
    llm.complete(MATH)
    llm.complete(MATH)
    llm.complete(POEM)
    assert sorted(llm._children, key=str) == [("big", 400), ("small", 100)]
    assert pool["big"].max_tokens is None and pool["small"].max_tokens is None


def test_chat_routes_on_the_last_user_message(
    router: R2Router, pool: dict[str, RecordingLLM], embedder: RecordingEmbedder
) -> None:
    llm = R2RouterLLM(router, pool)
    llm.chat([ChatMessage(role=MessageRole.SYSTEM, content="system text"), ChatMessage(content=POEM)])
    assert embedder.texts == [POEM]


def test_route_on_query_uses_the_routing_query(
    router: R2Router, pool: dict[str, RecordingLLM], embedder: RecordingEmbedder, vector_index: VectorStoreIndex
) -> None:
    by_prompt = R2RouterLLM(router, pool)
    vector_index.as_query_engine(llm=by_prompt).query(MATH)
    assert len(embedder.texts) == 1 and embedder.texts[0] != MATH and MATH in embedder.texts[0]  # the RAG prompt

    embedder.texts.clear()
    by_query = R2RouterLLM(router, pool, route_on="query")
    with routing_query(MATH):
        response = vector_index.as_query_engine(llm=by_query).query(MATH)
    assert embedder.texts == [MATH]
    assert pool["big"].calls[-1].max_tokens == 400 and str(response).startswith("big-0")


async def test_routing_query_reaches_async_calls(
    router: R2Router, pool: dict[str, RecordingLLM], embedder: RecordingEmbedder
) -> None:
    llm = R2RouterLLM(router, pool, route_on="query")
    with llm.routing_query(POEM):
        await llm.acomplete("a long templated prompt with context and the question")
    assert embedder.texts == [POEM]


def test_query_extractor_and_fallback_to_the_prompt(
    router: R2Router, pool: dict[str, RecordingLLM], embedder: RecordingEmbedder
) -> None:
    template = "Context: lots of text\nQuery: {q}\nAnswer:"
    extract = lambda prompt: prompt.split("Query: ")[1].split("\n")[0] if "Query: " in prompt else None  # noqa: E731
    llm = R2RouterLLM(router, pool, route_on="query", query_extractor=extract)
    llm.complete(template.format(q=MATH))
    llm.complete("no question marker here")  # extractor gives None -> the prompt
    assert embedder.texts == [MATH, "no question marker here"]


def test_routing_options_restrict_the_choice(router: R2Router, pool: dict[str, RecordingLLM]) -> None:
    llm = R2RouterLLM(router, pool, max_budget=100)
    info = llm.complete(MATH).additional_kwargs["r2router"]
    expected = router.route_text(MATH, max_budget=100)
    assert (info["model"], info["token_limit"]) == (expected.model, 100)
    only_small = R2RouterLLM(router, {"small": pool["small"]})
    assert only_small.complete(MATH).additional_kwargs["r2router"]["model"] == "small"


def test_budget_instruction(router: R2Router, pool: dict[str, RecordingLLM]) -> None:
    llm = R2RouterLLM(router, pool, budget_instruction="Answer in at most {budget} tokens.")
    llm.complete(MATH)
    assert pool["big"].calls[-1].prompt.endswith("Answer in at most 400 tokens.")
    llm.chat([ChatMessage(role=MessageRole.SYSTEM, content="Be kind."), ChatMessage(content=POEM)])
    assert pool["small"].calls[-1].prompt.startswith("Be kind.\n\nAnswer in at most 100 tokens.\n" + POEM)


def test_metadata(router: R2Router) -> None:
    pool = {
        "small": RecordingLLM(name="small", context_window=8000, is_chat=True),
        "big": RecordingLLM(name="big", context_window=2000, max_tokens=1000, is_chat=True),
    }
    meta = R2RouterLLM(router, pool).metadata
    assert meta.context_window == 2000
    assert meta.num_output == 1000  # uncapped runs at the pool's own cap, above the 400 budget
    assert meta.is_chat_model and not meta.is_function_calling_model
    assert meta.model_name == "r2router[small,big]"
    assert R2RouterLLM(router, pool, max_budget=100).metadata.num_output == 100  # max_budget excludes uncapped
    roomy = {"small": RecordingLLM(name="small", max_tokens=5000)}
    assert R2RouterLLM(router, roomy).metadata.num_output == 5000


def test_configuration_errors(router: R2Router, pool: dict[str, RecordingLLM]) -> None:
    with pytest.raises(UnknownModelError, match=r"\['gpt-9'\].*\['small', 'big'\]"):
        R2RouterLLM(router, {"gpt-9": pool["big"]})
    with pytest.raises(ConfigError, match="non-empty pool"):
        R2RouterLLM(router, {})
    with pytest.raises(ConfigError, match="no embedder"):
        R2RouterLLM(R2Router(router.config, router.training_data), pool)


def test_with_budget_needs_a_max_tokens_field(router: R2Router) -> None:
    from llama_index.core.llms.mock import MockFunctionCallingLLM

    assert "max_tokens" not in MockFunctionCallingLLM.model_fields
    with pytest.raises(ConfigError, match=r"MockFunctionCallingLLM has no max_tokens field.*apply_budget"):
        with_budget(MockFunctionCallingLLM(), 100)
    with pytest.raises(ConfigError, match="no max_tokens field"):
        R2RouterLLM(router, {"small": MockFunctionCallingLLM()})  # at construction, not at the first call
    with pytest.raises(ConfigError, match="no max_tokens field"):
        BudgetedQueryEngine(MockFunctionCallingLLM(), lambda llm: None)  # type: ignore[arg-type,return-value]


def test_custom_apply_budget(router: R2Router, pool: dict[str, RecordingLLM]) -> None:
    seen: list[tuple[str, int | None]] = []

    def apply(llm: LLM, budget: int | None) -> LLM:
        seen.append((llm.metadata.model_name, budget))
        return llm.model_copy(update={"answer_words": 7})

    out = R2RouterLLM(router, pool, apply_budget=apply).complete(MATH)
    assert seen == [("big", 400)] and len(out.text.split()) == 7


# -- token counting ------------------------------------------------------------------
def _counts(handler: TokenCountingHandler) -> tuple[int, int, int]:
    return len(handler.llm_token_counts), handler.prompt_llm_token_count, handler.completion_llm_token_count


def _run(llm: LLM, vector_index: VectorStoreIndex) -> None:
    """A query (one LLM call per retrieved chunk) plus the four direct call kinds."""
    vector_index.as_query_engine(llm=llm, response_mode="refine").query(MATH)
    llm.complete(MATH)
    llm.chat([ChatMessage(content=MATH)])
    list(llm.stream_complete(MATH))
    list(llm.stream_chat([ChatMessage(content=MATH)]))


def _baseline(router: R2Router, index: VectorStoreIndex) -> tuple[int, int, int]:
    """The same calls on the chosen pool LLM alone (big@400 for MATH), counted through Settings."""
    handler = TokenCountingHandler()
    Settings.callback_manager = CallbackManager([handler])
    child = with_budget(RecordingLLM(name="big", answer_words=600), router.route_text(MATH).token_limit)
    child.callback_manager = Settings.callback_manager
    _run(child, index)
    return _counts(handler)


@pytest.mark.parametrize("handler_on", ["settings", "pool_llm", "both"])
def test_token_counting_counts_each_call_once(
    handler_on: str, router: R2Router, vector_index: VectorStoreIndex, clean_settings: None
) -> None:
    """Same number of LLM events and tokens as the chosen pool LLM alone, wherever the handler sits.

    (LlamaIndex's response synthesizers overwrite the engine LLM's callback manager
    with ``Settings.callback_manager``, so handlers go there or on the pool LLM.)
    """
    handler = TokenCountingHandler()
    manager = CallbackManager([handler])
    big = RecordingLLM(name="big", answer_words=600)
    if handler_on in ("pool_llm", "both"):
        big.callback_manager = manager
    Settings.callback_manager = manager if handler_on in ("settings", "both") else CallbackManager([])
    with routing_query(MATH):  # every call (refine prompts too) routes to big@400, like the baseline
        # the baseline sends the prompts as they are: compare without the length instruction
        _run(R2RouterLLM(router, {"big": big}, route_on="query", length_instruction=False), vector_index)
    got = _counts(handler)

    expected = _baseline(router, vector_index)
    assert expected[0] >= 5 and expected[2] >= 5 * 400  # refine calls + 4 direct calls, 400 tokens each
    assert got == expected


def test_token_counting_with_settings_llm(
    router: R2Router, pool: dict[str, RecordingLLM], vector_index: VectorStoreIndex, clean_settings: None
) -> None:
    handler = TokenCountingHandler()
    Settings.callback_manager = CallbackManager([handler])
    Settings.llm = R2RouterLLM(router, pool)
    out = Settings.llm.complete(MATH)  # the getter hands the wrapper Settings' callback manager
    assert out.additional_kwargs["r2router"]["model"] == "big"
    assert len(handler.llm_token_counts) == 1
    assert handler.completion_llm_token_count == 400


def test_settings_llm_drives_a_query_engine(
    router: R2Router, pool: dict[str, RecordingLLM], vector_index: VectorStoreIndex, clean_settings: None
) -> None:
    Settings.llm = R2RouterLLM(router, pool, route_on="query")
    with routing_query(POEM):
        response = vector_index.as_query_engine().query(POEM)
    assert str(response).startswith("small-0")
    assert pool["small"].calls[-1].max_tokens == 100


def test_predict_with_a_template(router: R2Router, pool: dict[str, RecordingLLM]) -> None:
    llm = R2RouterLLM(router, pool)
    out = llm.predict(PromptTemplate("{q}"), q=POEM)
    assert out.split()[0] == "small-0" and len(out.split()) == 100


def test_system_messages_alone_are_not_a_prompt(router: R2Router, pool: dict[str, RecordingLLM]) -> None:
    from r2router_core import EmptyPromptError

    llm = R2RouterLLM(router, pool)
    with pytest.raises(EmptyPromptError, match="system messages alone are instructions"):
        llm.chat([ChatMessage(role=MessageRole.SYSTEM, content="You are terse.")])
    assert all(child.calls == [] for child in pool.values())
