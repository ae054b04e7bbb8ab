"""Reading client requests and writing upstream ones, without a server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from r2router_core import STRUCTURED_OUTPUT_MIN_BUDGET, FailureKind, FallbackPolicy, R2Router, RoutingOptions
from r2router_core.execute import Attempt, CallPlan, Done, ServingSettings
from r2router_integrations.server import GatewayError, Upstream
from r2router_integrations.server.execution import _attempt_headers
from r2router_integrations.server.protocol import (
    conversation_text,
    last_user_text,
    parse_chat_request,
    parse_json_body,
    parse_route_request,
    upstream_request_body,
)
from r2router_integrations.server.proxy import SSERewriter, UpstreamFailure

from .support import MATH_PROMPT, build_router

ROUTER: R2Router = build_router()
CONFIG = ROUTER.config
USER = [{"role": "user", "content": "hi there"}]


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": "r2router", "messages": USER, **fields}


def _error(fn: Any, *args: Any) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        fn(*args)
    return info.value


# -- the model field and the r2router object ------------------------------------------------
def test_plain_r2router_routes_with_default_options() -> None:
    req = parse_chat_request(_chat(), CONFIG)
    assert req.target is None and req.options == RoutingOptions() and req.client_cap is None and not req.stream


def test_options_in_the_model_string() -> None:
    model = "r2router:lambda=0.99,max_budget=400,max_cost=0.002,allowed_models=small|large"
    req = parse_chat_request(_chat(model=model), CONFIG)
    assert req.options == RoutingOptions(
        lambda_=0.99, allowed_models=("small", "large"), max_budget=400, max_cost=0.002
    )


def test_the_body_object_wins_over_the_model_string_and_is_not_forwarded() -> None:
    body = _chat(model="r2router:lambda=0.5,max_budget=100", r2router={"lambda": 0.99, "allowed_models": ["small"]})
    req = parse_chat_request(body, CONFIG)
    assert req.options == RoutingOptions(lambda_=0.99, allowed_models=("small",), max_budget=100)
    assert "r2router" not in req.body and "model" not in req.body


@pytest.mark.parametrize("model", ["large", "acme/large-1"])
def test_a_pool_model_by_name_or_full_name_bypasses_routing(model: str) -> None:
    assert parse_chat_request(_chat(model=model), CONFIG).target == "large"


@pytest.mark.parametrize(
    ("fields", "status", "param"),
    [
        ({"model": "gpt-4o"}, 404, "model"),
        ({"model": ""}, 400, "model"),
        ({"model": None}, 400, "model"),
        ({"model": "r2router:lambda"}, 400, "model"),
        ({"model": "r2router:temperature=1"}, 400, "model"),
        ({"model": "r2router:lambda=high"}, 400, "model"),
        ({"model": "r2router:lambda=2"}, 400, "model"),
        ({"r2router": {"lambda": -0.1}}, 400, "r2router.lambda"),
        ({"r2router": {"max_budget": 0}}, 400, "r2router.max_budget"),
        ({"r2router": {"max_budget": 1.5}}, 400, "r2router.max_budget"),
        ({"r2router": {"max_cost": -1}}, 400, "r2router.max_cost"),
        ({"r2router": {"allowed_models": [1]}}, 400, "r2router.allowed_models"),
        ({"r2router": {"allowed_models": []}}, 400, "r2router.allowed_models"),
        ({"r2router": {"budget": 100}}, 400, "r2router"),
        ({"r2router": [1]}, 400, "r2router"),
        ({"max_tokens": 0}, 400, "max_tokens"),
        ({"max_completion_tokens": "10"}, 400, "max_completion_tokens"),
        ({"stream": "yes"}, 400, "stream"),
        ({"messages": []}, 400, "messages"),
        ({"messages": None}, 400, "messages"),
        ({"messages": "hi"}, 400, "messages"),
        ({"messages": [{"content": "no role"}]}, 400, "messages[0]"),
    ],
)
def test_bad_fields_are_400_or_404_naming_the_field(fields: dict[str, Any], status: int, param: str) -> None:
    err = _error(parse_chat_request, _chat(**fields), CONFIG)
    assert (err.status, err.param) == (status, param)
    assert err.to_dict()["error"].keys() == {"message", "type", "param", "code"}


def test_the_client_cap_is_the_smaller_of_its_two_names() -> None:
    req = parse_chat_request(_chat(max_tokens=300, max_completion_tokens=120), CONFIG)
    assert req.client_cap == 120
    assert "max_tokens" not in req.body and "max_completion_tokens" not in req.body


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_bodies_that_are_not_json_objects(raw: bytes) -> None:
    err = _error(parse_json_body, raw)
    assert (err.status, err.code) == (400, "invalid_json")


def test_route_request_takes_a_prompt_or_messages() -> None:
    assert parse_route_request({"prompt": "p"}, CONFIG) == ("p", RoutingOptions())
    text, opts = parse_route_request({"messages": USER, "r2router": {"max_budget": 100}}, CONFIG)
    assert (text, opts.max_budget) == ("hi there", 100)
    assert _error(parse_route_request, {"model": "small", "prompt": "p"}, CONFIG).param == "model"
    assert _error(parse_route_request, {"prompt": "  "}, CONFIG).param == "prompt"


# -- the text routed on -------------------------------------------------------------------
def test_routes_on_the_last_user_message_and_text_parts_of_arrays() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "second"},
                {"type": "image_url", "image_url": {"url": "data:..."}},
                {"type": "text", "text": "question"},
            ],
        },
    ]
    assert last_user_text(messages) == "second\nquestion"


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "system", "content": "x"}, {"role": "assistant", "content": "y"}],
        [{"role": "user", "content": "   "}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}],
        [{"role": "user", "content": None}],
    ],
)
def test_no_user_text_is_a_400(messages: list[dict[str, Any]]) -> None:
    err = _error(last_user_text, messages)
    assert err.status == 400 and err.param is not None and err.param.startswith("messages")


# -- the upstream body ---------------------------------------------------------------------
def test_upstream_body_uses_the_upstreams_model_id_and_param_name() -> None:
    up = Upstream("large", "http://h/v1", "prov/large", max_tokens_param="max_completion_tokens")
    req = parse_chat_request(_chat(max_tokens=1000, temperature=0.3, r2router={"lambda": 0.9}), CONFIG)
    body = upstream_request_body(req.body, up, cap=400, instruct=True)
    assert body["model"] == "prov/large" and body["max_completion_tokens"] == 400 and body["temperature"] == 0.3
    assert "max_tokens" not in body and "r2router" not in body
    assert body["messages"][0] == {"role": "system", "content": "Use at most 400 tokens."}
    assert req.body["messages"] == USER  # the client's request is left alone
    plain = upstream_request_body(req.body, up, cap=400, instruct=False)
    assert plain["messages"] == USER
    uncapped = upstream_request_body(req.body, up, cap=None, instruct=True)
    assert "max_completion_tokens" not in uncapped and uncapped["messages"] == USER


@pytest.mark.parametrize(
    "fields",
    [
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"functions": [{"name": "f", "parameters": {}}]},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
        {"response_format": {"type": "json_object"}},
    ],
)
def test_tools_and_json_output_get_the_budget_floor(fields: dict[str, Any]) -> None:
    assert parse_chat_request(_chat(**fields), CONFIG).options.min_budget == STRUCTURED_OUTPUT_MIN_BUDGET
    assert parse_chat_request(_chat(response_format={"type": "text"}), CONFIG).options.min_budget is None


# -- attempts: the core's call plan, walked with the proxy's failures ------------------------
def _attempts(decision: Any, fallbacks: int) -> list[Any]:
    """Every attempt the gateway's plan makes when each upstream fails with a 5xx."""
    plan = CallPlan.routed(decision, ServingSettings(fallbacks=fallbacks), source="gateway")
    attempts = []
    while not isinstance(step := plan.next(), Done):
        attempts.append(step)
        plan.failed(step, UpstreamFailure(step.model, FailureKind.SERVER_ERROR, "HTTP 503", status=503))
    assert [f.kind for f in step.outcome.failures] == ["http_5xx"] * len(attempts)
    return attempts


