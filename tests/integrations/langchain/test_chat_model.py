"""R2RouterChatModel: routing, budgets, per-call control, one run per call, metadata, construction errors.

The oracle for every decision is the router itself: ``router.route_text(text, **options)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.runnables import ConfigurableField, RunnableConfig

from r2router_core import (
    ConfigError,
    ConstraintError,
    EmptyPromptError,
    ModelSpec,
    NoCandidateError,
    R2Router,
    RouterConfig,
    TrainingData,
    UnknownModelError,
)
from r2router_core.testing import HashEmbedder
from r2router_integrations.langchain import METADATA_KEY, R2RouterChatModel
from r2router_integrations.langchain.testing import FakePoolChatModel

from .conftest import CHAT, LONG_ANSWER, MATH, fake_pool

Make = Callable[..., R2RouterChatModel]


class RunCounter(BaseCallbackHandler):
    """Counts chat-model runs as LangChain's callbacks see them."""

    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.ends = 0

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.starts.append(kwargs)

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.ends += 1


def r2(message: AIMessage) -> dict[str, Any]:
    return message.response_metadata[METADATA_KEY]


def uncapped_router() -> R2Router:
    """A router whose only budget is uncapped."""
    embedder = HashEmbedder(dim=16)
    config = RouterConfig(
        models=(ModelSpec("small", output_price=1.0), ModelSpec("large", output_price=2.0)),
        budgets=(None,),
        k=2,
        embedder=embedder.id,
    )
    prompts = ["alpha beta", "gamma delta", "epsilon zeta"]
    quality = [[[0.9], [0.5]]] * 3
    return R2Router(
        config,
        TrainingData(embedder.embed(prompts), ("small", "large"), (None,), np.asarray(quality), np.full((3, 2), 10.0)),
        embedder=embedder,
    )


# -- routing and the budget -----------------------------------------------------------
@pytest.mark.parametrize("prompt", [CHAT, MATH])
def test_invoke_answers_with_the_routed_model_and_budget(
    llm: R2RouterChatModel, router: R2Router, pool: dict[str, FakePoolChatModel], prompt: str
) -> None:
    expected = router.route_text(prompt)
    message = llm.invoke(prompt)
    info = r2(message)
    assert (info["model"], info["token_limit"]) == (expected.model, expected.token_limit)
    assert info["predicted_quality"] == pytest.approx(expected.predicted_quality)
    assert info["predicted_cost"] == pytest.approx(expected.predicted_cost)
    assert info["lambda"] == expected.lambda_
    assert info["fallbacks"] == []
    assert [(a["model"], a["token_limit"]) for a in info["alternatives"]] == [
        (c.model, c.token_limit) for c in expected.alternatives(3)
    ]
    chosen = pool[expected.model]
    assert [c.max_tokens for c in chosen.calls] == [expected.token_limit]
    other = next(name for name in pool if name != expected.model)
    assert pool[other].calls == []
    # the child's own metadata and usage are kept
    assert message.response_metadata["model_name"] == f"fake-{expected.model}"
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == len(message.text.split())


def test_the_two_demo_prompts_route_differently(router: R2Router) -> None:
    # guards the fixtures: the tests below rely on CHAT and MATH taking different arms
    assert (router.route_text(CHAT).model, router.route_text(CHAT).token_limit) == ("small", 32)
    assert (router.route_text(MATH).model, router.route_text(MATH).token_limit) == ("large", 256)


def test_budget_caps_the_output_and_reports_exhaustion(router: R2Router) -> None:
    llm = R2RouterChatModel(router=router, models=fake_pool(router, response=LONG_ANSWER), escalation=False)
    short = llm.invoke(CHAT)  # small @ 32
    assert len(short.text.split()) == 32
    assert short.response_metadata["finish_reason"] == "length"
    assert r2(short)["budget_exhausted"] is True
    full = llm.invoke(MATH)  # large @ 256 > 100 words
    assert full.text == LONG_ANSWER
    assert r2(full)["budget_exhausted"] is False


def test_length_instruction_is_added_to_the_users_system_message(
    llm: R2RouterChatModel, pool: dict[str, FakePoolChatModel]
) -> None:
    llm.invoke([SystemMessage("Be terse."), HumanMessage(CHAT)])
    sent = pool["small"].calls[-1].messages
    assert [type(m) for m in sent] == [SystemMessage, HumanMessage]
    assert sent[0].content == "Be terse.\n\nUse at most 32 tokens."
    assert sent[1].content == CHAT


