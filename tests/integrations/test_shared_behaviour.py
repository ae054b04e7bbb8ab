"""One behaviour in every integration: the same cases run against LangChain, LlamaIndex and the gateway.

Each integration is driven through a small adapter that makes one routed call and
reports what the pool model received (model, output cap, messages) and the
failed attempts the answer records. The oracle is the core router itself.
"""

from __future__ import annotations

import asyncio
import functools
import json
import operator
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from langchain_core.messages import HumanMessage
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from openai import OpenAI
from pydantic import Field

from r2router_core import R2Router
from r2router_integrations.langchain import R2RouterChatModel
from r2router_integrations.langchain.testing import FakePoolChatModel
from r2router_integrations.llamaindex import R2RouterLLM
from r2router_integrations.llamaindex.testing import RecordingLLM

from .server.support import (
    MATH_PROMPT,
    Behaviour,
    ServerThread,
    Stub,
    build_router,
    start_gateway,
    stub_app,
    write_upstreams,
)
from .shared_cases import CASES, PROMPT, Case, Fault, Observed, check, exception_for

ROUTER = build_router()
POOL = ROUTER.config.model_names
SMALLEST = min(b for b in ROUTER.config.budgets if b is not None)


@dataclass(frozen=True)
class Sent:
    """What one routed call made the chosen pool model receive, and what the answer recorded."""

    model: str
    cap: int | None
    system: str | None
    failed: list[dict[str, Any]]
    decision_id: str | None = None
    escalations: list[dict[str, Any]] = field(default_factory=list)


class Integration(Protocol):
    def call(self, prompt: str, **options: Any) -> Sent: ...

    def fail(self, model: str) -> None: ...

    def bad_option(self, name: str, value: Any) -> str: ...

    def cut_below(self, tokens: int) -> None: ...


# -- LangChain ----------------------------------------------------------------------------
class LangChain:
    def __init__(self, router: R2Router) -> None:
        self.pool = {name: FakePoolChatModel(model_name=f"fake-{name}") for name in POOL}
        self.llm = R2RouterChatModel(router=router, models=dict(self.pool))

    def call(self, prompt: str, **options: Any) -> Sent:
        message = self.llm.invoke([HumanMessage(prompt)], **options)
        info = message.response_metadata["r2router"]
        call = self.pool[info["model"]].calls[-1]
        system = call.messages[0].text if call.messages[0].type == "system" else None
        return Sent(info["model"], call.max_tokens, system, info["fallbacks"], info["decision_id"], info["escalations"])

    def fail(self, model: str) -> None:
        self.pool[model].fail_with = ConnectionError(f"{model} is down")

    def cut_below(self, tokens: int) -> None:
        for llm in self.pool.values():  # an answer one token short of `tokens`: cut by any smaller cap
            llm.response = " ".join(["w"] * (tokens - 1))

    def bad_option(self, name: str, value: Any) -> str:
        with pytest.raises(ValueError) as info:
            self.llm.invoke("hi", **{name: value})
        return str(info.value)


# -- LlamaIndex ---------------------------------------------------------------------------
class FailingLLM(RecordingLLM):
    failing: bool = False

    def chat(self, messages: Any, **kwargs: Any) -> ChatResponse:
        if self.failing:
            raise ConnectionError(f"{self.name} is down")
        return super().chat(messages, **kwargs)


