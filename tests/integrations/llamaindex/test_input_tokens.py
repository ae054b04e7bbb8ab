"""Each routed call is priced by its prompt's tokens as sent (issue 20): input cost can change the route."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from r2router_integrations.llamaindex import R2RouterLLM, R2RouterSelector, routing_query
from r2router_integrations.llamaindex.testing import RecordingLLM
from tests.integrations.shared_cases import LONG_PROMPT, SHORT_PROMPT, input_price_router

ROUTER = input_price_router()
GOOD, CHEAP = ROUTER.config.models


def _llm(**settings: object) -> tuple[R2RouterLLM, dict[str, RecordingLLM]]:
    pool = {name: RecordingLLM(name=name, is_chat=True, answer_words=20) for name in ("good", "cheap")}
    return R2RouterLLM(ROUTER, dict(pool), **settings), pool


def _user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


def test_a_long_prompt_goes_to_the_cheaper_input_and_a_short_one_to_the_better_model() -> None:
    llm, pool = _llm()
    short = llm.chat([_user(SHORT_PROMPT)]).additional_kwargs["r2router"]
    long = llm.chat([_user(LONG_PROMPT)]).additional_kwargs["r2router"]
    assert (short["model"], long["model"]) == ("good", "cheap")
    n_long = ROUTER.count_tokens([LONG_PROMPT])[0]
    assert long["predicted_cost"] == pytest.approx((n_long * CHEAP.input_price + 100 * CHEAP.output_price) / 1e6)
    reported_in = len(pool["cheap"].calls[-1].prompt.split())
    assert long["input_cost_usd"] == pytest.approx(reported_in * CHEAP.input_price / 1e6)
    assert long["output_cost_usd"] == pytest.approx(20 * CHEAP.output_price / 1e6)
    assert long["cost_usd"] == pytest.approx(long["input_cost_usd"] + long["output_cost_usd"])
    assert llm.complete(LONG_PROMPT).additional_kwargs["r2router"]["model"] == "cheap"


def test_retrieved_context_is_counted_when_routing_on_the_question() -> None:
    llm, _ = _llm(route_on="query")
    rag_prompt = f"Context information is below.\n{LONG_PROMPT}\nQuery: {SHORT_PROMPT}\nAnswer:"
    with routing_query(SHORT_PROMPT):  # routed on the question, priced on the templated prompt it is sent
        assert llm.complete(rag_prompt).additional_kwargs["r2router"]["model"] == "cheap"
        assert llm.complete(SHORT_PROMPT).additional_kwargs["r2router"]["model"] == "good"
    context = ChatMessage(role=MessageRole.SYSTEM, content=LONG_PROMPT)
    assert llm.chat([context, _user(SHORT_PROMPT)]).additional_kwargs["r2router"]["model"] == "cheap"


def test_a_callers_input_tokens_win() -> None:
    llm, _ = _llm()
    assert llm.chat([_user(LONG_PROMPT)], input_tokens=5).additional_kwargs["r2router"]["model"] == "good"


def test_the_selector_prices_the_query() -> None:
    selector = R2RouterSelector(ROUTER)
    choices = ["good@uncapped", "cheap@uncapped"]
    assert selector.select(choices, SHORT_PROMPT).model == "good"
    long = selector.select(choices, LONG_PROMPT)
    n_long = ROUTER.count_tokens([LONG_PROMPT])[0]
    assert long.model == "cheap"
    assert long.predicted_cost == pytest.approx((n_long * CHEAP.input_price + 100 * CHEAP.output_price) / 1e6)
