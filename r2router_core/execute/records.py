"""What one routed call cost, and its row for the decision log.

Every attempt of a call is priced here, input and output tokens at the pool's
prices; :func:`decision_record` turns a decision, the arm that answered (or was
tried last) and what the call reported into the one
:class:`~r2router_core.store.DecisionRecord` the log writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from r2router_core.engine.config import ModelSpec
from r2router_core.engine.decision import Candidate, RoutingDecision
from r2router_core.execute.fallback import FailedAttempt

if TYPE_CHECKING:
    from r2router_core.store import DecisionRecord

__all__ = ["call_cost", "decision_record"]


def call_cost(spec: ModelSpec, input_tokens: int | None, output_tokens: int | None) -> float:
    """USD of one call at the pool's prices (per million tokens); unknown counts cost 0."""
    return ((input_tokens or 0) * spec.input_price + (output_tokens or 0) * spec.output_price) / 1e6


def decision_record(
    decision: RoutingDecision,
    used: Candidate,
    *,
    decision_id: str,
    source: str,
    failures: Sequence[FailedAttempt] = (),
    embedding: Any = None,
    prompt: str | None = None,
    answer: str | None = None,
    finish_reason: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    latency_s: float | None = None,
    cost_usd: float | None = None,
    status: str = "ok",
    propensity: float = 1.0,
    escalated_from: str | None = None,
) -> DecisionRecord:
    """The log row of a routed call answered (or last tried) by ``used``.

    ``cost_usd`` defaults to :func:`call_cost` of ``used`` at the reported tokens.
    The text fields are kept only if the :class:`DecisionLog` opted in.
    """
    from r2router_core.store import DecisionRecord

    config = decision._table.config
    spec = next(m for m in config.models if m.name == used.model)
    vector = None if embedding is None else np.asarray(embedding, dtype=np.float32).ravel()
    return DecisionRecord(
        id=decision_id,
        source=source,
        model=used.model,
        budget=used.token_limit,
        options=decision.options.to_dict(),
        predicted_quality=used.predicted_quality,
        predicted_cost=used.predicted_cost,
        lambda_=decision.lambda_,
        propensity=propensity,
        status=status,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        finish_reason=finish_reason,
        latency_s=latency_s,
        cost_usd=call_cost(spec, input_tokens, output_tokens) if cost_usd is None else cost_usd,
        failed_attempts=tuple(f.to_dict() for f in failures),
        embedder=config.embedder if vector is not None else None,
        embedding=vector,
        prompt=prompt,
        answer=answer,
        escalated_from=escalated_from,
    )