def test_length_instruction_is_inserted_when_there_is_no_system_message(
    llm: R2RouterChatModel, pool: dict[str, FakePoolChatModel]
) -> None:
    llm.invoke(MATH)
    sent = pool["large"].calls[-1].messages
    assert sent[0] == SystemMessage("Use at most 256 tokens.")
    assert sent[1:] == (HumanMessage(MATH),)


def test_length_instruction_can_be_turned_off_or_reworded(make_llm: Make, pool: dict[str, FakePoolChatModel]) -> None:
    make_llm(length_instruction=False).invoke(CHAT)
    assert pool["small"].calls[-1].messages == (HumanMessage(CHAT),)
    make_llm(length_instruction_template="Reply within {budget} tokens, please.").invoke(CHAT)
    assert pool["small"].calls[-1].messages[0].content == "Reply within 32 tokens, please."
    assert pool["small"].calls[-1].max_tokens == 32  # the hard cap stays


def test_list_content_system_message_gets_a_text_block(
    llm: R2RouterChatModel, pool: dict[str, FakePoolChatModel]
) -> None:
    system = SystemMessage([{"type": "text", "text": "Be terse."}])
    llm.invoke([system, HumanMessage(CHAT)])
    assert pool["small"].calls[-1].messages[0].content == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": "Use at most 32 tokens."},
    ]


def test_uncapped_budget_sends_no_cap_and_no_instruction() -> None:
    router = uncapped_router()
    pool = fake_pool(router, max_tokens=7)
    llm = R2RouterChatModel(router=router, models=pool)
    message = llm.invoke("alpha beta")
    assert r2(message)["token_limit"] is None
    call = pool[r2(message)["model"]].calls[-1]
    assert call.max_tokens == 7  # the child's own setting, untouched
    assert call.messages == (HumanMessage("alpha beta"),)


# -- what is routed -------------------------------------------------------------------
def test_routes_on_the_last_human_message_by_default(llm: R2RouterChatModel, router: R2Router) -> None:
    history = [HumanMessage(MATH), AIMessage("an earlier answer"), HumanMessage(CHAT)]
    assert r2(llm.invoke(history))["model"] == router.route_text(CHAT).model
    history = [HumanMessage(CHAT), AIMessage("an earlier answer"), HumanMessage(MATH)]
    assert r2(llm.invoke(history))["token_limit"] == router.route_text(MATH).token_limit


def test_route_on_conversation_embeds_every_message(make_llm: Make, router: R2Router) -> None:
    history = [SystemMessage("You help."), HumanMessage(MATH), AIMessage("sure"), HumanMessage(CHAT)]
    text = f"system: You help.\nhuman: {MATH}\nai: sure\nhuman: {CHAT}"
    expected = router.route_text(text)
    info = r2(make_llm(route_on="conversation").invoke(history))
    assert (info["model"], info["token_limit"], info["utility"]) == (
        expected.model,
        expected.token_limit,
        pytest.approx(expected.utility),
    )


def test_route_on_a_function(make_llm: Make, router: R2Router, pool: dict[str, FakePoolChatModel]) -> None:
    seen: list[list[Any]] = []

    def route_on(messages: list[Any]) -> str:
        seen.append(messages)
        return MATH

    message = make_llm(route_on=route_on).invoke(CHAT)
    assert seen == [[HumanMessage(CHAT)]]
    assert r2(message)["model"] == router.route_text(MATH).model
    assert pool["large"].calls[-1].messages[-1] == HumanMessage(CHAT)  # the messages pass unchanged


def test_a_prompt_without_text_is_a_clear_error(llm: R2RouterChatModel) -> None:
    from r2router_core import EmptyPromptError

    with pytest.raises(EmptyPromptError, match="no text to route on"):
        llm.invoke([HumanMessage("   ")])


# -- per-call control -----------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        {"lambda_": 0.0},
        {"lambda_": 1.0},
        {"allowed_models": ["large"]},
        {"max_budget": 32},
        {"max_cost": 2e-5},
    ],
)
def test_per_call_options_reach_the_router(llm: R2RouterChatModel, router: R2Router, options: dict[str, Any]) -> None:
    for prompt in (CHAT, MATH):
        expected = router.route_text(prompt, **options)
        info = r2(llm.invoke(prompt, **options))
        assert (info["model"], info["token_limit"], info["lambda"]) == (
            expected.model,
            expected.token_limit,
            expected.lambda_,
        )