class LlamaIndex:
    def __init__(self, router: R2Router) -> None:
        self.pool = {name: FailingLLM(name=name, is_chat=True) for name in POOL}
        self.router = router
        self.llm = R2RouterLLM(router, dict(self.pool))

    def call(self, prompt: str, **options: Any) -> Sent:
        allowed = options.pop("allowed_models", POOL)  # R2RouterLLM routes among the pool it is given
        pool = {name: llm for name, llm in self.pool.items() if name in allowed}
        llm = R2RouterLLM(self.router, pool, **{k: v for k, v in options.items() if k != "max_tokens"})
        kwargs = {"max_tokens": options["max_tokens"]} if "max_tokens" in options else {}
        response = llm.chat([ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs)
        info = response.additional_kwargs["r2router"]
        call = self.pool[info["model"]]
        # the recording LLM is copied per budget: the copy's calls list is shared with the original
        last = call.calls[-1]
        first_line = last.prompt.split("\n", 1)[0]
        return Sent(
            info["model"],
            last.max_tokens,
            first_line if first_line.startswith("Use at most") else None,
            info["fallbacks"],
            info["decision_id"],
            info["escalations"],
        )

    def fail(self, model: str) -> None:
        self.pool[model].failing = True

    def cut_below(self, tokens: int) -> None:
        for llm in self.pool.values():
            llm.answer_words, llm.finish_reasons = tokens - 1, True

    def bad_option(self, name: str, value: Any) -> str:
        with pytest.raises(ValueError) as info:
            R2RouterLLM(self.router, dict(self.pool), **{name: value})
        return str(info.value)


# -- the shared table (tests/integrations/shared_cases.py), run on the frameworks ---------------
class FaultyChat(FakePoolChatModel):
    """A fake LangChain pool model that fails as its :class:`Fault` says and bills what it answers."""

    fault: Any = None
    ledger: Any = Field(default=None, exclude=True)  # one list shared by the pool and its copies (Any: not copied)

    def _reply(self, messages: Any, stop: Any, kwargs: Any) -> Any:
        cap = kwargs.get("max_tokens", self.max_tokens)
        _fail_if_due(self.fault, self.ledger, self.model_name, cap)
        reply = super()._reply(messages, stop, kwargs)
        self.ledger.append((self.model_name, cap, (reply.input_tokens, reply.output_tokens)))
        return reply


class FaultyLLM(RecordingLLM):
    """A fake LlamaIndex pool LLM that fails as its :class:`Fault` says and bills what it answers."""

    fault: Any = None
    ledger: Any = Field(default=None, exclude=True)

    def _answer(self, method: str, prompt: str) -> Any:
        _fail_if_due(self.fault, self.ledger, self.name, self.max_tokens)
        response = super()._answer(method, prompt)
        usage = response.raw["usage"]
        self.ledger.append((self.name, self.max_tokens, (usage["prompt_tokens"], usage["completion_tokens"])))
        return response


def _fail_if_due(fault: Fault | None, ledger: list[Any], model: str, cap: int | None) -> None:
    failed = sum(1 for name, _, billed in ledger if name == model and billed is None)
    if fault is not None and (fault.times is None or failed < fault.times):
        ledger.append((model, cap, None))
        raise exception_for(fault)


class TableRun:
    """Runs one case of the table on one framework in one mode, reporting :class:`Observed` per call."""

    def __init__(self, framework: str, mode: str, case: Case, store: Path) -> None:
        self.framework, self.mode, self.case = framework, mode, case
        self.ledger: list[Any] = []
        decision = ROUTER.route_text(PROMPT, **case.options)
        faults = case.fault_of(decision)
        settings = {**case.settings, "store": store}
        if framework == "langchain":
            words = " ".join(["w"] * (case.cut_below - 1)) if case.cut_below else None
            pool = {n: FaultyChat(model_name=n, fault=faults.get(n), ledger=self.ledger, response=words) for n in POOL}
            self.llm: Any = R2RouterChatModel(router=ROUTER, models=pool, **settings)
        else:
            cut = {"answer_words": case.cut_below - 1, "finish_reasons": True} if case.cut_below else {}
            lpool = {n: FaultyLLM(name=n, is_chat=True, fault=faults.get(n), ledger=self.ledger, **cut) for n in POOL}
            self.llm = R2RouterLLM(ROUTER, lpool, **settings, **case.options)
        self.log = self.llm.decision_log
        self.seen: set[str] = set()

    def observe(self) -> list[Observed]:
        try:
            return [self._one() for _ in range(self.case.calls)]
        finally:
            self.log.close()

    def _answer(self) -> dict[str, Any]:
        if self.framework == "langchain":
            options = self.case.options
            if self.mode == "invoke":
                return dict(self.llm.invoke(PROMPT, **options).response_metadata["r2router"])
            if self.mode == "ainvoke":
                return dict(asyncio.run(self.llm.ainvoke(PROMPT, **options)).response_metadata["r2router"])
            chunks = list(self.llm.stream(PROMPT, **options))
            return dict(functools.reduce(operator.add, chunks).response_metadata["r2router"])
        messages = [ChatMessage(role=MessageRole.USER, content=PROMPT)]
        if self.mode == "chat":
            return dict(self.llm.chat(messages).additional_kwargs["r2router"])
        if self.mode == "achat":
            return dict(asyncio.run(self.llm.achat(messages)).additional_kwargs["r2router"])
        return dict(list(self.llm.stream_chat(messages))[-1].additional_kwargs["r2router"])

    def _one(self) -> Observed:
        start = len(self.ledger)
        info: dict[str, Any] = {}
        error: BaseException | None = None
        try:
            info = self._answer()
        except Exception as exc:
            error = exc
        assert self.log.flush(timeout=30)
        rows = [r for r in self.log.store.decisions() if r.id not in self.seen]
        self.seen |= {r.id for r in rows}
        rows.sort(key=lambda r: r.escalated_from is not None)  # the cut answer's row first
        calls = self.ledger[start:]
        answered = [c for c in calls if c[2] is not None]
        return Observed(
            model=info.get("model"),
            cap=answered[-1][1] if answered and error is None else None,
            failed=list(info["fallbacks"]) if info else list(rows[-1].failed_attempts) if rows else [],
            escalations=list(info.get("escalations", [])),
            cost_usd=info.get("cost_usd"),
            decision_id=info.get("decision_id"),
            error=error,
            billed=[(name, billed[0], billed[1]) for name, _, billed in answered],
            rows=rows,
            upstream_calls=len(calls),
        )


FRAMEWORK_MODES = [("langchain", m) for m in ("invoke", "ainvoke", "stream")] + [
    ("llamaindex", m) for m in ("chat", "achat", "stream_chat")
]


TABLE = [
    pytest.param(framework, mode, case, id=f"{framework}-{mode}-{case.id}")
    for case in CASES
    for framework, mode in FRAMEWORK_MODES
    if framework in case.where  # the table says where each case applies (a TypeError: the frameworks only)
]


@pytest.mark.parametrize(("framework", "mode", "case"), TABLE)
def test_the_shared_table_on_the_frameworks(framework: str, mode: str, case: Case, tmp_path: Path) -> None:
    observed = TableRun(framework, mode, case, tmp_path / "log.db").observe()
    check(case, ROUTER.route_text(PROMPT, **case.options), observed, streamed=mode.startswith("stream"))


@pytest.mark.parametrize(("framework", "mode"), FRAMEWORK_MODES)
@pytest.mark.parametrize(
    "case_id", ["5xx_falls_back", "a_cut_answer_is_escalated_once", "every_arm_failing_raises_with_one_row"]
)
def test_each_framework_drives_the_cores_plan_not_a_loop_of_its_own(
    framework: str, mode: str, case_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every attempt is one step the core's CallPlan gave: next() is asked attempts + 1 times (the last: Done)."""
    from r2router_core.execute import CallPlan

    steps: list[Any] = []
    real_next = CallPlan.next

    def counting_next(self: CallPlan) -> Any:
        steps.append(step := real_next(self))
        return step

    monkeypatch.setattr(CallPlan, "next", counting_next)
    case = next(c for c in CASES if c.id == case_id)
    run = TableRun(framework, mode, case, tmp_path / "log.db")
    (seen,) = run.observe()
    assert seen.upstream_calls >= 1
    assert len(steps) == seen.upstream_calls + 1
    assert type(steps[-1]).__name__ == "Done"


@pytest.mark.parametrize("framework", ["langchain", "llamaindex"])
def test_a_stream_the_caller_leaves_is_logged_as_abandoned(framework: str, tmp_path: Path) -> None:
    """The plan's abandoned state, reached through each framework's stream (one row, status abandoned)."""
    run = TableRun(framework, "stream", CASES[0], tmp_path / "log.db")  # 5xx on the chosen arm: a fallback first
    if framework == "langchain":
        stream = iter(run.llm.stream(PROMPT))
    else:
        stream = iter(run.llm.stream_chat([ChatMessage(role=MessageRole.USER, content=PROMPT)]))
    next(stream)
    stream.close()  # type: ignore[attr-defined]
    assert run.log.flush(timeout=30)
    (row,) = run.log.store.decisions()
    assert (row.status, row.finish_reason) == ("abandoned", "abandoned")
    assert [f["kind"] for f in row.failed_attempts] == ["http_5xx"]
    run.log.close()


# -- the gateway --------------------------------------------------------------------------
class Gateway:
    def __init__(self, server: ServerThread, stub: Stub) -> None:
        self.client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        self.stub = stub

    def call(self, prompt: str, **options: Any) -> Sent:
        body: dict[str, Any] = {}
        routing = {("lambda" if k == "lambda_" else k): v for k, v in options.items() if k != "max_tokens"}
        if routing:
            body["r2router"] = routing
        cap = {"max_tokens": options["max_tokens"]} if "max_tokens" in options else {}
        raw = self.client.chat.completions.with_raw_response.create(
            model="r2router", messages=[{"role": "user", "content": prompt}], extra_body=body, **cap
        )
        model = raw.headers["x-r2router-model"]
        request = self.stub.calls(model)[-1].body
        sent_cap = next(
            (request[k] for k in ("max_tokens", "max_completion_tokens", "max_output_tokens") if k in request), None
        )
        first = request["messages"][0]
        system = first["content"] if first["role"] == "system" else None
        failed = json.loads(raw.headers.get("x-r2router-failed-attempts", "[]"))
        decision_id = raw.headers["x-r2router-decision-id"]
        assert raw.parse().id == decision_id  # the completion id is the decision id
        escalations = json.loads(raw.headers.get("x-r2router-escalations", "[]"))
        return Sent(model, sent_cap, system, failed, decision_id, escalations)

    def fail(self, model: str) -> None:
        self.stub.behaviour[model].status = 503

    def cut_below(self, tokens: int) -> None:
        for how in self.stub.behaviour.values():
            how.cut_below = tokens

    def bad_option(self, name: str, value: Any) -> str:
        key = "lambda" if name == "lambda_" else name
        import openai

        with pytest.raises(openai.BadRequestError) as info:
            self.client.chat.completions.create(
                model="r2router", messages=[{"role": "user", "content": "hi"}], extra_body={"r2router": {key: value}}
            )
        body = info.value.body
        assert isinstance(body, dict)
        return str(body["message"])

    # -- the shared table, over the wire --------------------------------------------------
    MODES = ("call", "stream")

    NOT_APPLICABLE: dict[str, str] = {  # noqa: RUF012 - a table of reasons, read only
        "type_error_is_raised_without_fallback": (
            "a TypeError is raised by the caller's own code in its own process; a wire gateway's upstream "
            "answers with a status, never a Python exception (its bad request is the 400 case)"
        ),
    }
    """The table's cases the gateway cannot show, and why (a test checks this is every case left out)."""

    @staticmethod
    def behaviour(fault: Fault | None, cut_below: int | None) -> Behaviour:
        """The stub's behaviour for one pool model's fault (a timeout: slower than the upstream timeout)."""
        how = Behaviour(cut_below=cut_below, stream_usage=True)  # streams report usage, as the frameworks bill it
        if fault is None:
            return how
        if fault.kind == "timeout":
            how.delay = 3.0
        else:
            how.status = {"5xx": 503, "429": 429, "400": 400}[fault.kind]
            how.fail_times = fault.times
            if fault.retry_after is not None:
                how.headers = {"retry-after": f"{fault.retry_after:g}"}
        return how

    @classmethod
    def observe(cls, case: Case, mode: str, stub: Stub, upstreams: Path, store: Path) -> list[Observed]:
        """Run ``case`` on a gateway of the case's serving settings, one :class:`Observed` per call."""
        from r2router_core.store.decision_log import DecisionLog

        faults = case.fault_of(ROUTER.route_text(PROMPT, **case.options))
        stub.reset()
        for name in POOL:
            stub.behaviour[name] = cls.behaviour(faults.get(name), case.cut_below)
        log = DecisionLog(store)
        server = start_gateway(ROUTER, upstreams, store=log, **case.settings)
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=10)
        seen: set[str] = set()
        try:
            return [cls._one(client, case, mode, stub, faults, log, seen) for _ in range(case.calls)]
        finally:
            server.__exit__()

    @classmethod
    def _one(
        cls, client: OpenAI, case: Case, mode: str, stub: Stub, faults: dict[str, Fault], log: Any, seen: set[str]
    ) -> Observed:
        import time

        import openai

        start = len(stub.requests)
        routing = {("lambda" if k == "lambda_" else k): v for k, v in case.options.items()}
        extra = {"r2router": routing} if routing else {}
        messages = [{"role": "user", "content": PROMPT}]
        headers: Any = {}
        error: BaseException | None = None
        try:
            if mode == "stream":
                with client.chat.completions.with_streaming_response.create(
                    model="r2router", messages=messages, stream=True, extra_body=extra
                ) as resp:
                    headers = resp.headers
                    list(resp.iter_lines())
            else:
                headers = client.chat.completions.with_raw_response.create(
                    model="r2router", messages=messages, extra_body=extra
                ).headers
        except openai.APIStatusError as exc:
            error, headers = exc, exc.response.headers
        decision_id = headers.get("x-r2router-decision-id")
        deadline = time.monotonic() + 10  # a stream's row is queued at its end, as its last bytes go out
        while decision_id is not None and log.store.decision(decision_id) is None and time.monotonic() < deadline:
            log.flush(timeout=5)
            time.sleep(0.01)
        rows = [r for r in log.store.decisions() if r.id not in seen]
        seen |= {r.id for r in rows}
        rows.sort(key=lambda r: r.escalated_from is not None)  # the cut answer's row first
        calls = stub.requests[start:]
        answered = cls._answered(calls, faults, case.cut_below, streamed=mode == "stream")
        cost = headers.get("x-r2router-cost-usd")
        if error is None and cost is None:  # a stream: its cost is known after its headers went out, in its row
            cost = rows[-1].cost_usd
        return Observed(
            model=None if error is not None else headers["x-r2router-model"],
            cap=answered[-1][1] if answered and error is None else None,
            failed=json.loads(headers.get("x-r2router-failed-attempts", "[]"))
            if error is None
            else list(rows[-1].failed_attempts),
            escalations=json.loads(headers.get("x-r2router-escalations", "[]")),
            cost_usd=None if error is not None else float(cost),
            decision_id=decision_id,
            error=error,
            billed=[(name, billed[0], billed[1]) for name, _, billed in answered],
            rows=rows,
            upstream_calls=len(calls),
        )

    @staticmethod
    def _answered(
        calls: list[Any], faults: dict[str, Fault], cut_below: int | None, *, streamed: bool
    ) -> list[tuple[str, int | None, tuple[int, int]]]:
        """(model, cap, (input, output tokens) the stub reported) of each upstream call that answered."""
        failed_so_far: dict[str, int] = {}
        out = []
        for call in calls:
            fault = faults.get(call.model)
            done = failed_so_far.get(call.model, 0)
            if fault is not None and (fault.times is None or done < fault.times):
                failed_so_far[call.model] = done + 1
                continue
            cap = next(
                (call.body[k] for k in ("max_tokens", "max_completion_tokens", "max_output_tokens") if k in call.body),
                None,
            )
            cut = not streamed and cut_below is not None and cap is not None and cap < cut_below
            out.append((call.model, cap, (5, cap if cut else 3)))  # the stub's usage (a stream: 3 chunks)
        return out


@pytest.fixture(scope="module")
def gateway_table_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stub, Path]]:
    """A stub upstream for the table's gateways (one gateway per case: its serving settings differ)."""
    stub = Stub()
    stub.reset()
    with ServerThread(stub_app(stub)) as upstream:
        yield stub, write_upstreams(tmp_path_factory.mktemp("table") / "upstreams.yaml", upstream.url)


