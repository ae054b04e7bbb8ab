"""The collector: call every planned (prompt, model, budget) cell, store each outcome, grade it.

Every cell is one run of the core's call plan
(:meth:`~r2router_core.execute.CallPlan.fixed`, driven by
:func:`~r2router_core.execute.adrive`): one given arm, no fallback, escalation or
exploration, same-arm retries of provider failures with the serving backoff. The
request (cap and length instruction), the retries and the cost of a cell are thus
those of a served call by construction.

Resumable by construction: a call's row is written the moment its answer is in,
and its rule grades right after it, and a rerun plans only cells without an ``ok``
row, so Ctrl-C or ``kill -9`` at any moment loses at most the calls in flight and
never repeats a finished one. A failed call (retries exhausted, or a 4xx) is stored
as ``error`` and the run goes on; the next run tries that cell again.

Money:

* ``max_usd`` is a cap on spend: a call starts only if the spend so far plus the
  worst case of every call in flight (its own included) stays within it; a call
  that does not fit waits for the calls in flight to settle, and the run stops only
  when it would not fit with nothing in flight. Judges count against the same cap.
* Every pool model needs a price (0 is a price: free); an upstream without one is
  refused before any call unless the store already holds its prices.
* Before the first cell, one call of one token per pool model (the preflight)
  names every upstream that cannot be reached or refuses the request, and nothing
  is collected. During the run, a model whose upstream fails ``pause_after``
  times in a row on connection errors is paused (one message, with its URL); the
  rest of the pool goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2router_core import Budget, ConfigError, FailureKind, ModelSpec, classify, missing_dependency
from r2router_core.execute import AnswerFacts, Attempt, CallOutcome, CallPlan, adrive
from r2router_core.store import CallRecord, GradeRecord, OutcomeStore, PromptRecord, StoredCall
from r2router_integrations.collect.graders import (
    PER_ROW,
    GradeCheck,
    JudgeGrader,
    RuleGrader,
    check_grades,
    import_chat_model,
    judge_target,
    parse_judge_score,
    per_row_grader,
    rule_grader,
)
from r2router_integrations.collect.grading import GradeResult, judge_worst_usd, plan_grading
from r2router_integrations.collect.limits import CallGate, Limits
from r2router_integrations.collect.logged import LogGradePlan, LogGradeResult, feedback_source, plan_log_grading
from r2router_integrations.collect.plan import (
    DEFAULT_UNCAPPED_MAX_TOKENS,
    Cell,
    CollectPlan,
    build_plan,
    estimate_input_tokens,
)
from r2router_integrations.collect.pool import (
    Answer,
    ChatModelMember,
    PoolMember,
    UpstreamMember,
    cost_usd,
    pool_from_upstreams,
)

if TYPE_CHECKING:
    import httpx
    from langchain_core.language_models import BaseChatModel

__all__ = [
    "EXIT_CELLS_FAILED",
    "EXIT_MAX_USD",
    "CollectResult",
    "PreflightError",
    "acollect",
    "agrade",
    "agrade_log",
    "chat_model_pool",
    "collect",
    "grade",
    "grade_log",
]

logger = logging.getLogger(__name__)

Grader = RuleGrader | JudgeGrader

EXIT_CELLS_FAILED = 3
"""Exit code of a run that left cells failed or not called (an upstream paused); a rerun retries them."""

EXIT_MAX_USD = 4
"""Exit code of a run stopped by ``--max-usd`` before every cell was called."""

PREFLIGHT_PROMPT = "Reply with OK."
"""The one-token preflight call's prompt."""


class PreflightError(ConfigError):
    """The preflight found pool models that cannot be called (each named with its URL)."""


