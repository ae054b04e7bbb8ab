"""What the answer tells about its routing: one ``"r2router"`` key in ``response_metadata``.

The value is a JSON-ready dict::

    {"decision_id": "9f1c...", "model": "small", "model_full_name": "...", "token_limit": 64,
     "predicted_quality": 0.81, "predicted_tokens": 52.0, "predicted_cost": 3.1e-05,
     "utility": 0.08, "lambda": 0.9,
     "alternatives": [{"model": ..., "token_limit": ..., ...}, ...],   # the next 3 arms
     "fallbacks": [{"model": "large", "token_limit": 256, "kind": "http_5xx",
                    "error": "InternalServerError: ...", "status": 500}],   # the core's FailedAttempt
     "escalations": [{"model": "small", "token_limit": 32, "finish_reason": "length",
                      "output_tokens": 32, "cost_usd": 1.9e-05}],   # the core's TruncatedAttempt
     "cost_usd": 4.2e-05,   # every attempt of the call, at the pool's prices
     "budget_exhausted": False}

``decision_id`` names the call in the decision log (``store=``) and in feedback.
``max_tokens`` is the cap sent (the budget, bounded by the caller's ``max_tokens``).
``model``/``token_limit`` and the predictions are those of the arm that answered
(after a fallback, the next-best one); ``fallbacks`` lists the arms that failed
first; ``escalations`` the answers the cap cut, asked again with more room
(non-streamed calls only), and ``cost_usd`` sums every answer's cost (non-streamed only).
``budget_exhausted`` is true when the answer stopped at its output cap
(finish reason ``length``/``max_tokens``). When streaming, everything but
``budget_exhausted`` rides on the first chunk and ``budget_exhausted`` on the
last, so the aggregated message holds the whole dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from r2router_core import Candidate, FailedAttempt, RoutingDecision

__all__ = ["METADATA_KEY", "StreamAnnotator", "annotate_result", "decision_metadata"]

METADATA_KEY = "r2router"
"""The ``response_metadata`` key that holds the routing decision."""

N_ALTERNATIVES = 3
_EXHAUSTED = frozenset({"length", "max_tokens"})


def _arm(candidate: Candidate) -> dict[str, Any]:
    return {
        "model": candidate.model,
        "token_limit": candidate.token_limit,
        "predicted_quality": candidate.predicted_quality,
        "predicted_cost": candidate.predicted_cost,
        "utility": candidate.utility,
    }


def decision_metadata(
    decision: RoutingDecision, used: Candidate, failures: Sequence[FailedAttempt], decision_id: str | None = None
) -> dict[str, Any]:
    """The ``"r2router"`` dict for an answer given by ``used`` (without ``budget_exhausted``)."""
    alternatives = [c for c in decision.candidates if c.eligible and c != used][:N_ALTERNATIVES]
    return {
        "decision_id": decision_id,
        **decision.answered_by(used, failures),
        "alternatives": [_arm(c) for c in alternatives],
        "escalations": [],
    }


def finish_reason(metadata: Mapping[str, Any]) -> str | None:
    """The provider's finish reason (OpenAI ``finish_reason``, Anthropic ``stop_reason``)."""
    reason = metadata.get("finish_reason") or metadata.get("stop_reason")
    return reason if isinstance(reason, str) else None


def annotate_result(
    result: ChatResult,
    decision: RoutingDecision,
    used: Candidate,
    failures: Sequence[FailedAttempt],
    decision_id: str | None = None,
    escalations: Sequence[Any] = (),
    cost_usd: float | None = None,
) -> ChatResult:
    """Add the ``"r2router"`` key to every generation of a child's result, in place."""
    for generation in result.generations:
        message = generation.message
        reason = finish_reason({**(generation.generation_info or {}), **message.response_metadata})
        info = decision_metadata(decision, used, failures, decision_id)
        info["escalations"] = [e.to_dict() for e in escalations]
        if cost_usd is not None:
            info["cost_usd"] = cost_usd
        info["budget_exhausted"] = reason in _EXHAUSTED
        message.response_metadata = {**message.response_metadata, METADATA_KEY: info}
    return result


class StreamAnnotator:
    """Puts the decision on the first chunk of a stream and ``budget_exhausted`` on the last.

    Args:
        decision: The routing decision of the call.
        used: The arm whose chat model streams.
        failures: Arms that failed before it.
        decision_id: The call's id in the decision log.
    """

    def __init__(
        self,
        decision: RoutingDecision,
        used: Candidate,
        failures: Sequence[FailedAttempt],
        decision_id: str | None = None,
    ) -> None:
        self._decision_id = decision_id
        self._decision = decision
        self._used = used
        self._failures = tuple(failures)
        self.started = False
        self._ended = False
        self._reason: str | None = None
        self._str_content = True
        self.text = ""
        self.usage: Any = None

    def annotate(self, chunk: ChatGenerationChunk) -> ChatGenerationChunk:
        """Annotate one chunk in place and return it."""
        message = chunk.message
        self._reason = finish_reason({**(chunk.generation_info or {}), **message.response_metadata}) or self._reason
        self.text += message.content if isinstance(message.content, str) else ""
        self.usage = getattr(message, "usage_metadata", None) or self.usage
        self._str_content = isinstance(message.content, str)
        extra: dict[str, Any] = {}
        if not self.started:
            extra = decision_metadata(self._decision, self._used, self._failures, self._decision_id)
            self.started = True
        if isinstance(message, AIMessageChunk) and message.chunk_position == "last":
            extra["budget_exhausted"] = self._reason in _EXHAUSTED
            self._ended = True
        if extra:
            message.response_metadata = {**message.response_metadata, METADATA_KEY: extra}
        return chunk

    @property
    def reason(self) -> str | None:
        """The finish reason seen so far."""
        return self._reason

    def closing_chunk(self) -> ChatGenerationChunk | None:
        """The final ``chunk_position="last"`` chunk carrying ``budget_exhausted``, if still owed."""
        if self._ended or not self.started:
            return None
        self._ended = True
        message = AIMessageChunk(
            content="" if self._str_content else [],
            chunk_position="last",
            response_metadata={METADATA_KEY: {"budget_exhausted": self._reason in _EXHAUSTED}},
        )
        return ChatGenerationChunk(message=message)
