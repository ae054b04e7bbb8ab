"""The collector: call every planned (prompt, model, budget) cell, store each outcome, then grade.

Resumable by construction: a call's row is written the moment its answer is in,
and a rerun plans only cells without an ``ok`` row, so ``kill -9`` at any moment
loses at most the calls in flight and never repeats a finished one. A failed
call (retries exhausted, or a 4xx) is stored as ``error`` and the run goes on;
the next run tries that cell again.

``max_usd`` is a hard ceiling: before each call its worst case (the whole
budget, uncapped at the plan's maximum) is reserved against the ceiling, so the
spend cannot pass it; the first call that would not fit stops the run cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2router_core import Budget, ConfigError, ModelSpec, missing_dependency
from r2router_core.store import CallRecord, GradeRecord, OutcomeStore, PromptRecord, StoredCall
from r2router_integrations.collect.graders import (
    JudgeGrader,
    RuleGrader,
    import_chat_model,
    judge_target,
    parse_judge_score,
    rule_grader,
)
from r2router_integrations.collect.limits import CallGate, Limits
from r2router_integrations.collect.logged import LogGradePlan, LogGradeResult, feedback_source, plan_log_grading
from r2router_integrations.collect.plan import DEFAULT_UNCAPPED_MAX_TOKENS, Cell, CollectPlan, build_plan
from r2router_integrations.collect.pool import ChatModelMember, PoolMember, cost_usd, pool_from_upstreams

if TYPE_CHECKING:
    import httpx
    from langchain_core.language_models import BaseChatModel

__all__ = [
    "CollectResult",
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


@dataclass(frozen=True)
class CollectResult:
    """What a run did.

    Attributes:
        plan: The plan it ran.
        calls: Calls made and stored (ok + error).
        errors: Of those, calls that failed.
        graded: Grades stored.
        spent_usd: Cost of this run's calls and grading.
        stopped_at_max_usd: The run stopped before ``max_usd`` would have been passed.
        remaining: Planned cells not called (stopped early).
    """

    plan: CollectPlan
    calls: int
    errors: int
    graded: int
    spent_usd: float
    stopped_at_max_usd: bool
    remaining: int

    def describe(self) -> str:
        """One paragraph for people."""
        text = (
            f"{self.calls} calls made ({self.errors} failed), {self.graded} grades stored, "
            f"${self.spent_usd:.4f} spent; "
            f"{self.plan.done_cells + self.calls - self.errors} of {self.plan.total_cells} cells done"
        )
        if self.stopped_at_max_usd:
            text += f". Stopped at --max-usd: {self.remaining} calls not made; run again with a higher limit to go on"
        return text


class _Spend:
    """The spend of a run against its ceiling (reservations of calls in flight included)."""

    def __init__(self, ceiling: float | None) -> None:
        self.ceiling, self.spent, self.reserved, self.stopped = ceiling, 0.0, 0.0, False

    def reserve(self, worst: float) -> bool:
        if self.stopped or (self.ceiling is not None and self.spent + self.reserved + worst > self.ceiling):
            self.stopped = True
            return False
        self.reserved += worst
        return True

    def settle(self, worst: float, actual: float) -> None:
        self.reserved -= worst
        self.spent += actual


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


def chat_model_pool(
    models: Mapping[str, BaseChatModel],
    prices: Mapping[str, ModelSpec | Mapping[str, float]],
    *,
    cap_params: Mapping[str, str] | None = None,
    instruct: bool = True,
) -> list[ChatModelMember]:
    """A pool of LangChain chat models with their prices (USD per 1M tokens).

    Args:
        models: Pool model name -> chat model.
        prices: Name -> ``ModelSpec`` or ``{"input_price": ..., "output_price": ...}``.
        cap_params: Name -> the model's cap field, where it is not ``max_tokens``.
        instruct: Add the length instruction to capped calls.

    Raises:
        ConfigError: A model without prices.
    """
    missing = [name for name in models if name not in prices]
    if missing:
        raise ConfigError(f"no prices for pool model(s) {missing}; give input_price and output_price for each")
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
                instruct=instruct,
            )
        )
    return members


def _messages(prompt: PromptRecord) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt.text}]


class _Collector:
    """One run over one pool: the gates, the spend, the store."""

    def __init__(self, store: OutcomeStore, pool: Sequence[PoolMember], limits: Limits, max_usd: float | None) -> None:
        self.store, self.limits = store, limits
        self.members = {m.spec.name: m for m in pool}
        self.gates: dict[int, CallGate] = {}
        self.spend = _Spend(max_usd)

    def gate(self, member: Any) -> CallGate:
        return self.gates.setdefault(id(member), CallGate(self.limits))

    async def call_cell(self, plan: CollectPlan, cell: Cell, progress: _Progress) -> CallRecord | None:
        worst = plan.worst_case_cell_usd(cell)
        if not self.spend.reserve(worst):
            return None
        member = self.members[cell.model]
        actual = 0.0
        try:
            try:
                answer, attempts, latency = await self.gate(member).call(
                    lambda: member.answer(_messages(cell.prompt), cell.budget)
                )
            except Exception as exc:  # recorded per call; the run goes on with the others
                record = _failed(plan.prompt_set, cell, member, exc)
            else:
                actual = cost_usd(member.spec, answer.input_tokens, answer.output_tokens)
                record = CallRecord(
                    plan.prompt_set,
                    cell.prompt.id,
                    cell.model,
                    cell.budget,
                    "ok",
                    answer=answer.text,
                    finish_reason=answer.finish_reason,
                    input_tokens=answer.input_tokens,
                    output_tokens=answer.output_tokens,
                    latency_s=latency,
                    cost_usd=actual,
                    attempts=attempts,
                    model_id=member.spec.full_name,
                )
            await asyncio.to_thread(self.store.record_call, record)  # off the event loop: sends go on
        finally:
            self.spend.settle(worst, actual)
        progress.step(record.status != "ok")
        return record

    async def grade_call(self, grader: Grader, stored: StoredCall, judge_budget: float) -> GradeRecord | None:
        answer = stored.call.answer or ""
        if isinstance(grader, RuleGrader):
            grade = GradeRecord(stored.id, grader.name, grader.score(answer, stored.prompt))
        else:
            if not self.spend.reserve(judge_budget):
                return None
            member, actual = grader.member, 0.0
            try:
                reply, attempts, _ = await self.gate(member).call(
                    lambda: member.answer(grader.messages(answer, stored.prompt), None)
                )
            except Exception as exc:  # the judge failed: no grade stored, the next run asks again
                logger.warning("judge %s failed on call %d: %s", grader.name, stored.id, exc)
                self.spend.settle(judge_budget, 0.0)
                return None
            actual = cost_usd(member.spec, reply.input_tokens, reply.output_tokens)
            self.spend.settle(judge_budget, actual)
            score = parse_judge_score(reply.text)
            grade = GradeRecord(
                stored.id,
                grader.name,
                score,
                reason=None if score is not None else f"unparseable judge answer: {reply.text[:200]!r}",
                cost_usd=actual,
                grader_calls=attempts,
                input_tokens=reply.input_tokens,
                output_tokens=reply.output_tokens,
                raw=reply.text,
            )
        self.store.record_grade(grade)
        return grade


def _failed(prompt_set: str, cell: Cell, member: PoolMember, exc: BaseException) -> CallRecord:
    logger.warning("%s at budget %s on prompt %r failed: %s", cell.model, cell.budget, cell.prompt.id, exc)
    return CallRecord(
        prompt_set,
        cell.prompt.id,
        cell.model,
        cell.budget,
        "error",
        attempts=getattr(exc, "r2router_attempts", 1),
        error=f"{type(exc).__name__}: {exc}"[:1000],
        model_id=member.spec.full_name,
    )


def resolve_graders(
    specs: Sequence[str | Grader],
    *,
    client: httpx.AsyncClient | None = None,
    judge_upstreams: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Grader]:
    """Graders from specs (or ready graders).

    Raises:
        ConfigError: An unknown grader, or a judge that cannot be built.
    """
    out: list[Grader] = []
    for spec in specs:
        if isinstance(spec, RuleGrader | JudgeGrader):
            out.append(spec)
            continue
        rule = rule_grader(spec)
        if rule is not None:
            out.append(rule)
            continue
        target = judge_target(spec)
        if ":" in target:
            model = import_chat_model(spec, target)
            out.append(JudgeGrader(spec, ChatModelMember(f"judge:{target}", model, output_price=0.0)))
            continue
        if judge_upstreams is None or client is None:
            raise ConfigError(f"grader {spec!r} names an upstream; give the yaml that defines it (--judge-upstreams)")
        (member,) = pool_from_upstreams(judge_upstreams, client, models=[target], environ=environ, instruct=False)
        out.append(JudgeGrader(spec, member))
    return out


async def _grade_all(
    collector: _Collector, graders: Sequence[Grader], prompt_set: str | None, judge_budget: float
) -> int:
    done = 0
    for grader in graders:
        todo = collector.store.ungraded_calls(grader.name, prompt_set)
        grades = await asyncio.gather(*(collector.grade_call(grader, s, judge_budget) for s in todo))
        done += sum(g is not None for g in grades)
    return done


def _open_pool(
    pool: str | Path | Sequence[PoolMember],
    client: httpx.AsyncClient,
    models: Sequence[str] | None,
    environ: Any,
    instruct: bool,
) -> list[PoolMember]:
    if isinstance(pool, str | Path):
        return list(pool_from_upstreams(pool, client, models=models, environ=environ, instruct=instruct))
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
    judge_max_usd_per_call: float = 0.01,
    environ: Mapping[str, str] | None = None,
    progress: bool | None = False,
    dry_run: bool = False,
    confirm: Any = None,
    instruct: bool = True,
) -> CollectResult:
    """Call every missing (prompt, model, budget) cell of a prompt set, store each outcome, then grade.

    Args:
        prompts: The prompts (validated: unique ids).
        pool: An ``upstreams.yaml`` path, or pool members (see :func:`chat_model_pool`).
        budgets: Output-token caps (``None`` = uncapped).
        store: Where prompts, calls and grades go.
        prompt_set: The prompt set's name in the store.
        graders: Grader specs (see :mod:`~r2router_integrations.collect.graders`) or graders.
        models: Only these pool models, in this order (default: the whole pool).
        limits: Concurrency, rate limits, retries and deadlines per model.
        max_usd: Stop before the spend of this run (calls and judges) would pass this.
        uncapped_max_tokens: Output tokens an uncapped answer counts for in the worst case.
        judge_upstreams: The yaml of ``judge:UPSTREAM`` graders (default: ``pool`` when it is a path).
        judge_max_usd_per_call: Worst case reserved for one judge call against ``max_usd``.
        environ: Where API keys are read from (default ``os.environ``).
        progress: Show a progress bar (``None``: only on a terminal).
        dry_run: Return after planning, calling nothing.
        confirm: ``callable(plan) -> bool`` asked before the first call (``None``: go on).
        instruct: Add the length instruction to capped calls of an upstreams pool (the gateway's default).

    Raises:
        ConfigError: A bad pool, grader, limit or budget; raised before any call.
        DataError: A prompt a grader cannot grade, or a prompt changed since it was stored.
    """
    limits = limits or Limits()
    if isinstance(pool, str | Path) and judge_upstreams is None:
        judge_upstreams = pool
    async with _http_client(limits, len(models or ())) as client:
        members = _open_pool(pool, client, models, environ, instruct)
        resolved = resolve_graders(graders, client=client, judge_upstreams=judge_upstreams, environ=environ)
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
        )
        if dry_run or (confirm is not None and not confirm(plan)):
            return CollectResult(plan, 0, 0, 0, 0.0, False, len(plan.cells))
        store.set_models([m.spec for m in members])
        store.add_prompts(prompt_set, prompts)
        collector = _Collector(store, members, limits, max_usd)
        bar = _Progress(len(plan.cells), progress, collector.spend)
        try:
            records = await asyncio.gather(*(collector.call_cell(plan, c, bar) for c in plan.cells))
        finally:
            bar.close()
        graded = await _grade_all(collector, resolved, prompt_set, judge_max_usd_per_call)
    made = [r for r in records if r is not None]
    return CollectResult(
        plan=plan,
        calls=len(made),
        errors=sum(r.status != "ok" for r in made),
        graded=graded,
        spent_usd=collector.spend.spent,
        stopped_at_max_usd=collector.spend.stopped,
        remaining=len(plan.cells) - len(made),
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
    limits: Limits | None = None,
    max_usd: float | None = None,
    judge_max_usd_per_call: float = 0.01,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Grade every stored ``ok`` call that a grader has not graded yet; no pool model is called.

    Returns:
        The number of grades stored.

    Raises:
        ConfigError: An unknown grader or an unusable judge.
        DataError: A stored prompt a grader cannot grade.
    """
    limits = limits or Limits()
    async with _http_client(limits, 1) as client:
        resolved = resolve_graders(graders, client=client, judge_upstreams=judge_upstreams, environ=environ)
        sets = [prompt_set] if prompt_set is not None else store.prompt_sets()
        for grader in resolved:
            for s in sets:
                for prompt in store.prompts(s):
                    grader.check(prompt)
        collector = _Collector(store, [], limits, max_usd)
        return await _grade_all(collector, resolved, prompt_set, judge_max_usd_per_call)


def grade(*args: Any, **kwargs: Any) -> int:
    """:func:`agrade` run to completion in a new event loop (same arguments)."""
    return asyncio.run(agrade(*args, **kwargs))


async def agrade_log(
    store: OutcomeStore,
    graders: Sequence[str | Grader],
    *,
    references: Mapping[str, str] | None = None,
    judge_upstreams: str | Path | None = None,
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
        ConfigError: An unknown grader or an unusable judge.
        DataError: A matched reference a grader cannot use.
    """
    limits = limits or Limits()
    async with _http_client(limits, 1) as client:
        resolved = resolve_graders(graders, client=client, judge_upstreams=judge_upstreams, environ=environ)
        plans = tuple(
            plan_log_grading(store, g, references=references, uncapped_max_tokens=uncapped_max_tokens) for g in resolved
        )
        if dry_run or (confirm is not None and not confirm(plans)):
            return LogGradeResult(plans, 0, 0, 0.0, False)
        collector = _Collector(store, [], limits, max_usd)
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
            worst = plan.worst_case_call_usd(decision, prompt)
            if not collector.spend.reserve(worst):
                return None
            score = await _judge(collector, grader, answer, prompt, worst)
        if score is None:
            return False
        await asyncio.to_thread(collector.store.record_feedback, decision.id, score, source=source)
        return True

    return list(await asyncio.gather(*(one(d, p) for d, p in plan.todo)))


async def _judge(
    collector: _Collector, grader: JudgeGrader, answer: str, prompt: PromptRecord, worst: float
) -> float | None:
    """The judge's score of one answer (``None``: the call failed or the answer is off the rubric); spend settled."""
    member, actual = grader.member, 0.0
    try:
        reply, _, _ = await collector.gate(member).call(lambda: member.answer(grader.messages(answer, prompt), None))
    except Exception as exc:  # the judge failed: nothing stored, the next run asks again
        logger.warning("judge %s failed on decision %s: %s", grader.name, prompt.id, exc)
        return None
    else:
        actual = cost_usd(member.spec, reply.input_tokens, reply.output_tokens)
    finally:
        collector.spend.settle(worst, actual)
    score = parse_judge_score(reply.text)
    if score is None:
        logger.warning("judge %s: unparseable answer on decision %s: %r", grader.name, prompt.id, reply.text[:200])
    return score
