"""The call plan: what a routed call does after its decision, without doing any of it.

A :class:`CallPlan` is built from a decision and the :class:`ServingSettings`.
It says what to do next and is told what happened; it never performs I/O (no
network, no sleeping, no log writes). The model is tenacity's
``BaseRetrying.iter()`` and h11's state machine: one object decides, thin
drivers (:mod:`r2router_core.execute.drivers`, and each integration's own
few lines) perform what it asks::

    plan = CallPlan.routed(decision, settings, source="langchain")
    while not isinstance(step := plan.next(), Done):
        if isinstance(step, Sleep):
            time.sleep(step.seconds)                  # a 429 asked to wait, or a same-arm backoff
            continue
        try:
            answer = call(step)                       # step: Attempt (arm, cap, instruction budget)
        except Exception as exc:
            plan.failed(step, exc)                    # provider failure: next arm; other errors: done
            continue
        plan.answered(step, facts(answer))            # finish reason, tokens, text
    outcome = step.outcome                            # status, the answering attempt, cost, log rows

What the plan owns, so that LangChain, LlamaIndex, the gateway and the
collector cannot drift apart:

* the order of attempts: the chosen arm (or the arm exploration drew, with its
  propensity), then the fallback plan's other models; a 429 with a short
  ``Retry-After`` retries the same arm once after a :class:`Sleep`; a policy with
  same-arm ``retries`` backs off and retries provider failures on the same arm
  (the collector's case);
* escalation: an answer the cap cut (finish reason ``length``) is asked again at
  the next larger budget (never for streams); a failed escalation returns the cut answer;
* the cost of every attempt (reported tokens at the pool's prices; the prompt's
  counted tokens when the provider reports none) and of the call;
* the failed attempts, and the decision-log rows: one per cut answer (a quality
  signal for its arm) and the call's own row, or one ``error`` row when every
  attempt failed;
* shadow mode (:meth:`CallPlan.shadowed`): the team's current model answers as a
  plain proxy would while the router's decision, attached with :meth:`CallPlan.decided`
  whenever it is ready, is logged beside the baseline's real usage and cost; with
  ``shadow_sample`` the router answers a drawn share (:meth:`ServingSettings.router_answers`)
  and its rows carry the propensity.

States (h11-style; a call out of turn raises :class:`PlanStateError`)::

    READY --next()--> ATTEMPTING --failed()/answered()--> READY ... --> DONE
                       \\--committed()--> STREAMING --answered()/failed()--> DONE
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from r2router_core.engine.config import Budget, ModelSpec, format_budget
from r2router_core.engine.decision import Candidate, RoutingDecision
from r2router_core.errors import ConfigError, R2RouterError, UnknownModelError
from r2router_core.execute.escalation import Escalation, EscalationPolicy, TruncatedAttempt
from r2router_core.execute.fallback import FailedAttempt, FallbackPolicy
from r2router_core.execute.records import call_cost, decision_record
from r2router_core.execute.settings import ServingSettings
from r2router_core.store.decision_log import new_decision_id

if TYPE_CHECKING:
    from r2router_core.store import DecisionRecord

__all__ = [
    "AnswerFacts",
    "Attempt",
    "CallOutcome",
    "CallPlan",
    "Done",
    "PlanStateError",
    "Sleep",
    "Step",
]

AttemptKind = Literal["first", "fallback", "retry", "escalation"]
Status = Literal["ok", "error", "abandoned"]


class PlanStateError(R2RouterError, RuntimeError):
    """A driver called the plan out of turn (a bug in the driver, not a provider failure)."""


@dataclass(frozen=True)
class AnswerFacts:
    """What an answer reported (any field may be unknown).

    Attributes:
        finish_reason: The provider's finish reason (``"length"`` = the cap cut it).
        input_tokens: Prompt tokens the provider billed.
        output_tokens: Answer tokens the provider billed.
        text: The answer's text (kept in the log only with ``keep_text``).
    """

    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    text: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One call the driver must make.

    Attributes:
        arm: The candidate to call (its model, budget and predictions).
        cap: The output-token cap to send (``None``: no cap).
        instruction_budget: The budget to state in the length instruction (``None``: add none).
        kind: ``first``, ``fallback`` (another model), ``retry`` (the same arm again) or ``escalation``.
        number: 1 for the first attempt of the call, then 2, 3...
        failures: The attempts that failed before this one.
    """

    arm: Candidate
    cap: int | None
    instruction_budget: int | None
    kind: AttemptKind
    number: int
    failures: tuple[FailedAttempt, ...] = ()

    @property
    def model(self) -> str:
        """The pool model to call."""
        return self.arm.model

    @property
    def token_limit(self) -> Budget:
        """The arm's budget (``None`` = uncapped)."""
        return self.arm.token_limit

    def __str__(self) -> str:
        return f"{self.kind} attempt {self.number}: {self.model}@{format_budget(self.cap)}"