def test_attempts_follow_the_candidates_one_per_model() -> None:
    decision = ROUTER.route_text(MATH_PROMPT)
    attempts = _attempts(decision, 2)
    # oracle: the best eligible candidate of each model, in candidate order
    best: dict[str, Any] = {}
    for c in decision.candidates:
        if c.eligible:
            best.setdefault(c.model, c)
    assert [(a.model, a.token_limit) for a in attempts] == [(c.model, c.token_limit) for c in best.values()]
    assert attempts[0].model == decision.model and attempts[0].token_limit == decision.token_limit
    assert len(_attempts(decision, 0)) == 1
    capped = _attempts(ROUTER.route_text(MATH_PROMPT, max_tokens=150), 2)
    assert all(a.cap == (150 if a.token_limit is None else min(a.token_limit, 150)) for a in capped)


def test_attempts_skip_excluded_models() -> None:
    decision = ROUTER.route_text(MATH_PROMPT, allowed_models=["small", "medium"])
    assert {a.model for a in _attempts(decision, 5)} == {"small", "medium"}


def test_bypass_uses_the_clients_cap_only() -> None:
    plan = CallPlan.fixed(CONFIG.models[1], None, cap=77, policy=FallbackPolicy(), instruct=False)
    attempt = plan.next()
    assert isinstance(attempt, Attempt)
    assert (attempt.model, attempt.token_limit, attempt.cap, attempt.instruction_budget) == ("medium", None, 77, None)
    headers = _attempt_headers(attempt, routed=False)
    assert headers["x-r2router-budget"] == "77" and headers["x-r2router-fallbacks"] == "0"
    assert "x-r2router-predicted-quality" not in headers


