"""Decision ids and the decision log for the LangChain chat model.

Each routed call carries a :class:`CallContext` in its kwargs (under
:data:`CALL_KEY`, beside the decision): its id, the prompt's embedding (only
when a log is open) and its start time. The id goes to
``response_metadata["r2router"]["decision_id"]``; the log row is written by the
core's :class:`~r2router_core.store.decision_log.DecisionLog` off the caller's path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from r2router_core import (
    Candidate,
    DecisionLog,
    Escalation,
    FailedAttempt,
    RoutingDecision,
    call_cost,
    decision_record,
    new_decision_id,
)
from r2router_integrations.langchain.metadata import finish_reason

__all__ = ["CALL_KEY", "SOURCE", "CallContext", "answer_cost", "log_answer", "log_failure", "result_facts"]

CALL_KEY = "r2router_call"
"""The call kwarg that carries the :class:`CallContext` from routing to the answer."""

SOURCE = "langchain"


@dataclass(frozen=True)
class CallContext:
    """What the log needs of one routed call besides its decision."""

    decision_id: str = field(default_factory=new_decision_id)
    embedding: Any = None
    prompt: str | None = None
    started: float = field(default_factory=time.perf_counter)
    first: Candidate | None = None  # the arm exploration picked instead of the chosen one
    propensity: float = 1.0


def result_facts(result: ChatResult) -> tuple[str | None, int | None, int | None]:
    """``(finish_reason, input_tokens, output_tokens)`` of a non-streamed result's first generation."""
    if not result.generations:
        return None, None, None
    generation = result.generations[0]
    message = generation.message
    usage = getattr(message, "usage_metadata", None) or {}
    reason = finish_reason({**(generation.generation_info or {}), **message.response_metadata})
    return reason, usage.get("input_tokens"), usage.get("output_tokens")


def answer_cost(decision: RoutingDecision, used: Candidate, result: ChatResult) -> float:
    """USD of one answer at the pool's prices (0 where tokens are not reported)."""
    _, input_tokens, output_tokens = result_facts(result)
    spec = next(m for m in decision._table.config.models if m.name == used.model)
    return call_cost(spec, input_tokens, output_tokens)


def _text(message: BaseMessage) -> str:
    content = message.content
    return content if isinstance(content, str) else str(content)


def log_answer(
    log: DecisionLog,
    ctx: CallContext,
    decision: RoutingDecision,
    used: Candidate,
    failures: Sequence[FailedAttempt],
    message: BaseMessage,
    info: dict[str, Any] | None = None,
    *,
    decision_id: str | None = None,
    escalated_from: str | None = None,
    extra_cost: float = 0.0,
) -> None:
    """Queue the log row of an answered call (tokens from ``usage_metadata``, when reported).

    ``extra_cost`` adds what earlier (truncated) attempts of the call cost.
    """
    usage = getattr(message, "usage_metadata", None) or {}
    spec = next(m for m in decision._table.config.models if m.name == used.model)
    own = call_cost(spec, usage.get("input_tokens"), usage.get("output_tokens"))
    log.record(
        decision_record(
            decision,
            used,
            decision_id=decision_id or ctx.decision_id,
            escalated_from=escalated_from,
            cost_usd=own + extra_cost,
            source=SOURCE,
            failures=failures,
            embedding=ctx.embedding,
            propensity=ctx.propensity,
            prompt=ctx.prompt,
            answer=_text(message),
            finish_reason=finish_reason({**(info or {}), **message.response_metadata}),
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            latency_s=time.perf_counter() - ctx.started,
        )
    )


def log_result(
    log: DecisionLog | None,
    ctx: CallContext,
    decision: RoutingDecision,
    used: Candidate,
    failures: Sequence[FailedAttempt],
    result: ChatResult,
    escalation: Escalation | None = None,
    truncated: list[tuple[Candidate, ChatResult]] | None = None,
) -> None:
    """:func:`log_answer` for the (single) generation of a non-streamed result.

    After an escalation, each cut answer gets its own row (a quality signal for its arm)
    and the final row points at the last one (``escalated_from``) and holds the call's total cost.
    """
    if log is None or not result.generations:
        return
    previous: str | None = None
    for arm, cut in truncated or ():
        previous_id = new_decision_id()
        generation = cut.generations[0]
        log_answer(
            log, ctx, decision, arm, failures, generation.message, generation.generation_info,
            decision_id=previous_id, escalated_from=previous,
        )  # fmt: skip
        previous = previous_id
    generation = result.generations[0]
    extra = escalation.cost_usd if escalation is not None else 0.0
    log_answer(
        log, ctx, decision, used, failures, generation.message, generation.generation_info,
        escalated_from=previous, extra_cost=extra,
    )  # fmt: skip


def log_failure(
    log: DecisionLog | None, ctx: CallContext, decision: RoutingDecision, failures: Sequence[FailedAttempt]
) -> None:
    """Queue the log row of a call whose every attempt failed (the last arm tried, no cost)."""
    if log is None or not failures:
        return
    last = failures[-1]
    used = next(c for c in decision.candidates if (c.model, c.token_limit) == (last.model, last.token_limit))
    log.record(
        decision_record(
            decision,
            used,
            decision_id=ctx.decision_id,
            source=SOURCE,
            failures=failures,
            embedding=ctx.embedding,
            propensity=ctx.propensity,
            prompt=ctx.prompt,
            status="error",
            cost_usd=0.0,
            latency_s=time.perf_counter() - ctx.started,
        )
    )