@dataclass(frozen=True)
class CollectResult:
    """What a run did.

    Attributes:
        plan: The plan it ran.
        calls: Calls made and stored (ok + error).
        errors: Of those, calls that failed.
        graded: Grades stored.
        spent_usd: Cost of this run's calls and grading (the preflight included).
        stopped_at_max_usd: The run stopped before ``max_usd`` would have been passed.
        remaining: Planned cells not called (stopped early, or their upstream paused).
        judge_spent_usd: Of ``spent_usd``, what the judges cost.
        unscored: Answers a judge did not score (stored without a score, with the reason).
        paused: The pool models paused after connection errors in a row, with their URLs.
        skipped: Of ``remaining``, cells not called because their upstream was paused.
        checks: The spread of each grader's scores after the run (a degenerate one is loud).
    """

    plan: CollectPlan
    calls: int
    errors: int
    graded: int
    spent_usd: float
    stopped_at_max_usd: bool
    remaining: int
    judge_spent_usd: float = 0.0
    unscored: int = 0
    paused: tuple[str, ...] = ()
    skipped: int = 0
    checks: tuple[GradeCheck, ...] = ()

    @property
    def done_cells(self) -> int:
        """Cells of the full grid done (``ok``) after this run."""
        return self.plan.done_cells + self.calls - self.errors

    @property
    def exit_code(self) -> int:
        """0: every cell done; :data:`EXIT_MAX_USD`: stopped by the cap; :data:`EXIT_CELLS_FAILED`: cells failed."""
        if self.stopped_at_max_usd:
            return EXIT_MAX_USD
        return EXIT_CELLS_FAILED if self.errors or self.remaining else 0

    def describe(self) -> str:
        """A paragraph for people."""
        text = (
            f"{self.calls} calls made ({self.errors} failed), {self.graded} grades stored, "
            f"${self.spent_usd:.4f} spent (pool ${self.spent_usd - self.judge_spent_usd:.4f}, "
            f"judges ${self.judge_spent_usd:.4f}); {self.done_cells} of {self.plan.total_cells} cells done"
        )
        if self.unscored:
            text += f"; {self.unscored} answers the judge did not score (stored without a score, with the reason)"
        if self.paused:
            text += (
                f". Paused after connection errors in a row: {', '.join(self.paused)}; {self.skipped} of their "
                "cells were not called: fix the upstream and run again"
            )
        if self.stopped_at_max_usd:
            text += f". Stopped at --max-usd: {self.remaining} calls not made; run again with a higher limit to go on"
        elif self.errors:
            text += ". Failed cells are stored as errors; run again to retry them"
        return "\n".join([text, *(c.describe() for c in self.checks if c.degenerate)])


class _Spend:
    """A run's spend against its cap: a call starts only if ``spent`` plus the worst case of
    every call in flight fits; one that does not fit waits for calls in flight to settle."""

    def __init__(self, ceiling: float | None) -> None:
        self.ceiling, self.spent, self.judges, self.reserved, self.stopped = ceiling, 0.0, 0.0, 0.0, False
        self.in_flight = 0
        self._changed: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    async def reserve(self, worst: float) -> bool:
        """Reserve ``worst`` for one call; ``False`` (and the run stops) if it cannot fit even alone."""
        while True:
            if self.stopped:
                return False
            if self.ceiling is None or self.spent + self.reserved + worst <= self.ceiling:
                self.reserved += worst
                self.in_flight += 1
                return True
            if self.in_flight == 0:
                self.stopped = True
                self._event().set()
                return False
            event = self._event()
            event.clear()
            await event.wait()

    def settle(self, worst: float, actual: float, *, judge: bool = False) -> None:
        """A reserved call ended and cost ``actual``."""
        self.in_flight -= 1
        self.reserved = self.reserved - worst if self.in_flight else 0.0
        self.spent += actual
        if judge:
            self.judges += actual
        self._event().set()


class _Progress:
    """tqdm bar with spend and errors, or nothing."""

    def __init__(self, total: int, enabled: bool | None, spend: _Spend) -> None:
        self._bar: Any = None
        self._spend, self.errors = spend, 0
        if enabled is False or total == 0:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self._bar = tqdm(total=total, unit="call", disable=None if enabled is None else not enabled, dynamic_ncols=True)

    def step(self, failed: bool) -> None:
        self.errors += failed
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(f"${self._spend.spent:.4f} spent, {self.errors} errors", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _Paused(Exception):
    """The model's upstream was paused (not a provider failure: the plan ends at once, nothing stored)."""


class _Health:
    """Connection errors in a row per pool model; a model past ``pause_after`` is paused."""

    def __init__(self, pause_after: int) -> None:
        self.pause_after = pause_after
        self._in_row: dict[str, int] = {}
        self.paused: dict[str, str] = {}

    def check(self, member: PoolMember) -> None:
        if member.spec.name in self.paused:
            raise _Paused(self.paused[member.spec.name])

    def ok(self, member: PoolMember) -> None:
        self._in_row[member.spec.name] = 0

    def failed(self, member: PoolMember, exc: BaseException) -> None:
        name = member.spec.name
        if not _unreachable(exc):
            self._in_row[name] = 0
            return
        self._in_row[name] = n = self._in_row.get(name, 0) + 1
        if n >= self.pause_after and name not in self.paused:
            self.paused[name] = f"{name} ({_where(member)})"
            logger.error(
                "pool model %s at %s failed %d times in a row on connection errors (last: %s); paused for the rest "
                "of this run, the other models go on",
                name,
                _where(member),
                n,
                exc,
            )


def _unreachable(exc: BaseException) -> bool:
    """A connection error, or a timeout while connecting (the upstream cannot be reached)."""
    failure = classify(exc)
    return failure is not None and (
        failure.kind is FailureKind.CONNECTION or type(exc).__name__ in ("ConnectTimeout", "ConnectError")
    )


def _where(member: Any) -> str:
    return str(getattr(member, "where", type(member).__name__))


def chat_model_pool(
    models: Mapping[str, BaseChatModel],
    prices: Mapping[str, ModelSpec | Mapping[str, float]],
    *,
    cap_params: Mapping[str, str] | None = None,
) -> list[ChatModelMember]:
    """A pool of LangChain chat models with their prices (USD per 1M tokens).

    Args:
        models: Pool model name -> chat model.
        prices: Name -> ``ModelSpec`` or ``{"input_price": ..., "output_price": ...}`` (both; 0 = free).
        cap_params: Name -> the model's cap field, where it is not ``max_tokens``.

    Raises:
        ConfigError: A model without both prices.
    """
    missing = [
        name
        for name in models
        if name not in prices
        or (not isinstance(prices[name], ModelSpec) and not {"input_price", "output_price"} <= set(prices[name]))  # type: ignore[arg-type]
    ]
    if missing:
        raise ConfigError(
            f"no prices for pool model(s) {missing}; give input_price and output_price for each "
            "(USD per 1M tokens; 0 = free)"
        )
    members = []
    for name, model in models.items():
        price = prices[name]
        spec = price if isinstance(price, ModelSpec) else ModelSpec(name, **dict(price))  # type: ignore[arg-type]
        members.append(
            ChatModelMember(
                name,
                model,
                output_price=spec.output_price,
                input_price=spec.input_price,
                cap_param=(cap_params or {}).get(name),
            )
        )
    return members


def _messages(prompt: PromptRecord) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt.text}]


