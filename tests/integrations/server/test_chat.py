"""POST /v1/chat/completions through the official openai client: routing, budgets on the wire, bypass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from r2router_core import R2Router

from .support import KEYS, MATH_PROMPT, PARAMS, POEM_PROMPT, POOL, Stub, start_gateway


def _ask(client: OpenAI, prompt: str, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "r2router")
    return client.chat.completions.with_raw_response.create(messages=[{"role": "user", "content": prompt}], **kwargs)


def test_the_data_makes_the_two_topics_route_differently(router: R2Router) -> None:
    # from the training data's design: math needs the large model at 400 tokens, poems are fine on small at 100
    math, poem = router.route_text(MATH_PROMPT), router.route_text(POEM_PROMPT)
    assert (math.model, math.token_limit) == ("large", 400)
    assert (poem.model, poem.token_limit) == ("small", 100)


@pytest.mark.parametrize("prompt", [MATH_PROMPT, POEM_PROMPT])
def test_routes_to_the_routers_choice_with_its_budget_on_the_wire(
    client: OpenAI, stub: Stub, router: R2Router, prompt: str
) -> None:
    expected = router.route_text(prompt)
    raw = _ask(client, prompt)
    completion = raw.parse()
    (call,) = stub.requests
    assert call.model == expected.model
    assert call.body["model"] == f"upstream-{expected.model}-id"
    assert call.body[PARAMS[expected.model]] == expected.token_limit
    assert not {"max_tokens", "max_completion_tokens", "max_output_tokens"} - {PARAMS[expected.model]} & set(call.body)
    assert call.body["messages"] == [
        {"role": "system", "content": f"Use at most {expected.token_limit} tokens."},
        {"role": "user", "content": prompt},
    ]
    assert call.headers["authorization"] == f"Bearer {KEYS[expected.model]}"
    assert call.headers["x-stub"] == "stub-1"
    # the body comes back unchanged but for the model, which names the pool model
    assert completion.model == expected.model_full_name
    assert completion.choices[0].message.content == f"answer from {expected.model}"
    assert completion.usage.total_tokens == 8
    assert raw.headers["x-r2router-model"] == expected.model
    assert raw.headers["x-r2router-budget"] == str(expected.token_limit)
    assert float(raw.headers["x-r2router-predicted-quality"]) == pytest.approx(expected.predicted_quality, rel=1e-5)
    assert float(raw.headers["x-r2router-predicted-cost"]) == pytest.approx(expected.predicted_cost, rel=1e-5)
    assert raw.headers["x-r2router-fallbacks"] == "0"


@pytest.mark.parametrize("name", POOL)
def test_each_upstream_gets_the_cap_under_its_own_param_name(client: OpenAI, stub: Stub, name: str) -> None:
    raw = _ask(client, POEM_PROMPT, extra_body={"r2router": {"allowed_models": [name]}})
    (call,) = stub.requests
    assert call.model == name
    assert raw.headers["x-r2router-budget"] == "100"  # equal quality everywhere: the shortest budget wins
    assert call.body[PARAMS[name]] == 100
    for other in {"max_tokens", "max_completion_tokens", "max_output_tokens"} - {PARAMS[name]}:
        assert other not in call.body
    assert "r2router" not in call.body


def test_options_in_the_model_string_constrain_routing(client: OpenAI, stub: Stub, router: R2Router) -> None:
    expected = router.route_text(MATH_PROMPT, max_budget=100, allowed_models=["small", "medium"])
    raw = _ask(client, MATH_PROMPT, model="r2router:max_budget=100,allowed_models=small|medium")
    assert (raw.headers["x-r2router-model"], raw.headers["x-r2router-budget"]) == (expected.model, "100")
    assert stub.requests[0].model == expected.model


def test_lambda_one_picks_the_cheapest_arm(client: OpenAI, stub: Stub, router: R2Router) -> None:
    expected = router.route_text(MATH_PROMPT, lambda_=1.0)
    raw = _ask(client, MATH_PROMPT, extra_body={"r2router": {"lambda": 1.0}})
    assert raw.headers["x-r2router-model"] == expected.model == "small"
    assert raw.headers["x-r2router-budget"] == str(expected.token_limit)


def test_the_clients_max_tokens_bounds_the_routed_budget(client: OpenAI, stub: Stub, router: R2Router) -> None:
    """The core's rule: the client's cap is an upper bound on the budget the router may choose."""
    assert router.route_text(MATH_PROMPT).token_limit == 400  # unbounded, math goes to large @ 400
    expected = router.route_text(MATH_PROMPT, max_tokens=250)
    assert expected.token_limit == 100 and expected.max_tokens == 100  # only the 100 arms fit under 250
    raw = _ask(client, MATH_PROMPT, max_tokens=250)
    (call,) = stub.requests
    assert call.model == expected.model and raw.headers["x-r2router-budget"] == "100"
    assert call.body["max_completion_tokens"] == 100 and "max_tokens" not in call.body
    assert call.body["messages"][0]["content"] == "Use at most 100 tokens."
    stub.requests.clear()
    _ask(client, MATH_PROMPT, max_completion_tokens=5000)  # a looser cap changes nothing
    assert stub.requests[0].body["max_completion_tokens"] == 400


def test_a_client_cap_below_every_budget_is_sent_as_is(client: OpenAI, stub: Stub, router: R2Router) -> None:
    expected = router.route_text(MATH_PROMPT, max_tokens=30)
    assert expected.token_limit == 100 and expected.max_tokens == 30  # the smallest budget's arms, capped at 30
    raw = _ask(client, MATH_PROMPT, max_tokens=30)
    (call,) = stub.requests
    assert call.model == expected.model and raw.headers["x-r2router-budget"] == "30"
    assert call.body["max_completion_tokens"] == 30
    assert call.body["messages"][0]["content"] == "Use at most 30 tokens."


def test_an_uncapped_budget_sends_no_cap_and_no_instruction(client: OpenAI, stub: Stub, router: R2Router) -> None:
    expected = router.route_text(MATH_PROMPT, allowed_models=["medium"])
    assert expected.token_limit is None  # the data's design: medium is best uncapped on math
    raw = _ask(client, MATH_PROMPT, extra_body={"r2router": {"allowed_models": ["medium"]}})
    (call,) = stub.requests
    assert raw.headers["x-r2router-model"] == "medium" and raw.headers["x-r2router-budget"] == "uncapped"
    assert "max_output_tokens" not in call.body
    assert call.body["messages"] == [{"role": "user", "content": MATH_PROMPT}]
    stub.requests.clear()
    raw = _ask(client, MATH_PROMPT, max_tokens=600, extra_body={"r2router": {"allowed_models": ["medium"]}})
    # uncapped does not fit under the client's 600: the router picks medium's largest budget that does
    assert stub.requests[0].body["max_output_tokens"] == 400 and raw.headers["x-r2router-budget"] == "400"
    assert stub.requests[0].body["messages"][0]["content"] == "Use at most 400 tokens."


def test_a_system_message_gets_the_instruction_appended(client: OpenAI, stub: Stub) -> None:
    client.chat.completions.create(
        model="r2router",
        messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": POEM_PROMPT}],
    )
    assert stub.requests[0].body["messages"][0] == {
        "role": "system",
        "content": "You are terse.\n\nUse at most 100 tokens.",
    }


@pytest.mark.parametrize("model", ["medium", "acme/medium-1"])
def test_naming_a_pool_model_bypasses_routing(client: OpenAI, stub: Stub, model: str) -> None:
    raw = _ask(client, MATH_PROMPT, model=model, max_tokens=123, temperature=0.2)
    (call,) = stub.requests
    assert call.model == "medium"
    assert call.body["max_output_tokens"] == 123 and call.body["temperature"] == 0.2
    assert call.body["messages"] == [{"role": "user", "content": MATH_PROMPT}]  # no instruction
    assert raw.headers["x-r2router-model"] == "medium" and raw.headers["x-r2router-budget"] == "123"
    assert "x-r2router-predicted-quality" not in raw.headers
    assert raw.parse().model == "acme/medium-1"


def test_bypass_without_a_cap_sends_none(client: OpenAI, stub: Stub) -> None:
    raw = _ask(client, "anything", model="small")
    assert "max_tokens" not in stub.requests[0].body and raw.headers["x-r2router-budget"] == "uncapped"


def test_no_length_instruction_sends_the_cap_only(router: R2Router, upstreams_file: Path, stub: Stub) -> None:
    server = start_gateway(router, upstreams_file, length_instruction=False)
    try:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        client.chat.completions.create(model="r2router", messages=[{"role": "user", "content": MATH_PROMPT}])
    finally:
        server.__exit__()
    (call,) = stub.requests
    assert call.body["messages"] == [{"role": "user", "content": MATH_PROMPT}]
    assert call.body["max_completion_tokens"] == 400


def test_other_request_fields_are_forwarded_untouched(client: OpenAI, stub: Stub) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    client.chat.completions.create(
        model="r2router",
        messages=[{"role": "user", "content": POEM_PROMPT}],
        temperature=0.7,
        top_p=0.5,
        seed=3,
        tools=tools,
        user="u-1",
    )
    body = stub.requests[0].body
    assert (body["temperature"], body["top_p"], body["seed"], body["tools"], body["user"]) == (
        0.7,
        0.5,
        3,
        tools,
        "u-1",
    )