@dataclass(frozen=True)
class Sleep:
    """Wait this many seconds, then ask :meth:`CallPlan.next` again."""

    seconds: float


@dataclass(frozen=True)
class CallOutcome:
    """How a call ended.

    Attributes:
        decision_id: The call's id (in the answer's metadata, headers and the log).
        status: ``ok`` (answered), ``error`` (every attempt failed, or an error that is not the
            provider's) or ``abandoned`` (the caller left before the answer was complete).
        answered: The attempt whose answer is returned (``None`` when none answered).
        facts: What that answer reported.
        failures: Every failed attempt, in order.
        truncated: The answers the cap cut, asked again with more room.
        cost_usd: USD of every answer of the call (cut ones included).
        input_cost_usd: The input-token part of ``cost_usd``.
        output_cost_usd: The output-token part of ``cost_usd``.
        attempts: Calls made.
        propensity: The probability the first arm had under exploration (1.0 without).
        paid: ``(model, budget, USD)`` of every answer the call paid for, cut and abandoned ones included.
        records: The decision-log rows (empty for a plan without a decision).
        error: The error to raise when ``status`` is not ``ok``.
    """

    decision_id: str
    status: Status
    answered: Attempt | None
    facts: AnswerFacts | None
    failures: tuple[FailedAttempt, ...]
    truncated: tuple[TruncatedAttempt, ...]
    cost_usd: float
    input_cost_usd: float
    output_cost_usd: float
    attempts: int
    propensity: float
    paid: tuple[tuple[str, Budget, float], ...] = ()
    records: tuple[DecisionRecord, ...] = ()
    error: BaseException | None = None

    def raise_error(self) -> None:
        """Raise the call's error if it did not end ``ok``."""
        if self.status != "ok" and self.error is not None:
            raise self.error


@dataclass(frozen=True)
class Done:
    """The call is over; :attr:`outcome` says how."""

    outcome: CallOutcome


Step = Attempt | Sleep | Done


class _State(Enum):
    READY = "ready"
    ATTEMPTING = "attempting"
    STREAMING = "streaming"
    DONE = "done"


@dataclass
class _Answer:
    attempt: Attempt
    facts: AnswerFacts
    input_cost: float
    output_cost: float

    @property
    def cost(self) -> float:
        return self.input_cost + self.output_cost


@dataclass
class _Context:
    """What the log rows need besides the attempts."""

    source: str
    embedding: Any = None
    prompt: str | None = None
    started: float = field(default_factory=time.perf_counter)