def _facts(answer: Answer) -> AnswerFacts:
    return AnswerFacts(answer.finish_reason, answer.input_tokens, answer.output_tokens, answer.text)


@dataclass
class _Tally:
    graded: int = 0
    unscored: int = 0
    judge_failed: int = 0
    skipped: int = 0


class _Collector:
    """One run over one pool: the gates, the spend, the health of each upstream, the store."""

    def __init__(
        self,
        store: OutcomeStore,
        pool: Sequence[PoolMember],
        limits: Limits,
        max_usd: float | None,
        *,
        instruct: bool = True,
        uncapped_max_tokens: int = DEFAULT_UNCAPPED_MAX_TOKENS,
    ) -> None:
        self.store, self.limits, self.instruct = store, limits, instruct
        self.uncapped_max_tokens = uncapped_max_tokens
        self.members = {m.spec.name: m for m in pool}
        self.gates: dict[int, CallGate] = {}
        self.spend = _Spend(max_usd)
        self.health = _Health(limits.pause_after)
        self.policy = limits.policy()
        self.tally = _Tally()

    def gate(self, member: Any) -> CallGate:
        return self.gates.setdefault(id(member), CallGate(self.limits))

    async def drive(
        self, member: PoolMember, messages: list[dict[str, str]], budget: Budget, *, instruct: bool
    ) -> tuple[Answer | None, CallOutcome, float]:
        """One cell through the core's call plan: same-arm retries only; every attempt passes the
        limiter and its own deadline. Returns the answer (``None`` when the call failed), the
        plan's outcome and the seconds of the answering attempt."""
        prompt_tokens = estimate_input_tokens(" ".join(m["content"] for m in messages))
        plan = CallPlan.fixed(member.spec, budget, cap=budget, policy=self.policy, instruct=instruct,
                              prompt_tokens=prompt_tokens)  # fmt: skip
        gate, latency = self.gate(member), 0.0

        async def attempt(step: Attempt) -> Answer:
            nonlocal latency
            self.health.check(member)
            started = time.perf_counter()
            try:
                answer = await gate.attempt(lambda: member.answer(messages, step.cap, step.instruction_budget))
            except Exception as exc:
                self.health.failed(member, exc)
                raise
            self.health.ok(member)
            latency = time.perf_counter() - started
            return answer

        try:
            answer, outcome = await adrive(plan, attempt, _facts)
        except Exception:  # the plan's error: recorded per call, the run goes on
            return None, plan.outcome, latency
        return answer, outcome, latency

    async def call_cell(
        self, plan: CollectPlan, cell: Cell, progress: _Progress, graders: Sequence[Grader]
    ) -> CallRecord | None:
        member = self.members[cell.model]
        if member.spec.name in self.health.paused:
            self.tally.skipped += 1
            return None
        worst = plan.worst_case_cell_usd(cell)
        async with self.gate(member).slot:
            if member.spec.name in self.health.paused:
                self.tally.skipped += 1
                return None
            if not await self.spend.reserve(worst):
                return None
            actual = 0.0
            try:
                answer, outcome, latency = await self.drive(
                    member, _messages(cell.prompt), cell.budget, instruct=self.instruct
                )
                if isinstance(outcome.error, _Paused):
                    self.tally.skipped += 1
                    return None
                actual = outcome.cost_usd
                record = _record(plan.prompt_set, cell, member, answer, outcome, latency)
                rules = [g for g in graders if isinstance(g, RuleGrader)]
                # the call and its rule grades in one worker: Ctrl-C cannot separate them
                call_id, graded = await asyncio.to_thread(self._store_call, record, cell.prompt, rules)
                self.tally.graded += graded
            finally:
                self.spend.settle(worst, actual)
        progress.step(record.status != "ok")
        if record.status == "ok":
            stored = StoredCall(call_id, record, cell.prompt)
            for grader in graders:  # judges grade as calls finish too
                if isinstance(grader, JudgeGrader):
                    await self.grade_call(grader, stored)
        return record

    def _store_call(self, record: CallRecord, prompt: PromptRecord, rules: Sequence[RuleGrader]) -> tuple[int, int]:
        """Write a call and, if it answered, its rule grades (in a worker thread); returns its id and the grades."""
        call_id = self.store.record_call(record)
        if record.status != "ok":
            return call_id, 0
        for grader in rules:
            self.store.record_grade(GradeRecord(call_id, grader.name, grader.score(record.answer or "", prompt)))
        return call_id, len(rules)

    async def grade_call(self, grader: Grader, stored: StoredCall) -> GradeRecord | None:
        answer = stored.call.answer or ""
        if isinstance(grader, RuleGrader):
            grade = GradeRecord(stored.id, grader.name, grader.score(answer, stored.prompt))
        else:
            messages = grader.messages(answer, stored.prompt)
            reply = await self.judge(grader, messages, f"call {stored.id}")
            if reply is None:
                return None
            text, outcome = reply
            score = parse_judge_score(text.text)
            self.tally.unscored += score is None
            grade = GradeRecord(
                stored.id,
                grader.name,
                score,
                reason=None if score is not None else f"unparseable judge answer: {text.text[:200]!r}",
                cost_usd=outcome.cost_usd,
                grader_calls=outcome.attempts,
                input_tokens=text.input_tokens,
                output_tokens=text.output_tokens,
                raw=text.text,
            )
        await asyncio.to_thread(self.store.record_grade, grade)
        self.tally.graded += 1
        return grade

    async def judge(
        self, grader: JudgeGrader, messages: list[dict[str, str]], what: str
    ) -> tuple[Answer, CallOutcome] | None:
        """One judge call under the cap (its spend kept apart); ``None``: over the cap or failed."""
        member = grader.member
        worst = judge_worst_usd(member.spec, messages[0]["content"], self.uncapped_max_tokens)
        async with self.gate(member).slot:
            if not await self.spend.reserve(worst):
                return None
            actual = 0.0
            try:
                reply, outcome, _ = await self.drive(member, messages, None, instruct=False)
                actual = outcome.cost_usd
            finally:
                self.spend.settle(worst, actual, judge=True)
        if reply is None:  # the judge failed: nothing stored, the next run asks again
            logger.warning("judge %s failed on %s: %s", grader.name, what, outcome.error)
            self.tally.judge_failed += 1
            return None
        return reply, outcome

    async def preflight(self, members: Sequence[PoolMember]) -> None:
        """One call of one token per pool model; every one that fails is named with its URL.

        A 429 passes (the upstream answered); any other failure stops the run before any cell.

        Raises:
            PreflightError: Pool models that cannot be called.
        """

        async def check(member: PoolMember) -> str | None:
            messages = [{"role": "user", "content": PREFLIGHT_PROMPT}]
            worst = (estimate_input_tokens(PREFLIGHT_PROMPT) * member.spec.input_price + member.spec.output_price) / 1e6
            if not await self.spend.reserve(worst):
                return None
            actual = 0.0
            try:
                answer = await self.gate(member).attempt(lambda: member.answer(messages, 1, None))
                actual = cost_usd(member.spec, answer.input_tokens, answer.output_tokens)
            except Exception as exc:
                failure = classify(exc)
                if failure is not None and failure.kind is FailureKind.RATE_LIMITED:
                    return None
                return f"{member.spec.name} ({_where(member)}): {failure.detail if failure else _one_line(exc)}"
            finally:
                self.spend.settle(worst, actual)
            return None

        problems = [p for p in await asyncio.gather(*(check(m) for m in members)) if p is not None]
        if problems:
            raise PreflightError(
                f"preflight: {len(problems)} of {len(members)} models cannot be called, nothing was collected: "
                + "; ".join(problems)
                + ". Fix the upstreams (or skip this check with --no-preflight)"
            )


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def _record(
    prompt_set: str, cell: Cell, member: PoolMember, answer: Answer | None, outcome: CallOutcome, latency: float
) -> CallRecord:
    if answer is None:
        error = outcome.error
        logger.warning("%s (%s) at budget %s on prompt %r failed after %d attempts: %s",
                       cell.model, _where(member), cell.budget, cell.prompt.id, outcome.attempts, error)  # fmt: skip
        return CallRecord(
            prompt_set,
            cell.prompt.id,
            cell.model,
            cell.budget,
            "error",
            attempts=max(outcome.attempts, 1),
            error=(f"{type(error).__name__}: {error}" if error is not None else "failed")[:1000],
            model_id=member.spec.full_name,
        )
    return CallRecord(
        prompt_set,
        cell.prompt.id,
        cell.model,
        cell.budget,
        "ok",
        answer=answer.text,
        finish_reason=answer.finish_reason,
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
        latency_s=latency,
        cost_usd=outcome.cost_usd,
        attempts=outcome.attempts,
        model_id=member.spec.full_name,
    )


