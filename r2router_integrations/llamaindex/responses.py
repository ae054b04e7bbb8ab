"""What a LlamaIndex response reports (finish reason, usage, text), and the ``r2router`` key it gets.

Tokens and the finish reason are read from the pool LLM's ``raw`` answer (OpenAI's
shape) or its ``additional_kwargs`` (``prompt_tokens``, ``completion_tokens``), when it
reports them. The ``additional_kwargs["r2router"]`` dict holds the decision as answered
(the core's ``RoutingDecision.answered_by``), the call's id, its escalations and its cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from llama_index.core.base.llms.types import ChatResponse, CompletionResponse

from r2router_core import Candidate, FailedAttempt, RoutingDecision
from r2router_core.execute import AnswerFacts, CallOutcome

__all__ = ["METADATA_KEY", "answer_facts", "call_info", "decision_info", "tag"]

METADATA_KEY = "r2router"
"""The ``additional_kwargs`` key of the routing decision."""

R = TypeVar("R", ChatResponse, CompletionResponse)


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def answer_facts(response: Any) -> AnswerFacts:
    """What a LlamaIndex response reported, where it did (for a stream: its last chunk)."""
    if response is None:
        return AnswerFacts()
    raw = getattr(response, "raw", None)
    extra = getattr(response, "additional_kwargs", None) or {}
    choices = _get(raw, "choices") if raw is not None else None
    reason = _get(choices[0], "finish_reason") if isinstance(choices, Sequence) and choices else None
    usage = _get(raw, "usage") if raw is not None else None
    input_tokens = _int(_get(usage, "prompt_tokens")) if usage is not None else None
    output_tokens = _int(_get(usage, "completion_tokens")) if usage is not None else None
    return AnswerFacts(
        finish_reason=reason if isinstance(reason, str) else None,
        input_tokens=input_tokens if input_tokens is not None else _int(extra.get("prompt_tokens")),
        output_tokens=output_tokens if output_tokens is not None else _int(extra.get("completion_tokens")),
        text=_text(response),
    )


def _text(response: Any) -> str | None:
    message = getattr(response, "message", None)
    if message is not None:
        return getattr(message, "content", None)
    text = getattr(response, "text", None)
    return text if isinstance(text, str) else None


def decision_info(
    decision: RoutingDecision, used: Candidate, failures: Sequence[FailedAttempt], decision_id: str
) -> dict[str, Any]:
    """The ``r2router`` dict of an answer given by ``used`` (costs come with the outcome)."""
    return {"decision_id": decision_id, **decision.answered_by(used, failures), "escalations": []}


def call_info(info: dict[str, Any], outcome: CallOutcome) -> dict[str, Any]:
    """``info`` completed, in place, with the call's escalations and costs."""
    info["escalations"] = [t.to_dict() for t in outcome.truncated]
    info["cost_usd"] = outcome.cost_usd
    info["input_cost_usd"] = outcome.input_cost_usd
    info["output_cost_usd"] = outcome.output_cost_usd
    return info


def tag(response: R, info: dict[str, Any]) -> R:
    """Put ``info`` in the response's ``additional_kwargs`` (the same dict object on every chunk)."""
    response.additional_kwargs[METADATA_KEY] = info
    return response