class CallPlan:
    """The attempts, escalations, costs and log rows of one call (see the module docstring).

    Build it with :meth:`routed` (a routing decision) or :meth:`fixed` (one given arm: the
    collector). Not thread-safe: one plan per call.
    """

    def __init__(
        self,
        arms: Sequence[Candidate],
        *,
        specs: dict[str, ModelSpec],
        cap: Callable[[Budget], int | None],
        policy: FallbackPolicy,
        decision: RoutingDecision | None = None,
        escalation: EscalationPolicy | None = None,
        instruct: bool = True,
        propensity: float = 1.0,
        decision_id: str | None = None,
        prompt_tokens: int | None = None,
        context: _Context | None = None,
        rng: np.random.Generator | None = None,
        clock: Callable[[], float] = time.perf_counter,
        shadow: dict[str, Any] | None = None,
    ) -> None:
        if not arms:
            raise PlanStateError("a call plan needs at least one arm")
        self._arms = list(arms)
        self._specs = specs
        self._cap = cap
        self._policy = policy
        self._decision = decision
        self._escalation_policy = escalation or EscalationPolicy(0)
        self._instruct = instruct
        self._propensity = propensity
        self._prompt_tokens = prompt_tokens
        self._ctx = context or _Context(source="plan")
        self._rng = rng if rng is not None else np.random.default_rng()
        self._clock = clock
        self.decision_id = decision_id or new_decision_id()
        self._state = _State.READY
        self._next_arm = 0
        self._number = 0
        self._current: Attempt | None = None
        self._failures: list[FailedAttempt] = []
        self._answers: list[_Answer] = []
        self._escalation: Escalation | None = None
        self._retry_arm: Candidate | None = None
        self._retry_wait: float = 0.0
        self._retries_of_arm = 0
        self._slept = False
        self._stop = False
        self._error: BaseException | None = None
        self._status: Status | None = None
        self._outcome: CallOutcome | None = None
        self.steps = 0  # how many steps next() has given (drivers' tests count them)
        self._shadow = shadow  # shadow mode: who answered, the baseline, its predictions

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def routed(
        cls,
        decision: RoutingDecision,
        settings: ServingSettings,
        *,
        source: str,
        stream: bool = False,
        decision_id: str | None = None,
        embedding: Any = None,
        prompt: str | None = None,
        prompt_tokens: int | None = None,
        rng: np.random.Generator | None = None,
        started: float | None = None,
    ) -> CallPlan:
        """The plan of a routed call: exploration draws the first arm, then the fallback plan.

        Args:
            decision: The call's routing decision.
            settings: The serving settings.
            source: Who serves the call (``langchain``, ``llamaindex``, ``gateway``...), for the log.
            stream: A streamed call (never escalated).
            decision_id: The call's id (default: a fresh one).
            embedding: The prompt's embedding, for the log row.
            prompt: The routed text, for the log row (kept only with ``keep_text``).
            prompt_tokens: The prompt's counted tokens, priced when the provider reports none.
            rng: The exploration draws' generator.
            started: When the call started (``time.perf_counter``), for the logged latency.
        """
        rng = rng if rng is not None else np.random.default_rng(settings.seed)
        policy = settings.fallback
        plan = list(decision.fallback_plan(policy.max_fallbacks))
        first, propensity = settings.exploration.choose(decision, rng)
        if first != decision.chosen:
            plan = [first, *(c for c in plan if c.model != first.model)][: policy.max_fallbacks + 1]
        config = decision._table.config
        shadow = None
        if settings.shadow is not None:  # shadow mode drew the router for this call
            _check_shadow(settings.shadow, config.model_names)
            propensity *= settings.shadow_sample
            shadow = _shadow_info(decision, settings.shadow, "router")
        return cls(
            plan,
            specs={m.name: m for m in config.models},
            cap=decision.max_tokens_for,
            policy=policy,
            decision=decision,
            escalation=EscalationPolicy(0) if stream else settings.escalation_policy,
            instruct=settings.length_instruction,
            propensity=propensity,
            decision_id=decision_id,
            prompt_tokens=prompt_tokens if prompt_tokens is not None else decision.options.input_tokens,
            context=_Context(
                source=source,
                embedding=embedding,
                prompt=prompt,
                started=time.perf_counter() if started is None else started,
            ),
            rng=rng,
            shadow=shadow,
        )

    @classmethod
    def shadowed(
        cls,
        settings: ServingSettings,
        models: Sequence[ModelSpec],
        *,
        source: str,
        max_tokens: int | None = None,
        decision_id: str | None = None,
        prompt: str | None = None,
        prompt_tokens: int | None = None,
        rng: np.random.Generator | None = None,
        started: float | None = None,
    ) -> CallPlan:
        """The plan of a call the shadow baseline answers, exactly as a plain proxy would.

        One attempt of ``settings.shadow`` with the caller's own cap (``max_tokens``), no length
        instruction, no fallback, retry or escalation. The router may decide meanwhile (in the
        background): :meth:`decided` attaches its decision, and the log row then holds the router's
        choice and predictions beside the baseline's real usage and cost.

        Raises:
            ConfigError: ``settings.shadow`` is not set.
            UnknownModelError: The baseline is not a pool model.
        """
        if settings.shadow is None:
            raise ConfigError("CallPlan.shadowed needs ServingSettings(shadow=MODEL)", field="shadow")
        specs = {m.name: m for m in models}
        _check_shadow(settings.shadow, tuple(specs))
        spec = specs[settings.shadow]
        baseline = _unpredicted(spec, None)
        return cls(
            [baseline],
            specs=specs,
            cap=lambda _: max_tokens,
            policy=FallbackPolicy(max_fallbacks=0, max_retry_after=0.0),
            instruct=False,
            propensity=1.0 - settings.shadow_sample,
            decision_id=decision_id,
            prompt_tokens=prompt_tokens,
            context=_Context(
                source=source, prompt=prompt, started=time.perf_counter() if started is None else started
            ),
            rng=rng,
            shadow={"baseline": spec.name, "answered_by": "baseline"},
        )

    def decided(self, decision: RoutingDecision, *, embedding: Any = None) -> None:
        """Attach the router's decision to a shadow call (before or after the baseline answered).

        The log rows are (re)built with it: the router's choice and predictions, the baseline's
        real usage and cost, and the baseline's own predictions for comparison.
        """
        if self._shadow is None or self._shadow.get("answered_by") != "baseline":
            raise PlanStateError("decided() is for shadow calls answered by the baseline (CallPlan.shadowed)")
        self._decision = decision
        self._ctx.embedding = embedding if embedding is not None else self._ctx.embedding
        self._shadow = _shadow_info(decision, self._shadow["baseline"], "baseline")
        if self._outcome is not None:
            self._outcome = self._build_outcome()

    @classmethod
    def fixed(
        cls,
        spec: ModelSpec,
        budget: Budget,
        *,
        cap: int | None,
        policy: FallbackPolicy,
        instruct: bool = True,
        prompt_tokens: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> CallPlan:
        """The plan of one given arm (the collector's cell): same-arm retries only, no log rows."""
        return cls(
            [_unpredicted(spec, budget)],
            specs={spec.name: spec},
            cap=lambda _: cap,
            policy=policy if policy.max_fallbacks == 0 else _no_fallback(policy),
            instruct=instruct,
            prompt_tokens=prompt_tokens,
            context=_Context(source="collect"),
            rng=rng,
        )

    # -- what to do next ---------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Whether the call is over."""
        return self._state is _State.DONE

    @property
    def failures(self) -> tuple[FailedAttempt, ...]:
        """The failed attempts so far."""
        return tuple(self._failures)

    @property
    def _is_baseline(self) -> bool:
        return self._shadow is not None and self._shadow.get("answered_by") == "baseline"

    @property
    def propensity(self) -> float:
        """The probability of the first arm under exploration (1.0 without)."""
        return self._propensity

    def next(self) -> Step:
        """The next step: an :class:`Attempt` to make, a :class:`Sleep`, or :class:`Done`.

        Raises:
            PlanStateError: An attempt is under way (report it with :meth:`answered` or :meth:`failed`).
        """
        if self._state is _State.DONE:
            return Done(self.outcome)
        if self._state is not _State.READY:
            raise PlanStateError(f"{self._current} has not been reported yet; call answered() or failed() first")
        self.steps += 1
        step = self._decide()
        if isinstance(step, Attempt):
            self._current = step
            self._state = _State.ATTEMPTING
        return step

    def __iter__(self) -> CallPlan:
        return self

    def _decide(self) -> Step:
        if self._answers:
            return self._after_answer()
        if self._retry_arm is not None:
            if self._retry_wait > 0 and not self._slept:
                self._slept = True
                return Sleep(self._retry_wait)
            arm, self._retry_arm, self._slept = self._retry_arm, None, False
            return self._attempt(arm, "retry")
        if self._stop or self._next_arm >= len(self._arms):
            return self._finish("error")
        arm = self._arms[self._next_arm]
        self._next_arm += 1
        self._retries_of_arm = 0
        return self._attempt(arm, "first" if self._next_arm == 1 else "fallback")

    def _after_answer(self) -> Step:
        last = self._answers[-1]
        if self._escalation is None or self._decision is None or self._is_baseline:
            return self._finish("ok")
        arm = self._escalation.after(last.facts.finish_reason, last.facts.output_tokens, last.cost)
        return self._finish("ok") if arm is None else self._attempt(arm, "escalation")

    def _attempt(self, arm: Candidate, kind: AttemptKind) -> Attempt:
        self._number += 1
        cap = self._cap(arm.token_limit)
        return Attempt(arm, cap, cap if self._instruct else None, kind, self._number, tuple(self._failures))

    # -- what happened -----------------------------------------------------------------------
    def _expect(self, attempt: Attempt, *states: _State) -> None:
        if self._state not in states or attempt is not self._current:
            raise PlanStateError(f"{attempt} is not the attempt under way ({self._current}, state {self._state.value})")

    def answered(self, attempt: Attempt, facts: AnswerFacts | None = None) -> None:
        """The attempt answered (for a stream: its last chunk arrived)."""
        self._expect(attempt, _State.ATTEMPTING, _State.STREAMING)
        facts = facts or AnswerFacts()
        spec = self._specs[attempt.model]
        input_tokens = facts.input_tokens if facts.input_tokens is not None else self._prompt_tokens
        answer = _Answer(
            attempt, facts, call_cost(spec, input_tokens, None), call_cost(spec, None, facts.output_tokens)
        )
        self._answers.append(answer)
        if attempt.kind != "escalation" and self._decision is not None and not self._is_baseline:
            self._escalation = Escalation(self._decision, self._escalation_policy, attempt.arm)
        if self._state is _State.STREAMING:
            self._current = None
            self._finish("ok")
            return
        self._current = None
        self._state = _State.READY

    def committed(self, attempt: Attempt) -> None:
        """The attempt's answer is on its way to the caller (a stream's first bytes are out).

        From here no other attempt can replace it: the plan waits for :meth:`answered`,
        :meth:`failed` or :meth:`abandoned`, then is done.
        """
        self._expect(attempt, _State.ATTEMPTING)
        self._state = _State.STREAMING

    def failed(self, attempt: Attempt, exc: BaseException) -> FailedAttempt | None:
        """The attempt raised ``exc``.

        A provider failure (timeout, connection, 5xx, 429) moves on: a same-arm retry when
        the policy allows one, else the next arm. Any other error (a 400, a ``TypeError``)
        ends the call at once with that error, as does any failure after :meth:`committed`
        or during an escalation (then the cut answer is returned).

        Returns:
            The failed attempt's record, or ``None`` for an error that is not the provider's.
        """
        self._expect(attempt, _State.ATTEMPTING, _State.STREAMING)
        streaming = self._state is _State.STREAMING
        self._current = None
        self._state = _State.READY
        failure = self._policy.failure(exc)
        if attempt.kind == "escalation" and not streaming:
            assert self._escalation is not None  # an escalation attempt exists only after an answer
            self._escalation.give_up()
            self._finish("ok")
            return None
        if failure is None or streaming:
            self._error = exc
            record = None if failure is None else FailedAttempt.of(attempt.model, attempt.token_limit, failure)
            if record is not None:
                self._failures.append(record)
            self._finish("error")
            return record
        record = FailedAttempt.of(attempt.model, attempt.token_limit, failure)
        self._failures.append(record)
        self._error = exc
        if not self._policy.moves_on(failure):
            self._stop = True
            return record
        delay = self._policy.retry_delay(failure)  # a 429 asking for a short wait: once, on any policy
        if self._retries_of_arm < self._policy.retries:
            self._retry_arm = attempt.arm
            self._retry_wait = self._policy.backoff_delay(self._retries_of_arm, failure, self._rng)
            self._retries_of_arm += 1
        elif delay is not None and self._retries_of_arm < 1:
            self._retry_arm, self._retry_wait = attempt.arm, delay
            self._retries_of_arm += 1
        return record

    def abandoned(self, attempt: Attempt, facts: AnswerFacts | None = None) -> None:
        """The caller left while the attempt ran or streamed: the call ends ``abandoned``.

        Whatever the provider reported so far is priced (it was paid for) and logged.
        """
        self._expect(attempt, _State.ATTEMPTING, _State.STREAMING)
        facts = facts or AnswerFacts(finish_reason="abandoned")
        self._state = _State.READY
        self._current = None
        spec = self._specs[attempt.model]
        input_tokens = facts.input_tokens if facts.input_tokens is not None else self._prompt_tokens
        self._answers.append(
            _Answer(attempt, facts, call_cost(spec, input_tokens, None), call_cost(spec, None, facts.output_tokens))
        )
        self._finish("abandoned")

    # -- the end -----------------------------------------------------------------------------
    def _finish(self, status: Status) -> Done:
        if self._state is not _State.DONE:
            self._status = status
            self._state = _State.DONE
            self._outcome = self._build_outcome()
        return Done(self.outcome)

    @property
    def outcome(self) -> CallOutcome:
        """How the call ended.

        Raises:
            PlanStateError: The call is not over yet.
        """
        if self._outcome is None:
            raise PlanStateError("the call is not over; drive the plan until next() returns Done")
        return self._outcome

    def _final_answer(self) -> _Answer | None:
        if not self._answers:
            return None
        if self._escalation is not None and self._status == "ok":
            used = self._escalation.current
            for answer in reversed(self._answers):
                if answer.attempt.arm == used:
                    return answer
        return self._answers[-1]

    def _build_outcome(self) -> CallOutcome:
        final = self._final_answer()
        status: Status = self._status or "error"
        truncated = tuple(self._escalation.truncated) if self._escalation is not None else ()
        last = final.attempt.number if final is not None else None
        counted = [a for a in self._answers if last is None or a.attempt.number <= last]
        cost_in = sum(a.input_cost for a in counted)
        cost_out = sum(a.output_cost for a in counted)
        error = self._error if status != "ok" else None
        if status == "error" and error is None:
            error = PlanStateError("the call ended without an answer or an error")
        if status == "error" and error is not None and len(self._failures) > 1:
            chain = "; ".join(str(f) for f in self._failures)
            error.add_note(f"r2router: all {len(self._failures)} attempts failed, in order: {chain}")
        outcome = CallOutcome(
            decision_id=self.decision_id,
            status=status,
            answered=final.attempt if final is not None and status == "ok" else None,
            facts=final.facts if final is not None else None,
            failures=tuple(self._failures),
            truncated=truncated,
            cost_usd=cost_in + cost_out,
            input_cost_usd=cost_in,
            output_cost_usd=cost_out,
            attempts=self._number,
            propensity=self._propensity,
            paid=tuple((a.attempt.model, a.attempt.token_limit, a.cost) for a in counted),
            error=error,
        )
        if self._decision is None:
            return outcome
        return _with_records(outcome, self._rows(final, counted, status))

    def _rows(self, final: _Answer | None, counted: list[_Answer], status: Status) -> list[DecisionRecord]:
        decision, ctx = self._decision, self._ctx
        assert decision is not None
        latency = self._clock() - ctx.started

        def row(arm: Candidate, facts: AnswerFacts, **fields: Any) -> DecisionRecord:
            record = decision_record(
                decision,
                decision.chosen if self._is_baseline else arm,  # shadow: the row names the router's choice
                source=ctx.source,
                embedding=ctx.embedding,
                prompt=ctx.prompt,
                propensity=self._propensity,
                failures=self._failures,
                answer=facts.text,
                input_tokens=facts.input_tokens,
                output_tokens=facts.output_tokens,
                latency_s=latency,
                **fields,
            )
            if self._shadow is None:
                return record
            return replace(record, options={**record.options, "shadow": dict(self._shadow)})

        if final is None:  # every attempt failed: one error row naming the last arm tried
            last = (self._failures[-1].model, self._failures[-1].token_limit) if self._failures else None
            arm = next((c for c in decision.candidates if (c.model, c.token_limit) == last), self._arms[0])
            error = AnswerFacts(finish_reason="error")
            return [row(arm, error, decision_id=self.decision_id, finish_reason="error", cost_usd=0.0, status="error")]
        rows: list[DecisionRecord] = []
        previous: str | None = None
        for cut in counted[:-1]:  # each cut answer: a quality signal for its arm
            row_id = new_decision_id()
            rows.append(
                row(
                    cut.attempt.arm,
                    cut.facts,
                    decision_id=row_id,
                    escalated_from=previous,
                    finish_reason=cut.facts.finish_reason,
                    cost_usd=cut.cost,
                )
            )
            previous = row_id
        rows.append(
            row(
                final.attempt.arm,
                final.facts,
                decision_id=self.decision_id,
                escalated_from=previous,
                finish_reason="abandoned" if status == "abandoned" else final.facts.finish_reason,
                cost_usd=sum(a.cost for a in counted),
                status=status,
            )
        )
        return rows


def _with_records(outcome: CallOutcome, rows: list[DecisionRecord]) -> CallOutcome:
    return replace(outcome, records=tuple(rows))


def _no_fallback(policy: FallbackPolicy) -> FallbackPolicy:
    return replace(policy, max_fallbacks=0)


def _unpredicted(spec: ModelSpec, budget: Budget) -> Candidate:
    """An arm called without a routing prediction (the collector's cell, the shadow baseline)."""
    return Candidate(
        model=spec.name,
        model_full_name=spec.full_name,
        token_limit=budget,
        predicted_quality=math.nan,
        predicted_tokens=math.nan,
        predicted_cost=math.nan,
        utility=math.nan,
        eligible=True,
    )


def _check_shadow(baseline: str, pool: Sequence[str]) -> None:
    if baseline not in pool:
        raise UnknownModelError(f"shadow model {baseline!r} is not in the pool {list(pool)}; name one of them")


def _shadow_info(decision: RoutingDecision, baseline: str, answered_by: str) -> dict[str, Any]:
    """Who answered, the baseline, and the router's predictions for the baseline at its largest budget."""
    own = [c for c in decision.candidates if c.model == baseline]
    best = max(own, key=lambda c: math.inf if c.token_limit is None else c.token_limit) if own else None
    return {
        "baseline": baseline,
        "answered_by": answered_by,
        "baseline_budget": None if best is None else best.token_limit,
        "baseline_predicted_quality": None if best is None else best.predicted_quality,
        "baseline_predicted_cost": None if best is None else best.predicted_cost,
    }