def resolve_graders(
    specs: Sequence[str | Grader],
    *,
    client: httpx.AsyncClient | None = None,
    judge_upstreams: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    prompts: Sequence[PromptRecord] = (),
    judge_price: tuple[float, float] | None = None,
) -> list[Grader]:
    """Graders from specs (or ready graders).

    Args:
        specs: Grader specs or graders.
        client: The HTTP client of ``judge:UPSTREAM`` judges.
        judge_upstreams: The yaml of ``judge:UPSTREAM`` judges (priced there).
        environ: Where API keys are read from.
        prompts: The prompts (their rows' graders make ``per-row``).
        judge_price: (input, output) USD per 1M tokens of a ``judge:MODULE:ATTR`` judge.

    Raises:
        ConfigError: An unknown grader, a judge that cannot be built, or a judge without a price.
    """
    out: list[Grader] = []
    for spec in specs:
        if isinstance(spec, RuleGrader | JudgeGrader):
            out.append(spec)
            continue
        if isinstance(spec, str) and spec.strip() == PER_ROW:
            out.append(per_row_grader(prompts))
            continue
        rule = rule_grader(spec)
        if rule is not None:
            out.append(rule)
            continue
        out.append(_judge_grader(spec, client, judge_upstreams, environ, judge_price))
    return out