def test_force_model_and_langchain_model_override_pin_the_model(
    llm: R2RouterChatModel, router: R2Router, make_llm: Make
) -> None:
    expected = router.route_text(CHAT, allowed_models=["large"])
    for message in (llm.invoke(CHAT, force_model="large"), llm.invoke(CHAT, model="large")):
        assert (r2(message)["model"], r2(message)["token_limit"]) == ("large", expected.token_limit)
    assert r2(make_llm(force_model="large").invoke(CHAT))["model"] == "large"
    with pytest.raises(UnknownModelError, match="'gpt-9'"):
        llm.invoke(CHAT, model="gpt-9")
    with pytest.raises(ConstraintError, match="not among allowed_models"):
        llm.invoke(CHAT, force_model="large", allowed_models=["small"])


def test_caller_max_tokens_bounds_the_routed_budget(
    llm: R2RouterChatModel, router: R2Router, make_llm: Make, pool: dict[str, FakePoolChatModel]
) -> None:
    expected = router.route_text(MATH, max_tokens=100)
    assert expected.token_limit is not None and expected.token_limit <= 100
    assert expected.max_tokens == expected.token_limit
    for message in (llm.invoke(MATH, max_tokens=100), make_llm(max_tokens=100).invoke(MATH)):
        assert (r2(message)["model"], r2(message)["token_limit"]) == (expected.model, expected.token_limit)
        assert pool[expected.model].calls[-1].max_tokens == expected.token_limit  # not 100
    # max_budget is a constraint of its own: both apply
    assert r2(llm.invoke(MATH, max_tokens=1000, max_budget=32))["token_limit"] == 32
    with pytest.raises(NoCandidateError):
        llm.invoke(MATH, max_budget=10)  # a constraint no budget meets
    # a caller cap below every budget: the smallest budget's arms answer, capped at the caller's value
    clamped = router.route_text(MATH, max_tokens=10)
    message = llm.invoke(MATH, max_tokens=10)
    assert (r2(message)["model"], r2(message)["token_limit"], r2(message)["max_tokens"]) == (
        clamped.model,
        min(b for b in router.config.budgets if b is not None),
        10,
    )
    assert pool[clamped.model].calls[-1].max_tokens == 10


def test_configurable_fields_change_the_decision(llm: R2RouterChatModel, router: R2Router) -> None:
    configurable = llm.configurable_fields(
        lambda_=ConfigurableField(id="lambda_"), force_model=ConfigurableField(id="force")
    )
    default = r2(configurable.invoke(MATH))
    cheap = r2(configurable.with_config(configurable={"lambda_": 1.0}).invoke(MATH))
    expected = router.route_text(MATH, lambda_=1.0)
    assert (default["model"], default["token_limit"]) == ("large", 256)
    assert (cheap["model"], cheap["token_limit"], cheap["lambda"]) == (expected.model, expected.token_limit, 1.0)
    forced = r2(configurable.invoke(MATH, config={"configurable": {"force": "small"}}))
    assert forced["model"] == "small"


# -- one run per call, counted once ------------------------------------------------------
async def test_every_entry_point_opens_exactly_one_chat_model_run(llm: R2RouterChatModel) -> None:
    counter = RunCounter()
    config: RunnableConfig = {"callbacks": [counter]}
    llm.invoke(MATH, config=config)
    list(llm.stream(MATH, config=config))
    await llm.ainvoke(MATH, config=config)
    [c async for c in llm.astream(MATH, config=config)]
    llm.batch([CHAT, MATH], config=config)
    await llm.abatch([CHAT, MATH], config=config)
    assert len(counter.starts) == counter.ends == 8


def test_trace_names_the_routed_model_and_budget(llm: R2RouterChatModel) -> None:
    counter = RunCounter()
    llm.invoke(MATH, config={"callbacks": [counter]})
    list(llm.stream(CHAT, config={"callbacks": [counter]}))
    invoke_meta, stream_meta = (start["metadata"] for start in counter.starts)
    assert (invoke_meta["ls_model_name"], invoke_meta["ls_max_tokens"]) == ("fake-large", 256)
    assert (stream_meta["ls_model_name"], stream_meta["ls_max_tokens"]) == ("fake-small", 32)
    assert invoke_meta["ls_provider"] == "fake"
    params = counter.starts[0]["invocation_params"]
    assert params[METADATA_KEY] == {"model": "large", "token_limit": 256, "lambda": 0.9}