GATEWAY_TABLE = [
    pytest.param(mode, case, id=f"gateway-{mode}-{case.id}")
    for case in CASES
    for mode in Gateway.MODES
    if "gateway" in case.where
]


@pytest.mark.parametrize(("mode", "case"), GATEWAY_TABLE)
def test_the_shared_table_on_the_gateway(
    mode: str, case: Case, gateway_table_env: tuple[Stub, Path], tmp_path: Path
) -> None:
    stub, upstreams = gateway_table_env
    observed = Gateway.observe(case, mode, stub, upstreams, tmp_path / "log.db")
    check(case, ROUTER.route_text(PROMPT, **case.options), observed, streamed=mode == "stream")


def test_the_gateway_leaves_out_only_the_cases_a_wire_cannot_show() -> None:
    """Not a silent skip: every case the gateway does not run is named, with its reason."""
    assert {case.id for case in CASES if "gateway" not in case.where} == set(Gateway.NOT_APPLICABLE)


@pytest.mark.parametrize("mode", Gateway.MODES)
@pytest.mark.parametrize(
    "case_id", ["5xx_falls_back", "a_cut_answer_is_escalated_once", "every_arm_failing_raises_with_one_row"]
)
def test_the_gateway_drives_the_cores_plan_not_a_loop_of_its_own(
    mode: str, case_id: str, gateway_table_env: tuple[Stub, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every upstream call is one step the core's CallPlan gave: next() is asked attempts + 1 times (the last:
    Done), except that a committed stream reports its end instead of asking again."""
    from r2router_core.execute import CallPlan

    steps: list[Any] = []
    real_next = CallPlan.next

    def counting_next(self: CallPlan) -> Any:
        steps.append(step := real_next(self))
        return step

    monkeypatch.setattr(CallPlan, "next", counting_next)
    case = next(c for c in CASES if c.id == case_id)
    stub, upstreams = gateway_table_env
    (seen,) = Gateway.observe(case, mode, stub, upstreams, tmp_path / "log.db")
    assert seen.upstream_calls >= 1
    streamed_answer = mode == "stream" and seen.error is None
    assert len(steps) == seen.upstream_calls + (0 if streamed_answer else 1)
    assert type(steps[-1]).__name__ == ("Attempt" if streamed_answer else "Done")


@pytest.fixture(scope="module")
def gateway_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Stub]]:
    stub = Stub()
    stub.reset()
    with ServerThread(stub_app(stub)) as upstream:
        upstreams = write_upstreams(tmp_path_factory.mktemp("shared") / "upstreams.yaml", upstream.url)
        gateway = start_gateway(ROUTER, upstreams)
        try:
            yield gateway, stub
        finally:
            gateway.__exit__()


@pytest.fixture(params=["langchain", "llamaindex", "gateway"])
def integration(request: pytest.FixtureRequest) -> Integration:
    if request.param == "langchain":
        return LangChain(ROUTER)
    if request.param == "llamaindex":
        return LlamaIndex(ROUTER)
    server, stub = request.getfixturevalue("gateway_env")
    stub.reset()
    return Gateway(server, stub)


# -- the cases ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("lambda_", 1.5, "lambda must be a number in [0, 1]"),
        ("max_budget", 0, "max_budget must be a positive int"),
        ("max_cost", -1.0, "max_cost must be a finite number >= 0"),
    ],
)
def test_options_are_validated_with_the_cores_words(
    integration: Integration, name: str, value: Any, needle: str
) -> None:
    assert needle in integration.bad_option(name, value)


def test_a_callers_max_tokens_bounds_the_routed_budget(integration: Integration) -> None:
    expected = ROUTER.route_text(MATH_PROMPT, max_tokens=250)
    assert expected.token_limit is not None and expected.token_limit <= 250
    sent = integration.call(MATH_PROMPT, max_tokens=250)
    assert (sent.model, sent.cap) == (expected.model, expected.token_limit)


def test_a_callers_max_tokens_below_every_budget_is_clamped_not_refused(integration: Integration) -> None:
    expected = ROUTER.route_text(MATH_PROMPT, max_tokens=SMALLEST - 1)
    assert expected.token_limit == SMALLEST and expected.max_tokens == SMALLEST - 1
    sent = integration.call(MATH_PROMPT, max_tokens=SMALLEST - 1)
    assert (sent.model, sent.cap) == (expected.model, SMALLEST - 1)
    assert sent.system == f"Use at most {SMALLEST - 1} tokens."  # the instruction states the cap sent


def test_the_length_instruction_is_on_by_default_and_only_for_capped_calls(integration: Integration) -> None:
    capped = ROUTER.route_text(MATH_PROMPT)
    assert capped.token_limit is not None
    sent = integration.call(MATH_PROMPT)
    assert sent.system == f"Use at most {capped.token_limit} tokens." and sent.cap == capped.token_limit
    uncapped = ROUTER.route_text(MATH_PROMPT, allowed_models=["medium"])
    assert uncapped.token_limit is None
    sent = integration.call(MATH_PROMPT, allowed_models=["medium"])
    assert (sent.cap, sent.system) == (None, None)


def test_fallback_order_and_failed_attempts_are_the_same_everywhere(integration: Integration) -> None:
    decision = ROUTER.route_text(MATH_PROMPT)
    plan = decision.fallback_plan(2)
    integration.fail(plan[0].model)
    sent = integration.call(MATH_PROMPT)
    assert sent.model == plan[1].model and sent.cap == plan[1].token_limit
    (failed,) = sent.failed
    assert (failed["model"], failed["token_limit"]) == (plan[0].model, plan[0].token_limit)
    assert failed["kind"] in ("connection", "http_5xx")
    assert set(failed) == {"model", "token_limit", "kind", "error", "status"}


def test_one_call_validates_its_options_once_and_plans_its_attempts_once(
    integration: Integration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The call path visits the core's option parsing and its fallback planning once each (counted, not timed).

    ``from_mapping`` is where a caller's raw options are read and validated (LangChain's call kwargs,
    the gateway's ``r2router`` object); LlamaIndex's options are its fields, validated at construction,
    so its call reads none.
    """
    from r2router_core import RoutingDecision, RoutingOptions

    calls = {"from_mapping": 0, "fallback_plan": 0}
    from_mapping, fallback_plan = RoutingOptions.from_mapping.__func__, RoutingDecision.fallback_plan  # type: ignore[attr-defined]

    def counting_from_mapping(cls: type[RoutingOptions], data: Any) -> RoutingOptions:
        calls["from_mapping"] += 1
        return from_mapping(cls, data)

    def counting_plan(self: RoutingDecision, n: int) -> Any:
        calls["fallback_plan"] += 1
        return fallback_plan(self, n)

    monkeypatch.setattr(RoutingOptions, "from_mapping", classmethod(counting_from_mapping))
    monkeypatch.setattr(RoutingDecision, "fallback_plan", counting_plan)
    integration.call(MATH_PROMPT, lambda_=0.9)
    expected_reads = 0 if isinstance(integration, LlamaIndex) else 1
    assert calls == {"from_mapping": expected_reads, "fallback_plan": 1}


def test_every_routed_call_gets_its_own_decision_id(integration: Integration) -> None:
    ids = [integration.call(MATH_PROMPT).decision_id for _ in range(3)]
    assert len(set(ids)) == 3
    assert all(isinstance(i, str) and len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_cut_answer_is_escalated_the_same_way_everywhere(integration: Integration) -> None:
    integration.cut_below(256)  # maths answers need 256 tokens
    decision = ROUTER.route_text(MATH_PROMPT, lambda_=1.0)  # the cheapest arm: a budget below 256
    assert decision.token_limit is not None and decision.token_limit < 256
    sent = integration.call(MATH_PROMPT, lambda_=1.0)
    (cut,) = sent.escalations
    assert (cut["model"], cut["token_limit"], cut["finish_reason"]) == (decision.model, decision.token_limit, "length")
    bigger = min(b for b in ROUTER.config.budgets if b is not None and b > decision.token_limit)
    assert (sent.model, sent.cap) == (decision.model, bigger)  # the next larger budget of the same model