def _judge_grader(
    spec: str,
    client: httpx.AsyncClient | None,
    judge_upstreams: str | Path | None,
    environ: Mapping[str, str] | None,
    judge_price: tuple[float, float] | None,
) -> JudgeGrader:
    target = judge_target(spec)
    if ":" in target:
        if judge_price is None:
            raise ConfigError(
                f"grader {spec!r} is a LangChain chat model whose price r2router cannot know; give it with "
                "--judge-price IN,OUT (USD per 1M input and output tokens; 0,0 = free)"
            )
        model = import_chat_model(spec, target)
        chat = ChatModelMember(f"judge:{target}", model, input_price=judge_price[0], output_price=judge_price[1])
        return JudgeGrader(spec, chat)
    if judge_upstreams is None or client is None:
        raise ConfigError(f"grader {spec!r} names an upstream; give the yaml that defines it (--judge-upstreams)")
    (member,) = pool_from_upstreams(judge_upstreams, client, models=[target], environ=environ)
    if member.missing_prices:
        if judge_price is None:
            raise ConfigError(
                f"judge {target!r} has no {' or '.join(member.missing_prices)} in {judge_upstreams}; add its prices "
                "(USD per 1M tokens; 0 = free) or give --judge-price IN,OUT"
            )
        member.use_prices(ModelSpec(target, judge_price[1], judge_price[0]))
    return JudgeGrader(spec, member)


async def _grade_all(collector: _Collector, graders: Sequence[Grader], prompt_set: str | None) -> None:
    for grader in graders:
        todo = collector.store.ungraded_calls(grader.name, prompt_set)
        await asyncio.gather(*(collector.grade_call(grader, s) for s in todo))


def _open_pool(
    pool: str | Path | Sequence[PoolMember],
    client: httpx.AsyncClient,
    models: Sequence[str] | None,
    environ: Any,
) -> list[PoolMember]:
    if isinstance(pool, str | Path):
        return list(pool_from_upstreams(pool, client, models=models, environ=environ))
    members = list(pool)
    if models is not None:
        by_name = {m.spec.name: m for m in members}
        missing = [m for m in models if m not in by_name]
        if missing:
            raise ConfigError(f"no pool member for model(s) {missing}; the pool has {sorted(by_name)}")
        members = [by_name[m] for m in models]
    names = [m.spec.name for m in members]
    if len(set(names)) != len(names) or not names:
        raise ConfigError(f"pool model names must be unique and at least one, got {names}")
    return members