async def test_astream_events_show_one_run_with_the_routed_model(llm: R2RouterChatModel) -> None:
    events = [e async for e in llm.astream_events(MATH, version="v2")]
    starts = [e for e in events if e["event"] == "on_chat_model_start"]
    ends = [e for e in events if e["event"] == "on_chat_model_end"]
    streamed = [e for e in events if e["event"] == "on_chat_model_stream"]
    assert len(starts) == len(ends) == 1
    assert (starts[0]["metadata"]["ls_model_name"], starts[0]["metadata"]["ls_max_tokens"]) == ("fake-large", 256)
    assert streamed, "astream_events should stream the child's chunks"
    assert r2(ends[0]["data"]["output"])["model"] == "large"


async def test_usage_callback_counts_each_childs_tokens_once(
    llm: R2RouterChatModel, pool: dict[str, FakePoolChatModel]
) -> None:
    answers: list[AIMessage] = []
    with get_usage_metadata_callback() as usage:
        answers.append(llm.invoke(CHAT))
        full: AIMessageChunk | None = None
        for chunk in llm.stream(MATH):
            full = chunk if full is None else full + chunk
        assert full is not None
        answers.append(full)
        answers.append(await llm.ainvoke(MATH))
    # true totals, recomputed from what each child received and answered
    expected: dict[str, dict[str, int]] = {}
    for child in pool.values():
        calls = child.calls
        n_in = sum(len(m.text.split()) for call in calls for m in call.messages)
        n_out = sum(len(a.text.split()) for a in answers if a.response_metadata["model_name"] == child.model_name)
        if calls:
            expected[child.model_name] = {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out}
    assert {
        k: {f: v[f] for f in ("input_tokens", "output_tokens", "total_tokens")} for k, v in usage.usage_metadata.items()
    } == expected
    assert len(pool["small"].calls) == 1 and len(pool["large"].calls) == 2


# -- streaming metadata -----------------------------------------------------------------
def test_stream_puts_the_decision_on_the_first_chunk_only(llm: R2RouterChatModel) -> None:
    chunks = list(llm.stream(MATH))
    with_decision = [i for i, c in enumerate(chunks) if "model" in c.response_metadata.get(METADATA_KEY, {})]
    with_flag = [i for i, c in enumerate(chunks) if "budget_exhausted" in c.response_metadata.get(METADATA_KEY, {})]
    assert with_decision == [0]
    assert with_flag == [len(chunks) - 1]
    assert chunks[-1].chunk_position == "last"
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    invoked = llm.invoke(MATH)
    assert full.text == invoked.text
    # the aggregated stream carries the whole decision; each call has its own id
    # (cost_usd: non-streamed answers only)
    ids = ("decision_id", "cost_usd")
    assert {k: v for k, v in r2(full).items() if k not in ids} == {k: v for k, v in r2(invoked).items() if k not in ids}
    assert r2(full)["decision_id"] != r2(invoked)["decision_id"]
    assert all(len(r2(m)["decision_id"]) == 32 for m in (full, invoked))
    assert full.usage_metadata == invoked.usage_metadata


def test_batch_routes_each_prompt(llm: R2RouterChatModel, router: R2Router) -> None:
    results = llm.batch([CHAT, MATH])
    assert [(r2(m)["model"], r2(m)["token_limit"]) for m in results] == [
        (d.model, d.token_limit) for d in router.route_texts([CHAT, MATH])
    ]


def test_generate_with_several_prompts_routes_each(llm: R2RouterChatModel, router: R2Router) -> None:
    counter = RunCounter()
    result = llm.generate([[HumanMessage(CHAT)], [HumanMessage(MATH)]], callbacks=[counter])
    models = [g[0].message.response_metadata[METADATA_KEY]["model"] for g in result.generations]  # type: ignore[union-attr]
    assert models == [router.route_text(CHAT).model, router.route_text(MATH).model]
    assert len(counter.starts) == 2 and result.run is not None and len(result.run) == 2


async def test_async_routing_runs_off_the_event_loop(llm: R2RouterChatModel, router: R2Router) -> None:
    threads: list[threading.Thread] = []
    embed = router.embed

    def spy(texts: Any) -> Any:
        threads.append(threading.current_thread())
        return embed(texts)

    router.embed = spy  # type: ignore[method-assign]
    loop_thread = threading.current_thread()
    await llm.ainvoke(MATH)
    [c async for c in llm.astream(CHAT)]
    await llm.abatch([CHAT, MATH])
    assert len(threads) == 4
    assert all(t is not loop_thread for t in threads)


