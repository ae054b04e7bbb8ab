"""Decision ids and the decision log for :class:`~r2router_integrations.llamaindex.R2RouterLLM`.

The id goes to ``additional_kwargs["r2router"]["decision_id"]``; with ``store=``
each call's row is queued on the core's
:class:`~r2router_core.store.decision_log.DecisionLog` (written off the caller's path).
Tokens and the finish reason are read from the pool LLM's ``raw`` answer
(OpenAI's shape) or its ``additional_kwargs`` (``prompt_tokens``,
``completion_tokens``), when it reports them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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

__all__ = ["SOURCE", "CallContext", "answer_cost", "answer_facts", "log_call", "log_escalated"]

SOURCE = "llamaindex"


@dataclass(frozen=True)
class CallContext:
    """One routed call: its id, routed text, embedding (when logged) and start time."""

    text: str
    embedding: Any = None
    decision_id: str = field(default_factory=new_decision_id)
    started: float = field(default_factory=time.perf_counter)
    first: Candidate | None = None  # the arm exploration picked instead of the chosen one
    propensity: float = 1.0


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def answer_facts(response: Any) -> tuple[str | None, int | None, int | None]:
    """``(finish_reason, input_tokens, output_tokens)`` of a LlamaIndex response, where reported."""
    raw = getattr(response, "raw", None)
    extra = getattr(response, "additional_kwargs", None) or {}
    choices = _get(raw, "choices") if raw is not None else None
    reason = _get(choices[0], "finish_reason") if isinstance(choices, Sequence) and choices else None
    usage = _get(raw, "usage") if raw is not None else None
    input_tokens = _int(_get(usage, "prompt_tokens")) if usage is not None else None
    output_tokens = _int(_get(usage, "completion_tokens")) if usage is not None else None
    input_tokens = input_tokens if input_tokens is not None else _int(extra.get("prompt_tokens"))
    output_tokens = output_tokens if output_tokens is not None else _int(extra.get("completion_tokens"))
    return (reason if isinstance(reason, str) else None), input_tokens, output_tokens


def _answer_text(response: Any) -> str | None:
    message = getattr(response, "message", None)
    if message is not None:
        return getattr(message, "content", None)
    text = getattr(response, "text", None)
    return text if isinstance(text, str) else None


def log_call(
    log: DecisionLog | None,
    ctx: CallContext,
    decision: RoutingDecision,
    used: Candidate,
    failures: Sequence[FailedAttempt],
    response: Any = None,
    *,
    decision_id: str | None = None,
    escalated_from: str | None = None,
    extra_cost: float = 0.0,
) -> None:
    """Queue the row of a call answered by ``used`` (``response`` ``None``: every attempt failed).

    ``extra_cost`` adds what earlier (truncated) attempts of the call cost.
    """
    if log is None:
        return
    reason, input_tokens, output_tokens = answer_facts(response) if response is not None else (None, None, None)
    own = answer_cost(decision, used, response) if response is not None else 0.0
    log.record(
        decision_record(
            decision,
            used,
            decision_id=decision_id or ctx.decision_id,
            escalated_from=escalated_from,
            source=SOURCE,
            failures=failures,
            embedding=ctx.embedding,
            propensity=ctx.propensity,
            prompt=ctx.text,
            answer=_answer_text(response) if response is not None else None,
            finish_reason=reason,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_s=time.perf_counter() - ctx.started,
            status="ok" if response is not None else "error",
            cost_usd=own + extra_cost,
        )
    )


def answer_cost(decision: RoutingDecision, used: Candidate, response: Any) -> float:
    """USD of one answer at the pool's prices (0 where tokens are not reported)."""
    _, input_tokens, output_tokens = answer_facts(response)
    spec = next(m for m in decision._table.config.models if m.name == used.model)
    return call_cost(spec, input_tokens, output_tokens)


def log_escalated(
    log: DecisionLog | None,
    ctx: CallContext,
    decision: RoutingDecision,
    escalation: Escalation,
    failures: Sequence[FailedAttempt],
    cut: Sequence[tuple[Candidate, Any]],
    response: Any,
) -> None:
    """Queue one row per cut answer (a signal for its arm), then the final one pointing at the last cut."""
    if log is None:
        return
    previous: str | None = None
    for arm, answer in cut:
        row_id = new_decision_id()
        log_call(log, ctx, decision, arm, failures, answer, decision_id=row_id, escalated_from=previous)
        previous = row_id
    log_call(
        log, ctx, decision, escalation.current, failures, response,
        escalated_from=previous, extra_cost=escalation.cost_usd,
    )  # fmt: skip