def _price_pool(members: Sequence[PoolMember], store: OutcomeStore, where: str | Path | None) -> None:
    """Every pool model priced: the yaml's price, else the store's (said once), else an error.

    Raises:
        ConfigError: Models with no price anywhere (all named), before any call.
    """
    stored = {m.name: m for m in store.models()}
    missing: list[str] = []
    for member in members:
        if not isinstance(member, UpstreamMember) or not member.missing_prices:
            continue
        known = stored.get(member.spec.name)
        if known is None:
            missing.append(f"{member.spec.name} (no {' or '.join(member.missing_prices)})")
            continue
        logger.warning("%s has no prices in %s; using the store's ($%g/$%g per 1M in/out)",
                       member.spec.name, where, known.input_price, known.output_price)  # fmt: skip
        member.use_prices(known)
    if missing:
        raise ConfigError(
            f"pool model(s) without a price: {', '.join(missing)} in {where}; add input_price and output_price "
            "(USD per 1M tokens; 0 = free) to each, so that costs, the --max-usd cap and the router see them"
        )


def _http_client(limits: Limits, n_models: int) -> httpx.AsyncClient:
    try:
        import httpx
    except ImportError as exc:
        raise missing_dependency("httpx", "collect", "r2router collect") from exc
    connections = max(10, limits.concurrency * max(n_models, 1) + 4)
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections))


async def acollect(
    prompts: Sequence[PromptRecord],
    pool: str | Path | Sequence[PoolMember],
    budgets: Sequence[Budget],
    store: OutcomeStore,
    *,
    prompt_set: str,
    graders: Sequence[str | Grader] = (),
    models: Sequence[str] | None = None,
    limits: Limits | None = None,
    max_usd: float | None = None,
    uncapped_max_tokens: int = DEFAULT_UNCAPPED_MAX_TOKENS,
    judge_upstreams: str | Path | None = None,
    judge_price: tuple[float, float] | None = None,
    environ: Mapping[str, str] | None = None,
    progress: bool | None = False,
    dry_run: bool = False,
    confirm: Any = None,
    instruct: bool = True,
    preflight: bool = True,
) -> CollectResult:
    """Call every missing (prompt, model, budget) cell of a prompt set, store each outcome, grade it.

    Args:
        prompts: The prompts (validated: unique ids).
        pool: An ``upstreams.yaml`` path, or pool members (see :func:`chat_model_pool`).
        budgets: Output-token caps (``None`` = uncapped).
        store: Where prompts, calls and grades go.
        prompt_set: The prompt set's name in the store.
        graders: Grader specs (see :mod:`~r2router_integrations.collect.graders`) or graders.
        models: Only these pool models, in this order (default: the whole pool).
        limits: Concurrency, rate limits, retries, deadlines and the pause rule per model.
        max_usd: Cap on this run's spend (calls, preflight and judges); see the module docstring.
        uncapped_max_tokens: Output tokens an uncapped answer counts for in the worst case.
        judge_upstreams: The yaml of ``judge:UPSTREAM`` graders (default: ``pool`` when it is a path).
        judge_price: (input, output) USD per 1M tokens of a ``judge:MODULE:ATTR`` judge.
        environ: Where API keys are read from (default ``os.environ``).
        progress: Show a progress bar (``None``: only on a terminal).
        dry_run: Return after planning, calling nothing.
        confirm: ``callable(plan) -> bool`` asked before the first call (``None``: go on).
        instruct: Add the length instruction to capped calls (the serving default).
        preflight: Call each pool model once (one token) before the first cell.

    Raises:
        ConfigError: A bad pool, grader, limit or budget, or a pool model without a price;
            raised before any call.
        PreflightError: The preflight found pool models that cannot be called.
        DataError: A prompt a grader cannot grade, or a prompt changed since it was stored.
    """
    limits = limits or Limits()
    if isinstance(pool, str | Path) and judge_upstreams is None:
        judge_upstreams = pool
    async with _http_client(limits, len(models or ())) as client:
        members = _open_pool(pool, client, models, environ)
        _price_pool(members, store, pool if isinstance(pool, str | Path) else None)
        resolved = resolve_graders(graders, client=client, judge_upstreams=judge_upstreams, environ=environ,
                                   prompts=prompts, judge_price=judge_price)  # fmt: skip
        for grader in resolved:
            for prompt in prompts:
                grader.check(prompt)
        plan = build_plan(
            prompt_set,
            prompts,
            [m.spec for m in members],
            budgets,
            store.done_cells(prompt_set),
            uncapped_max_tokens=uncapped_max_tokens,
            judges=[(g.name, g.member.spec) for g in resolved if isinstance(g, JudgeGrader)],
        )
        if dry_run or (confirm is not None and not confirm(plan)):
            return CollectResult(plan, 0, 0, 0, 0.0, False, len(plan.cells))
        store.set_models([m.spec for m in members])
        store.add_prompts(prompt_set, prompts)
        collector = _Collector(store, members, limits, max_usd, instruct=instruct,
                               uncapped_max_tokens=uncapped_max_tokens)  # fmt: skip
        if preflight and plan.cells:
            called = {c.model for c in plan.cells}
            checked = [m for m in members if m.spec.name in called]
            judges = [g.member for g in resolved if isinstance(g, JudgeGrader)]
            seen = {_where(m) for m in checked if isinstance(m, UpstreamMember)}
            checked += [j for j in judges if not (isinstance(j, UpstreamMember) and _where(j) in seen)]
            await collector.preflight(checked)  # the pool's models and the judges' upstreams
        bar = _Progress(len(plan.cells), progress, collector.spend)
        try:
            records = await asyncio.gather(*(collector.call_cell(plan, c, bar, resolved) for c in plan.cells))
        finally:
            bar.close()
        if not collector.spend.stopped:
            await _grade_all(collector, resolved, prompt_set)  # answers of earlier runs not graded yet
    made = [r for r in records if r is not None]
    tally = collector.tally
    return CollectResult(
        plan=plan,
        calls=len(made),
        errors=sum(r.status != "ok" for r in made),
        graded=tally.graded,
        spent_usd=collector.spend.spent,
        stopped_at_max_usd=collector.spend.stopped,
        remaining=len(plan.cells) - len(made),
        judge_spent_usd=collector.spend.judges,
        unscored=tally.unscored,
        paused=tuple(collector.health.paused.values()),
        skipped=tally.skipped,
        checks=tuple(check_grades(store, g.name, prompt_set) for g in resolved),
    )


