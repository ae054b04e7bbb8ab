"""Typed, immutable rows of the outcome store."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import Budget, format_budget
from r2router_core.errors import DataError

__all__ = [
    "RESERVED_SOURCES",
    "ArmSummary",
    "CallRecord",
    "DecisionRecord",
    "FeedbackRecord",
    "GradeRecord",
    "PromptRecord",
    "StoredCall",
    "check_client_source",
    "check_decision_id",
    "check_feedback_source",
    "check_quality",
]

CALL_STATUSES = ("ok", "error")
MAX_DECISION_ID = 64
"""Characters of a decision id at most (the ``decisions.id`` column)."""

MAX_SOURCE = 200
"""Characters of a feedback source at most (the ``feedback.source`` column)."""

RESERVED_SOURCES = ("grader:",)
"""Feedback sources the system writes itself (prefixes, case-insensitive): ``collect grade-log`` stores a
grader's scores as ``grader:<spec>`` and skips answers graded so; a client may not post them."""

DECISION_STATUSES = ("ok", "error", "abandoned")
"""A logged decision may also be ``abandoned``: the caller left before the (paid) answer was complete."""


@dataclass(frozen=True)
class PromptRecord:
    """One prompt of a prompt set.

    Attributes:
        id: Unique within its set.
        text: The prompt sent as the user message.
        reference: The expected answer (what graders compare with), if any.
        category: A free label (reports only).
    """

    id: str
    text: str
    reference: str | None = None
    category: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise DataError(f"a prompt id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.text, str) or not self.text.strip():
            raise DataError(f"prompt {self.id!r}: the prompt text must be a non-empty string, got {self.text!r}")


@dataclass(frozen=True)
class CallRecord:
    """The outcome of one (prompt, model, budget) call, as the collector writes it.

    Attributes:
        prompt_set: The prompt set (a run's namespace in the store).
        prompt_id: The prompt.
        model: Pool model name.
        budget: The output-token cap sent (``None`` = uncapped).
        status: ``"ok"`` (an answer came back) or ``"error"`` (every retry failed; see ``error``).
        answer: The answer text (``None`` on error).
        finish_reason: The provider's finish reason (``"length"``: cut by the cap).
        input_tokens: Prompt tokens from the provider's usage (``None`` if not reported).
        output_tokens: Completion tokens from the provider's usage.
        latency_s: Seconds of the successful attempt (or of the last failed one).
        cost_usd: What the call cost at the pool's prices (0 on error).
        attempts: HTTP attempts made (retries included).
        error: What went wrong, for ``status == "error"``.
        model_id: The provider's model id sent in the request.
    """

    prompt_set: str
    prompt_id: str
    model: str
    budget: Budget
    status: str
    answer: str | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None
    cost_usd: float = 0.0
    attempts: int = 1
    error: str | None = None
    model_id: str | None = None

    def __post_init__(self) -> None:
        if self.status not in CALL_STATUSES:
            raise DataError(f"call status must be one of {list(CALL_STATUSES)}, got {self.status!r}")
        if not math.isfinite(self.cost_usd) or self.cost_usd < 0:
            raise DataError(f"cost_usd must be a finite number >= 0, got {self.cost_usd!r}")

    @property
    def cell(self) -> tuple[str, str, Budget]:
        """``(prompt_id, model, budget)``."""
        return (self.prompt_id, self.model, self.budget)


@dataclass(frozen=True)
class StoredCall:
    """A call as read back from the store, with its prompt.

    Attributes:
        id: The call's row id (grades refer to it).
        call: The outcome.
        prompt: The prompt it answered.
    """

    id: int
    call: CallRecord
    prompt: PromptRecord


@dataclass(frozen=True)
class GradeRecord:
    """One grader's verdict on one call.

    Attributes:
        call_id: The graded call.
        grader: The grader's name (its spec, e.g. ``"exact"`` or ``"judge:gpt-small"``).
        score: Quality in [0, 1], or ``None`` = ungraded (``reason`` says why; never read as 0).
        reason: Why the score is missing, or a short note.
        cost_usd: What grading cost (an LLM judge's own calls).
        grader_calls: Calls the grader made (0 for rule-based graders).
        input_tokens: The judge's prompt tokens.
        output_tokens: The judge's completion tokens.
        raw: The judge's own answer text.
    """

    call_id: int
    grader: str
    score: float | None
    reason: str | None = None
    cost_usd: float = 0.0
    grader_calls: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    raw: str | None = None

    def __post_init__(self) -> None:
        if self.score is not None and (not math.isfinite(self.score) or not 0.0 <= self.score <= 1.0):
            raise DataError(f"grade score must be in [0, 1] or None (ungraded), got {self.score!r}")


@dataclass(frozen=True)
class ArmSummary:
    """The collect report of one (model, budget) arm.

    Attributes:
        model: Pool model name.
        budget: Output-token cap (``None`` = uncapped).
        calls: Calls stored (ok + error).
        errors: Calls that failed.
        mean_quality: Mean grade over graded calls (``None``: none graded).
        mean_output_tokens: Mean completion tokens of ok calls.
        cut_share: Share of ok calls whose finish reason is ``"length"``.
        spend_usd: Total cost of the calls.
    """

    model: str
    budget: Budget
    calls: int
    errors: int
    mean_quality: float | None
    mean_output_tokens: float | None
    cut_share: float | None
    spend_usd: float

    def row(self) -> list[str]:
        """The row of the report table."""

        def num(value: float | None, fmt: str) -> str:
            return "-" if value is None else format(value, fmt)

        return [
            self.model,
            format_budget(self.budget),
            str(self.calls),
            str(self.errors),
            num(self.mean_quality, ".3f"),
            num(self.mean_output_tokens, ".1f"),
            num(self.cut_share, ".0%"),
            f"{self.spend_usd:.4f}",
        ]


@dataclass(frozen=True)
class DecisionRecord:
    """One routed live call, as the decision log writes it (privacy by default: no text).

    Attributes:
        id: The decision id returned to the caller (completion id, metadata).
        source: Who routed it: ``"gateway"``, ``"langchain"``, ``"llamaindex"``, ``"python"``.
        model: The pool model that answered (or the last one tried, on error).
        budget: Its output-token budget (``None`` = uncapped).
        options: The routing options, JSON-ready (``RoutingOptions.to_dict()``).
        predicted_quality: The router's predicted quality of that arm.
        predicted_cost: The router's predicted USD of that arm.
        lambda_: The cost weight used.
        propensity: The probability with which this arm was chosen (1.0 without exploration).
        status: ``"ok"``, ``"error"`` (every attempt failed) or ``"abandoned"`` (the caller left
            before the answer was complete; what the provider reported is kept).
        input_tokens: Prompt tokens from the provider's usage.
        output_tokens: Completion tokens from the provider's usage.
        finish_reason: The provider's finish reason (``"length"``: cut by the cap).
        latency_s: Seconds from routing to the answer.
        cost_usd: USD of every attempt of the call, summed.
        failed_attempts: The attempts that failed first, as ``FailedAttempt.to_dict()``.
        embedder: The embedder id of ``embedding``.
        embedding: The prompt's embedding, shape (D,) float32 (``None`` if not kept).
        prompt: The prompt text; ``None`` unless the deployment opted in.
        answer: The answer text; ``None`` unless the deployment opted in.
        escalated_from: The id of the decision this one escalated (a truncated answer).
        created_at: UTC ISO time (set by the store when empty).
    """

    id: str
    source: str
    model: str
    budget: Budget
    options: dict[str, Any]
    predicted_quality: float | None = None
    predicted_cost: float | None = None
    lambda_: float | None = None
    propensity: float = 1.0
    status: str = "ok"
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    latency_s: float | None = None
    cost_usd: float = 0.0
    failed_attempts: tuple[dict[str, Any], ...] = ()
    embedder: str | None = None
    embedding: NDArray[np.float32] | None = field(default=None, compare=False)
    prompt: str | None = None
    answer: str | None = None
    escalated_from: str | None = None
    created_at: str = ""

    def __post_init__(self) -> None:
        check_decision_id(self.id)
        if self.status not in DECISION_STATUSES:
            raise DataError(f"decision {self.id}: status must be one of {DECISION_STATUSES}, got {self.status!r}")
        if not 0.0 < self.propensity <= 1.0:
            raise DataError(f"decision {self.id}: propensity must be in (0, 1], got {self.propensity!r}")


@dataclass(frozen=True)
class FeedbackRecord:
    """One quality judgement of a logged decision.

    Attributes:
        decision_id: The decision judged.
        quality: The score in [0, 1].
        source: Who judged (``"api"``, a grader's name, a user id...).
        created_at: UTC ISO time.
    """

    decision_id: str
    quality: float
    source: str
    created_at: str


def check_quality(quality: Any) -> float:
    """A feedback score as a float in [0, 1].

    Raises:
        DataError: Not a finite number in [0, 1] (booleans are refused).
    """
    if isinstance(quality, bool) or not isinstance(quality, int | float) or not math.isfinite(quality):
        raise DataError(f"quality must be a number in [0, 1], got {quality!r}")
    if not 0.0 <= quality <= 1.0:
        raise DataError(f"quality must be in [0, 1], got {quality!r}")
    return float(quality)


def check_decision_id(decision_id: Any) -> str:
    """A decision id as stored: a non-empty string of at most 64 characters, without NUL.

    Raises:
        DataError: Anything else (PostgreSQL would refuse a NUL; no stored id is longer).
    """
    if not isinstance(decision_id, str) or not decision_id:
        raise DataError(f"a decision id must be a non-empty string, got {decision_id!r}")
    if "\x00" in decision_id or len(decision_id) > MAX_DECISION_ID:
        raise DataError(
            f"a decision id has at most {MAX_DECISION_ID} characters and no NUL, got {decision_id[:80]!r}; "
            "send the id the answer carried (its 'id' or the x-r2router-decision-id header)"
        )
    return decision_id


def check_feedback_source(source: Any) -> str:
    """A feedback source as stored: a non-empty string of at most 200 characters, without NUL.

    Raises:
        DataError: Anything else (the same rule on SQLite and PostgreSQL).
    """
    if not isinstance(source, str) or not source.strip():
        raise DataError(f"a feedback source must be a non-empty string, got {source!r}")
    if "\x00" in source or len(source) > MAX_SOURCE:
        raise DataError(f"a feedback source has at most {MAX_SOURCE} characters and no NUL, got {source[:80]!r}...")
    return source


def check_client_source(source: Any) -> str:
    """A feedback source a client may send: :func:`check_feedback_source`, and none of :data:`RESERVED_SOURCES`.

    Raises:
        DataError: An invalid source, or one the system writes itself (``grader:*``).
    """
    source = check_feedback_source(source)
    if source.strip().lower().startswith(RESERVED_SOURCES):
        raise DataError(
            f"feedback source {source!r} is reserved for r2router's own graders ({', '.join(RESERVED_SOURCES)}*); "
            "name your source otherwise (e.g. 'api', 'user:<id>')"
        )
    return source
