"""Each routed call is priced by its prompt's tokens as sent (issue 20): input cost can change the route."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from r2router_integrations.langchain import R2RouterChatModel
from r2router_integrations.langchain.messages import sent_text
from r2router_integrations.langchain.testing import FakePoolChatModel
from tests.integrations.shared_cases import LONG_PROMPT, SHORT_PROMPT, input_price_router

ROUTER = input_price_router()
GOOD, CHEAP = ROUTER.config.models


def _llm() -> tuple[R2RouterChatModel, dict[str, FakePoolChatModel]]:
    pool = {name: FakePoolChatModel(model_name=name, response="a short summary") for name in ("good", "cheap")}
    return R2RouterChatModel(router=ROUTER, models=dict(pool)), pool


def test_a_long_prompt_goes_to_the_cheaper_input_and_a_short_one_to_the_better_model() -> None:
    llm, pool = _llm()
    short = llm.invoke(SHORT_PROMPT).response_metadata["r2router"]
    long = llm.invoke(LONG_PROMPT).response_metadata["r2router"]
    assert (short["model"], long["model"]) == ("good", "cheap")
    assert ROUTER.route_text(LONG_PROMPT, input_tokens=0).model == "good"  # unpriced, the long prompt looks alike
    # the decision's cost: the counted prompt tokens x the input price, plus predicted output x the output price
    n_long = ROUTER.count_tokens([LONG_PROMPT])[0]
    assert long["predicted_cost"] == pytest.approx((n_long * CHEAP.input_price + 100 * CHEAP.output_price) / 1e6)
    n_short = ROUTER.count_tokens([SHORT_PROMPT])[0]
    assert short["predicted_cost"] == pytest.approx((n_short * GOOD.input_price + 100 * GOOD.output_price) / 1e6)
    # the call's cost: the tokens the model reported x the prices, input and output apart
    reported_in = sum(len(m.text.split()) for m in pool["cheap"].calls[-1].messages)
    assert long["input_cost_usd"] == pytest.approx(reported_in * CHEAP.input_price / 1e6)
    assert long["output_cost_usd"] == pytest.approx(3 * CHEAP.output_price / 1e6)  # "a short summary"
    assert long["cost_usd"] == pytest.approx(long["input_cost_usd"] + long["output_cost_usd"])


def test_every_message_as_sent_is_counted_not_only_the_routed_text() -> None:
    llm, _ = _llm()
    context = SystemMessage(LONG_PROMPT)  # a long system prompt; the call is routed on the short human message
    assert llm.invoke([context, HumanMessage(SHORT_PROMPT)]).response_metadata["r2router"]["model"] == "cheap"
    assert llm.invoke([HumanMessage(SHORT_PROMPT)]).response_metadata["r2router"]["model"] == "good"


def test_a_callers_input_tokens_win() -> None:
    llm, _ = _llm()
    assert llm.invoke(LONG_PROMPT, input_tokens=5).response_metadata["r2router"]["model"] == "good"
    with pytest.raises(ValueError, match="input_tokens"):
        llm.invoke(SHORT_PROMPT, input_tokens=-1)


def test_tool_schemas_are_counted_as_json() -> None:
    def lookup(city: str) -> str:
        """Look up the weather of a city."""
        return city

    bare = sent_text([HumanMessage(SHORT_PROMPT)])
    with_tools = sent_text([HumanMessage(SHORT_PROMPT)], [lookup])
    assert with_tools.startswith(bare) and '"name": "lookup"' in with_tools and "Look up the weather" in with_tools
    assert ROUTER.count_tokens([with_tools])[0] > ROUTER.count_tokens([bare])[0]