def collect(*args: Any, **kwargs: Any) -> CollectResult:
    """:func:`acollect` run to completion in a new event loop (same arguments)."""
    return asyncio.run(acollect(*args, **kwargs))


async def agrade(
    store: OutcomeStore,
    graders: Sequence[str | Grader],
    *,
    prompt_set: str | None = None,
    judge_upstreams: str | Path | None = None,
    judge_price: tuple[float, float] | None = None,
    prompts: Sequence[PromptRecord] = (),
    limits: Limits | None = None,
    max_usd: float | None = None,
    uncapped_max_tokens: int = DEFAULT_UNCAPPED_MAX_TOKENS,
    environ: Mapping[str, str] | None = None,
    dry_run: bool = False,
    confirm: Any = None,
) -> GradeResult:
    """Grade every stored ``ok`` call that a grader has not graded yet; no pool model is called.

    Args:
        store: The outcome store.
        graders: Grader specs or graders.
        prompt_set: Only this prompt set (default: every set).
        judge_upstreams: The yaml of ``judge:UPSTREAM`` judges.
        judge_price: (input, output) USD per 1M tokens of a ``judge:MODULE:ATTR`` judge.
        prompts: The prompts file's rows, for ``per-row`` (matched by id).
        limits: Concurrency, rate limits, retries and deadlines of the judges.
        max_usd: Cap on the judges' spend (each call's worst case reserved first).
        uncapped_max_tokens: Output tokens a judge answer counts for in the worst case.
        environ: Where API keys are read from.
        dry_run: Return after planning, grading nothing.
        confirm: ``callable(plans) -> bool`` asked with the plans (their worst-case cost) before
            anything is graded (``None``: go on); the CLI asks people when a judge would be called.

    Raises:
        ConfigError: An unknown grader, an unusable or unpriced judge.
        DataError: A stored prompt a grader cannot grade.
    """
    limits = limits or Limits()
    async with _http_client(limits, 1) as client:
        resolved = resolve_graders(graders, client=client, judge_upstreams=judge_upstreams, environ=environ,
                                   prompts=prompts, judge_price=judge_price)  # fmt: skip
        plans = tuple(plan_grading(store, g, prompt_set, uncapped_max_tokens=uncapped_max_tokens) for g in resolved)
        for plan in plans:
            for stored in plan.todo:
                plan.grader.check(stored.prompt)
        if dry_run or (confirm is not None and not confirm(plans)):
            return GradeResult(plans, 0, 0, 0, 0.0, False)
        collector = _Collector(store, [], limits, max_usd, uncapped_max_tokens=uncapped_max_tokens)
        for plan in plans:
            await asyncio.gather(*(collector.grade_call(plan.grader, s) for s in plan.todo))
    tally = collector.tally
    return GradeResult(
        plans=plans,
        graded=tally.graded,
        unscored=tally.unscored,
        failed=tally.judge_failed,
        judge_spent_usd=collector.spend.judges,
        stopped_at_max_usd=collector.spend.stopped,
        checks=tuple(check_grades(store, g.name, prompt_set) for g in resolved),
    )


