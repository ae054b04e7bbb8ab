"""One table of execution cases that every integration must pass alike (LangChain, LlamaIndex, the gateway).

Each :class:`Case` says how the pool's upstreams misbehave (per arm of the decision's
fallback plan: 5xx, timeout, 429, 400, ``TypeError``; or answers cut below a cap), how
the integration is configured (serving settings, routing options) and what must come
out: which arm answers, which attempts failed and of what kind, the escalations, the
call's cost (summed over every answered attempt at the pool's prices), and the
decision-log rows (exactly one row per call, carrying every failed attempt; one more
per cut answer).

An integration's test module drives its own framework with an adapter that

* arranges the faults (:meth:`Case.fault_of` names the fault of each pool model for a
  decision; :func:`exception_for` gives the exception an in-process fake raises; a stub
  server answers the same with a status code),
* makes the call(s) in one of its modes (sync, async, stream...),
* returns one :class:`Observed` per call,

and then calls :func:`check`. The oracle is the core router's own decision for
:data:`PROMPT`. The table is shared: the gateway's tests import it too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from r2router_core import Budget, ExplorationPolicy, ModelSpec, R2Router, RouterConfig, RoutingDecision, TrainingData
from r2router_core.execute.records import call_cost
from r2router_core.store import DecisionRecord
from r2router_core.testing import HashEmbedder

__all__ = [
    "CASES",
    "LONG_PROMPT",
    "PROMPT",
    "SHORT_PROMPT",
    "Case",
    "Fault",
    "FaultKind",
    "Observed",
    "UpstreamHTTPError",
    "case_ids",
    "check",
    "exception_for",
    "expected_arm",
    "input_price_router",
    "write_priced_upstreams",
]

PROMPT = "math question about algebra"
"""The prompt of every case (the server tests' ``MATH_PROMPT``: large@400 first, then medium, then small)."""

FaultKind = Literal["5xx", "timeout", "429", "400", "type_error"]
"""How an upstream call fails: HTTP 503, a timeout, HTTP 429, HTTP 400, a ``TypeError`` in the caller's code."""

Where = Literal["langchain", "llamaindex", "gateway"]
FRAMEWORKS: frozenset[Where] = frozenset({"langchain", "llamaindex"})
EVERYWHERE: frozenset[Where] = frozenset({"langchain", "llamaindex", "gateway"})

# the failure kinds the core's FallbackPolicy records for each fault
RECORDED_KIND: Mapping[FaultKind, str | None] = {
    "5xx": "http_5xx",
    "timeout": "timeout",
    "429": "http_429",
    "400": None,  # not a provider failure: raised at once, not recorded as a failed attempt
    "type_error": None,
}


@dataclass(frozen=True)
class Fault:
    """What one pool model's upstream does.

    Attributes:
        kind: The failure.
        times: Fail only this many times, then answer (``None``: always).
        retry_after: With ``429``: the ``Retry-After`` seconds sent (``None``: no header).
    """

    kind: FaultKind
    times: int | None = None
    retry_after: float | None = None


class UpstreamHTTPError(Exception):
    """An HTTP error as provider SDKs raise it (``status_code`` and a ``response`` with headers)."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status} from the stub upstream")
        self.status_code = status
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}

        class _Response:
            pass

        response = _Response()
        response.headers = headers  # type: ignore[attr-defined]
        response.status_code = status  # type: ignore[attr-defined]
        self.response = response


def exception_for(fault: Fault) -> BaseException:
    """The exception an in-process fake pool model raises for ``fault``."""
    if fault.kind == "timeout":
        return TimeoutError("the stub upstream timed out")
    if fault.kind == "type_error":
        return TypeError("create() got an unexpected keyword argument 'temprature'")
    status = {"5xx": 503, "429": 429, "400": 400}[fault.kind]
    return UpstreamHTTPError(status, fault.retry_after)


Answered = Literal["chosen", "next_model", "next_budget", "explored", "none"]
"""Which arm answers: the decision's chosen arm, the fallback plan's second arm, the chosen model at its
next larger budget (escalation), an arm exploration may pick, or none (the call raises)."""


@dataclass(frozen=True)
class Expect:
    """What one call must show.

    Attributes:
        answered: Which arm answers (see :data:`Answered`).
        failed: The kinds of the failed attempts, in order.
        escalations: Cut answers asked again.
        rows: Decision-log rows the call writes (one, plus one per cut answer).
        status: The status of the call's own row.
        raises: The exception type the caller sees (``None``: an answer).
        upstream_calls: Calls that reached the pool (failed ones included).
    """

    answered: Answered
    failed: tuple[str, ...] = ()
    escalations: int = 0
    rows: int = 1
    status: str = "ok"
    raises: type[BaseException] | None = None
    upstream_calls: int = 1


@dataclass(frozen=True)
class Case:
    """One row of the table.

    Attributes:
        id: The test id.
        faults: Per position in the decision's fallback plan (0 = the chosen arm), its model's fault.
        expect: What a non-streamed call shows.
        stream: What a streamed call shows, when it differs (streams are never escalated).
        settings: Serving settings (``ServingSettings`` fields) of the integration.
        options: Routing options of the call (``lambda_``...).
        cut_below: Upstreams answer with finish reason ``length`` when their cap is below this.
        calls: How many calls the case makes (exploration needs many).
        where: The integrations the case applies to (a ``TypeError`` is raised by a caller's code
            in the same process, so only the frameworks have it).
    """

    id: str
    faults: Mapping[int, Fault]
    expect: Expect
    stream: Expect | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    cut_below: int | None = None
    calls: int = 1
    where: frozenset[Where] = EVERYWHERE

    def expected(self, *, streamed: bool) -> Expect:
        """The expectation of a streamed or non-streamed call."""
        return self.stream if streamed and self.stream is not None else self.expect

    def fault_of(self, decision: RoutingDecision) -> dict[str, Fault]:
        """Pool model -> its fault, for the faults' positions in ``decision``'s fallback plan."""
        plan = decision.fallback_plan(len(decision.candidates))
        return {plan[position].model: fault for position, fault in self.faults.items()}


def _every(fault: Fault, n: int = 3) -> dict[int, Fault]:
    return dict.fromkeys(range(n), fault)


CASES: tuple[Case, ...] = (
    Case("5xx_falls_back", {0: Fault("5xx")}, Expect("next_model", ("http_5xx",), upstream_calls=2)),
    Case("timeout_falls_back", {0: Fault("timeout")}, Expect("next_model", ("timeout",), upstream_calls=2)),
    Case("429_falls_back", {0: Fault("429")}, Expect("next_model", ("http_429",), upstream_calls=2)),
    Case(
        "429_with_short_retry_after_retries_the_same_arm",
        {0: Fault("429", times=1, retry_after=0)},
        Expect("chosen", ("http_429",), upstream_calls=2),
    ),
    Case(
        "400_is_raised_without_fallback",
        {0: Fault("400")},
        Expect("none", (), status="error", raises=Exception),
    ),
    Case(
        "type_error_is_raised_without_fallback",
        {0: Fault("type_error")},
        Expect("none", (), status="error", raises=TypeError),
        where=FRAMEWORKS,
    ),
    Case(
        "every_arm_failing_raises_with_one_row",
        _every(Fault("5xx")),
        Expect("none", ("http_5xx",) * 3, status="error", raises=Exception, upstream_calls=3),
    ),
    Case(
        "fallbacks_off_raises_the_first_failure",
        {0: Fault("5xx")},
        Expect("none", ("http_5xx",), status="error", raises=Exception),
        settings={"fallbacks": 0},
    ),
    Case(
        "a_cut_answer_is_escalated_once",
        {},
        Expect("next_budget", escalations=1, rows=2, upstream_calls=2),
        stream=Expect("chosen"),
        options={"lambda_": 1.0},  # the cheapest arm: small@100, cut below 256
        cut_below=256,
    ),
    Case(
        "exploration_logs_its_propensity",
        {},
        Expect("explored"),
        settings={"explore": 0.5},
        calls=30,
    ),
)
"""The table."""


def case_ids(where: Where) -> list[Case]:
    """The cases that apply to an integration."""
    return [case for case in CASES if where in case.where]


@dataclass
class Observed:
    """What one call showed.

    Attributes:
        model: The pool model that answered (``None``: the call raised).
        cap: The output cap the answering upstream call received.
        failed: The failed attempts the answer reports (``FailedAttempt.to_dict()`` form;
            for a raised call, those of its log row).
        escalations: The cut answers the answer reports.
        cost_usd: The call's cost as the answer reports it (``None`` for a raised call).
        decision_id: The call's id (``None`` for a raised call).
        error: What the call raised.
        billed: Per answered upstream call: (model, input tokens, output tokens) as reported.
        rows: The decision-log rows the call wrote.
        upstream_calls: How many calls reached the pool.
    """

    model: str | None
    cap: int | None
    failed: list[dict[str, Any]]
    escalations: list[dict[str, Any]]
    cost_usd: float | None
    decision_id: str | None
    error: BaseException | None
    billed: list[tuple[str, int, int]]
    rows: list[DecisionRecord]
    upstream_calls: int


def expected_arm(case: Case, decision: RoutingDecision, *, streamed: bool) -> tuple[str, Budget] | None:
    """The (model, budget) that answers a call of ``case`` (``None``: no answer, or any explored arm)."""
    answered = case.expected(streamed=streamed).answered
    if answered in ("none", "explored"):
        return None
    plan = decision.fallback_plan(len(decision.candidates))
    if answered == "chosen":
        return plan[0].model, plan[0].token_limit
    if answered == "next_model":
        return plan[1].model, plan[1].token_limit
    bigger = sorted(
        (c.token_limit for c in decision.candidates if c.model == decision.model and c.token_limit is not None),
    )
    above = [b for b in bigger if decision.token_limit is not None and b > decision.token_limit]
    return decision.model, (above[0] if above else None)


def _spec_prices(decision: RoutingDecision, model: str) -> Any:
    return next(m for m in decision._table.config.models if m.name == model)


def check(case: Case, decision: RoutingDecision, observed: Sequence[Observed], *, streamed: bool) -> None:
    """Assert that the calls of ``case`` showed what the table says (``decision``: the router's, the oracle).

    Raises:
        AssertionError: Naming the case and what differs.
    """
    expect = case.expected(streamed=streamed)
    assert len(observed) == case.calls, f"{case.id}: {len(observed)} calls observed, {case.calls} made"
    if expect.answered == "explored":
        _check_exploration(case, decision, observed)
        return
    (seen,) = observed
    where = f"{case.id} ({'stream' if streamed else 'call'})"
    assert seen.upstream_calls == expect.upstream_calls, f"{where}: {seen.upstream_calls} upstream calls"
    if expect.raises is not None:
        assert isinstance(seen.error, expect.raises), f"{where}: raised {seen.error!r}, not {expect.raises}"
        assert seen.model is None
    else:
        assert seen.error is None, f"{where}: raised {seen.error!r}"
        arm = expected_arm(case, decision, streamed=streamed)
        assert arm is not None
        assert seen.model == arm[0], f"{where}: answered by {seen.model}, not {arm[0]}"
        cap = decision.max_tokens_for(arm[1])
        assert seen.cap == cap, f"{where}: cap {seen.cap}, not {cap}"
        assert len(seen.escalations) == expect.escalations, f"{where}: escalations {seen.escalations}"
        want_cost = sum(call_cost(_spec_prices(decision, m), i, o) for m, i, o in seen.billed)
        assert len(seen.billed) == 1 + expect.escalations, f"{where}: billed {seen.billed}"
        assert seen.cost_usd is not None and math.isclose(seen.cost_usd, want_cost, rel_tol=1e-9, abs_tol=1e-15), (
            f"{where}: cost {seen.cost_usd}, the answers cost {want_cost}"
        )
    kinds = tuple(f["kind"] for f in seen.failed)
    assert kinds == expect.failed, f"{where}: failed attempts {kinds}, not {expect.failed}"
    _check_rows(where, expect, seen)


def _check_rows(where: str, expect: Expect, seen: Observed) -> None:
    assert len(seen.rows) == expect.rows, f"{where}: {len(seen.rows)} log rows, not {expect.rows}"
    final = seen.rows[-1]
    if seen.decision_id is not None:
        assert final.id == seen.decision_id, f"{where}: the last row is not the call's"
    assert final.status == expect.status, f"{where}: row status {final.status}"
    assert [f["kind"] for f in final.failed_attempts] == list(expect.failed), f"{where}: row's failed attempts"
    if expect.raises is None:
        assert seen.cost_usd is not None and final.cost_usd is not None
        assert math.isclose(final.cost_usd, seen.cost_usd, rel_tol=1e-9, abs_tol=1e-15), f"{where}: row cost"
        assert final.model == seen.model
    else:
        assert final.cost_usd == 0.0
    if expect.escalations:
        assert final.escalated_from == seen.rows[0].id and seen.rows[0].finish_reason == "length"


def _check_exploration(case: Case, decision: RoutingDecision, observed: Sequence[Observed]) -> None:
    policy = ExplorationPolicy.coerce(case.settings["explore"])
    others = policy.alternatives(decision)
    chosen = decision.chosen
    allowed: dict[tuple[str, Budget], float] = {(chosen.model, chosen.token_limit): 1.0 - policy.rate}
    allowed.update({(c.model, c.token_limit): policy.rate / len(others) for c in others})
    explored = 0
    for seen in observed:
        (row,) = seen.rows
        arm = (row.model, row.budget)
        assert arm in allowed, f"{case.id}: answered by {arm}, not among {sorted(allowed, key=str)}"
        assert row.propensity == allowed[arm], f"{case.id}: propensity {row.propensity} for {arm}"
        assert seen.model == row.model
        explored += arm != (chosen.model, chosen.token_limit)
    n = len(observed)
    assert 0.15 * n <= explored <= 0.85 * n, f"{case.id}: {explored} of {n} calls explored at rate {policy.rate}"


# -- input tokens: two models whose input prices differ 100x --------------------------------
SHORT_PROMPT = "Summarise the quarterly report for the board."
"""A short prompt: the better (input-expensive) model is worth its price."""

LONG_PROMPT = "Summarise the quarterly report for the board.\n\n" + " ".join(
    f"Revenue line {i} rose while costs held steady." for i in range(400)
)
"""The same request with ~3,000 words of context: its input cost makes the cheap model the better deal."""


def input_price_router() -> R2Router:
    """``good`` (quality 0.8, $100/M input) and ``cheap`` (0.7, $1/M input), $1/M output, one uncapped budget.

    Every prompt predicts the same qualities and 100 output tokens, so only the prompt's input
    tokens can change the choice: at lambda 0.5 a short prompt goes to ``good``, a long one to ``cheap``.
    """
    embedder = HashEmbedder(dim=16)
    prompts = [f"training prompt number {i}" for i in range(10)]
    quality = np.empty((10, 2, 1))
    quality[:, 0, 0], quality[:, 1, 0] = 0.8, 0.7
    config = RouterConfig(
        models=(
            ModelSpec("good", output_price=1.0, input_price=100.0),
            ModelSpec("cheap", output_price=1.0, input_price=1.0),
        ),
        budgets=(None,),
        lambda_=0.5,
        k=3,
        embedder=embedder.id,
    )
    data = TrainingData(embedder.embed(prompts), ("good", "cheap"), (None,), quality, np.full((10, 2), 100.0))
    return R2Router(config, data, embedder=embedder)


# -- pools from one file: upstreams.yaml with prices -------------------------------------------
def write_priced_upstreams(path: Path, base_url: str, router: R2Router, *, drop: str = "") -> Path:
    """The server tests' upstreams file (one stub, per-model cap fields and keys) with the router's prices.

    ``drop`` names a model whose prices are left out.
    """
    from .server.support import write_upstreams

    write_upstreams(path, base_url)
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        out.append(line)
        name = line.strip().rstrip(":")
        if line.startswith("  ") and not line.startswith("    ") and name in router.config.model_names and name != drop:
            spec = router.config.models[router.config.model_names.index(name)]
            out += [f"    input_price: {spec.input_price}", f"    output_price: {spec.output_price}"]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path