def test_the_childs_rate_limiter_is_respected(router: R2Router) -> None:
    from langchain_core.rate_limiters import BaseRateLimiter

    class Counting(BaseRateLimiter):
        def __init__(self) -> None:
            self.n = 0

        def acquire(self, *, blocking: bool = True) -> bool:
            self.n += 1
            return True

        async def aacquire(self, *, blocking: bool = True) -> bool:
            self.n += 1
            return True

    limiters = {name: Counting() for name in router.config.model_names}
    pool = {name: FakePoolChatModel(model_name=name, rate_limiter=limiters[name]) for name in limiters}
    llm = R2RouterChatModel(router=router, models=pool)
    llm.invoke(MATH)
    list(llm.stream(MATH))
    assert (limiters["large"].n, limiters["small"].n) == (2, 0)


def test_lcel_chain_swaps_in_for_a_fixed_model(llm: R2RouterChatModel) -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    prompt = ChatPromptTemplate.from_messages([("system", "You are helpful."), ("human", "{question}")])
    chain = prompt | llm | StrOutputParser()
    assert chain.invoke({"question": MATH}) == f"fake-large answers: {MATH}"
    assert "".join(chain.stream({"question": CHAT})) == f"fake-small answers: {CHAT}"


# -- construction ---------------------------------------------------------------------
def test_part_of_the_pool_routes_among_the_models_given(router: R2Router) -> None:
    """One rule with LlamaIndex's R2RouterLLM: part of the pool is fine, a name outside it is not."""
    small = FakePoolChatModel(model_name="fake-small")
    llm = R2RouterChatModel(router=router, models={"small": small})
    assert r2(llm.invoke(MATH))["model"] == "small" and len(small.calls) == 1
    with pytest.raises(ConstraintError, match=r"allowed_models \['large'\] have no chat model"):
        llm.invoke(MATH, allowed_models=["large"])
    with pytest.raises(ConfigError, match=r"\['huge'\] are not in the pool"):
        R2RouterChatModel(router=router, models={**fake_pool(router), "huge": FakePoolChatModel()})


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"fallbacks": -1}, "fallbacks"),
        ({"lambda_": 1.5}, "lambda"),
        ({"force_model": "gpt-9"}, "gpt-9"),
        ({"allowed_models": ["gpt-9"]}, "gpt-9"),
        ({"max_budget": 0}, "max_budget"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_tokens_param": {"gpt-9": "max_output_tokens"}}, "gpt-9"),
        ({"length_instruction_template": "Use at most {tokens} tokens."}, "budget"),
    ],
)
def test_invalid_settings_fail_at_construction(make_llm: Make, settings: dict[str, Any], match: str) -> None:
    with pytest.raises((ConfigError, UnknownModelError), match=match):
        make_llm(**settings)


def test_provider_options_given_to_the_router_are_flagged(make_llm: Make) -> None:
    with pytest.warns(UserWarning, match=r"ignores \['temperature'\]"):
        make_llm(temperature=0)


def test_max_tokens_param_override_names_the_cap(router: R2Router, pool: dict[str, FakePoolChatModel]) -> None:
    llm = R2RouterChatModel(router=router, models=pool, max_tokens_param={"large": "max_output_tokens"})
    llm.invoke(MATH)
    call = pool["large"].calls[-1]
    assert call.max_tokens is None  # the fake has no such field: the cap goes as a call kwarg it ignores

    seen: list[dict[str, Any]] = []

    class Recording(FakePoolChatModel):
        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
            seen.append(kwargs)
            return super()._generate(messages, stop, run_manager, **kwargs)

    llm = R2RouterChatModel(
        router=router, models={**pool, "large": Recording()}, max_tokens_param={"large": "max_output_tokens"}
    )
    llm.invoke(MATH)
    assert seen[-1] == {"max_output_tokens": 256}


def test_a_misspelt_routing_keyword_fails_before_any_call(
    llm: R2RouterChatModel, pool: dict[str, FakePoolChatModel]
) -> None:
    with pytest.raises(ConfigError, match=r"unknown keyword 'lamda'; did you mean 'lambda_'"):
        llm.invoke(MATH, lamda=0.5)
    with pytest.raises(ConfigError, match=r"did you mean 'max_budget'"):
        llm.invoke(MATH, max_bugdet=100)
    assert all(child.calls == [] for child in pool.values())  # no model was called, no fallback hid it


def test_system_messages_alone_are_not_a_prompt(llm: R2RouterChatModel, pool: dict[str, FakePoolChatModel]) -> None:
    from langchain_core.messages import SystemMessage

    with pytest.raises(EmptyPromptError, match="system messages alone are instructions"):
        llm.invoke([SystemMessage("You are terse.")])
    assert all(child.calls == [] for child in pool.values())
