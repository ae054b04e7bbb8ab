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
     "cost_usd": 4.2e-05,   # every answer of the call, at the pool's prices
     "input_cost_usd": 1.1e-05, "output_cost_usd": 3.1e-05,   # its input and output parts
     "budget_exhausted": False}

``decision_id`` names the call in the decision log (``store=``) and in feedback.
``max_tokens`` is the cap sent (the budget, bounded by the caller's ``max_tokens``).
``model``/``token_limit`` and the predictions are those of the arm that answered
(after a fallback, the next-best one); ``fallbacks`` lists the arms that failed
first; ``escalations`` the answers the cap cut, asked again with more room
(non-streamed calls only), and ``cost_usd`` sums every answer's cost (the core's call plan
prices each one: reported tokens, else the prompt's counted tokens).
``budget_exhausted`` is true when the answer stopped at its output cap
(finish reason ``length``/``max_tokens``). When streaming, the decision rides on the first chunk and
``budget_exhausted`` with the costs on the last (sent once the call's outcome is
known), so the aggregated message holds the whole dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from r2router_core import Candidate, FailedAttempt, RoutingDecision
from r2router_core.execute import AnswerFacts, Attempt, CallOutcome

__all__ = ["METADATA_KEY", "StreamAnnotator", "annotate_result", "decision_metadata", "result_facts"]

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


def result_facts(result: ChatResult) -> AnswerFacts:
    """What a non-streamed result's first generation reported (finish reason, usage, text)."""
    if not result.generations:
        return AnswerFacts()
    generation = result.generations[0]
    message = generation.message
    usage = getattr(message, "usage_metadata", None) or {}
    return AnswerFacts(
        finish_reason=finish_reason({**(generation.generation_info or {}), **message.response_metadata}),
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
        text=_text(message.content),
    )


def _text(content: Any) -> str:
    return content if isinstance(content, str) else str(content)


def _costs(outcome: CallOutcome) -> dict[str, float]:
    return {
        "cost_usd": outcome.cost_usd,
        "input_cost_usd": outcome.input_cost_usd,
        "output_cost_usd": outcome.output_cost_usd,
    }


def annotate_result(result: ChatResult, decision: RoutingDecision, outcome: CallOutcome) -> ChatResult:
    """Add the ``"r2router"`` key to every generation of the answering child's result, in place."""
    assert outcome.answered is not None  # drive() returns a result only for an answered call
    for generation in result.generations:
        message = generation.message
        reason = finish_reason({**(generation.generation_info or {}), **message.response_metadata})
        info = decision_metadata(decision, outcome.answered.arm, outcome.failures, outcome.decision_id)
        info["escalations"] = [e.to_dict() for e in outcome.truncated]
        info.update(_costs(outcome))
        info["budget_exhausted"] = reason in _EXHAUSTED
        message.response_metadata = {**message.response_metadata, METADATA_KEY: info}
    return result


class StreamAnnotator:
    """Puts the decision on the first chunk of an attempt's stream, and the call's end on the last chunk.

    The child's own last chunk (``chunk_position="last"``) is held back until the call's
    outcome is known; :meth:`closing_chunk` then returns it (or a new empty one) with
    ``budget_exhausted`` and the call's cost.

    Args:
        decision: The routing decision of the call.
        attempt: The attempt whose chat model streams (its arm and the failures before it).
        decision_id: The call's id in the decision log.
    """

    def __init__(self, decision: RoutingDecision, attempt: Attempt, decision_id: str) -> None:
        self._head = decision_metadata(decision, attempt.arm, attempt.failures, decision_id)
        self.started = False
        self._reason: str | None = None
        self._str_content = True
        self._last: ChatGenerationChunk | None = None
        self._text = ""
        self._usage: Any = None

    def annotate(self, chunk: ChatGenerationChunk) -> ChatGenerationChunk | None:
        """Annotate one chunk in place and return it (``None``: the last chunk, held back)."""
        message = chunk.message
        self._reason = finish_reason({**(chunk.generation_info or {}), **message.response_metadata}) or self._reason
        self._text += message.content if isinstance(message.content, str) else ""
        self._usage = getattr(message, "usage_metadata", None) or self._usage
        self._str_content = isinstance(message.content, str)
        if not self.started:
            message.response_metadata = {**message.response_metadata, METADATA_KEY: dict(self._head)}
            self.started = True
        if isinstance(message, AIMessageChunk) and message.chunk_position == "last":
            self._last = chunk
            return None
        return chunk

    def facts(self) -> AnswerFacts:
        """What the stream reported so far."""
        usage = self._usage or {}
        return AnswerFacts(self._reason, usage.get("input_tokens"), usage.get("output_tokens"), self._text)

    def closing_chunk(self, outcome: CallOutcome) -> ChatGenerationChunk | None:
        """The ``chunk_position="last"`` chunk with ``budget_exhausted`` and the call's cost (after its end)."""
        if not self.started:
            return None
        end = {"budget_exhausted": self._reason in _EXHAUSTED, **_costs(outcome)}
        chunk = self._last or ChatGenerationChunk(
            message=AIMessageChunk(content="" if self._str_content else [], chunk_position="last")
        )
        extra = {**chunk.message.response_metadata.get(METADATA_KEY, {}), **end}
        chunk.message.response_metadata = {**chunk.message.response_metadata, METADATA_KEY: extra}
        return chunk