def grade(*args: Any, **kwargs: Any) -> GradeResult:
    """:func:`agrade` run to completion in a new event loop (same arguments)."""
    return asyncio.run(agrade(*args, **kwargs))


async def agrade_log(
    store: OutcomeStore,
    graders: Sequence[str | Grader],
    *,
    references: Mapping[str, str] | None = None,
    judge_upstreams: str | Path | None = None,
    judge_price: tuple[float, float] | None = None,
    limits: Limits | None = None,
    max_usd: float | None = None,
    uncapped_max_tokens: int = DEFAULT_UNCAPPED_MAX_TOKENS,
    environ: Mapping[str, str] | None = None,
    dry_run: bool = False,
    confirm: Any = None,
) -> LogGradeResult:
    """Grade the logged answers whose text was kept, storing each grade as feedback on its decision.

    Each grader grades the ``ok`` decisions that hold no feedback from it yet
    (source ``"grader:<spec>"``), so a rerun grades nothing twice; decisions logged
    without their text are skipped and counted (see :mod:`~r2router_integrations.collect.logged`).

    Args:
        store: The outcome store holding the decision log.
        graders: Grader specs (see :mod:`~r2router_integrations.collect.graders`) or graders.
        references: Prompt text as logged -> its reference (for graders that need one).
        judge_upstreams: The yaml of ``judge:UPSTREAM`` graders.
        judge_price: (input, output) USD per 1M tokens of a ``judge:MODULE:ATTR`` judge.
        limits: Concurrency, rate limits, retries and deadlines of the judge.
        max_usd: Stop before the judges' spend would pass this (each call's worst case is reserved first).
        uncapped_max_tokens: Output tokens a judge answer counts for in the worst case.
        environ: Where API keys are read from (default ``os.environ``).
        dry_run: Return after planning, grading nothing.
        confirm: ``callable(plans) -> bool`` asked with the plans (their worst-case cost)
            before anything is graded (``None``: go on); the CLI asks people only when a judge
            would be called.

    Returns:
        What was graded; nothing is graded on a dry run or when ``confirm`` says no.

    Raises:
        ConfigError: An unknown grader or an unusable or unpriced judge.
        DataError: A matched reference a grader cannot use.
    """
    limits = limits or Limits()
    async with _http_client(limits, 1) as client:
        resolved = resolve_graders(graders, client=client, judge_upstreams=judge_upstreams, environ=environ,
                                   judge_price=judge_price)  # fmt: skip
        plans = tuple(
            plan_log_grading(store, g, references=references, uncapped_max_tokens=uncapped_max_tokens) for g in resolved
        )
        if dry_run or (confirm is not None and not confirm(plans)):
            return LogGradeResult(plans, 0, 0, 0.0, False)
        collector = _Collector(store, [], limits, max_usd, uncapped_max_tokens=uncapped_max_tokens)
        scores = [await _grade_logged(collector, plan) for plan in plans]
    return LogGradeResult(
        plans=plans,
        graded=sum(s.count(True) for s in scores),
        ungraded=sum(s.count(False) for s in scores),
        spent_usd=collector.spend.spent,
        stopped_at_max_usd=collector.spend.stopped,
    )


def grade_log(*args: Any, **kwargs: Any) -> LogGradeResult:
    """:func:`agrade_log` run to completion in a new event loop (same arguments)."""
    return asyncio.run(agrade_log(*args, **kwargs))


async def _grade_logged(collector: _Collector, plan: LogGradePlan) -> list[bool | None]:
    """Grade a plan's answers; per answer ``True`` (stored), ``False`` (not scored) or ``None`` (over budget)."""
    source = feedback_source(plan.grader)

    async def one(decision: Any, prompt: PromptRecord) -> bool | None:
        answer = decision.answer or ""
        grader = plan.grader
        if isinstance(grader, RuleGrader):
            score = grader.score(answer, prompt)
        else:
            if collector.spend.stopped:
                return None
            reply = await collector.judge(grader, grader.messages(answer, prompt), f"decision {prompt.id}")
            if reply is None:
                return None if collector.spend.stopped else False
            score = parse_judge_score(reply[0].text)
            if score is None:
                logger.warning("judge %s: unparseable answer on decision %s: %r", grader.name, prompt.id,
                               reply[0].text[:200])  # fmt: skip
        if score is None:
            return False
        await asyncio.to_thread(collector.store.record_feedback, decision.id, score, source=source)
        return True

    return list(await asyncio.gather(*(one(d, p) for d, p in plan.todo)))