# -- SSE rewriting --------------------------------------------------------------------------
def test_sse_events_are_split_across_chunks_and_model_rewritten() -> None:
    stream = (
        b'data: {"id":"1","model":"up","choices":[]}\r\n\r\n'
        b": keep-alive comment\n\n"
        b'data: {"id":"2","model":"up","choices":[{"delta":{"content":"x"}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    for size in (1, 7, len(stream)):
        rw = SSERewriter("acme/large-1")
        out = b"".join(rw.feed(stream[i : i + size]) for i in range(0, len(stream), size)) + rw.flush()
        events = [e for e in out.split(b"\n\n") if e]
        assert len(events) == 4
        datas = [json.loads(e[6:]) for e in events if e.startswith(b"data: {")]
        assert [d["model"] for d in datas] == ["acme/large-1", "acme/large-1"]
        assert [d["id"] for d in datas] == ["1", "2"]
        assert events[1] == b": keep-alive comment" and events[3] == b"data: [DONE]"


def test_sse_rewriter_holds_an_incomplete_event_until_it_ends() -> None:
    rw = SSERewriter("m")
    assert rw.feed(b'data: {"model":"up"') == b""
    assert rw.feed(b"}\n\n") == b'data: {"model":"m"}\n\n'
    assert rw.feed(b"data: tail") == b"" and rw.flush() == b"data: tail"


def test_sse_rewriter_stamps_the_decision_id_and_collects_the_answers_facts() -> None:
    events = [
        b'data: {"id":"up","choices":[{"delta":{"content":"Hel"}}]}\n\n',
        b'data: {"id":"up","model":"up","choices":[{"delta":{"content":"lo"},"finish_reason":"length"}]}\n\n',
        b'data: {"id":"up","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}\n\ndata: [DONE]\n\n',
    ]
    rw = SSERewriter("acme/large-1", completion_id="dec-1", keep_text=True)
    out = b"".join(rw.feed(e) for e in events)
    datas = [json.loads(e[6:]) for e in out.split(b"\n\n") if e.startswith(b"data: {")]
    assert [d["id"] for d in datas] == ["dec-1"] * 3 and datas[1]["model"] == "acme/large-1"
    facts = rw.facts()
    assert (facts.finish_reason, facts.input_tokens, facts.output_tokens, facts.text) == ("length", 7, 2, "Hello")
    assert SSERewriter("m").feed(events[0]) == events[0]  # nothing to rewrite: the event passes as received
    assert SSERewriter("m").facts().text is None  # text is collected only for a log that keeps it


def test_the_conversation_text_is_every_messages_text() -> None:
    """What the prompt's input tokens are counted on: system, history and the last user message alike."""
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {}}]},
        "not a message",
    ]
    assert conversation_text(messages) == "be brief\n\nlook"
    assert ROUTER.count_tokens([conversation_text(messages)]) == ROUTER.count_tokens(["be brief look"])
