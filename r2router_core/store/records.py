"""Typed, immutable rows of the outcome store."""

from __future__ import annotations

import math
from dataclasses import dataclass

from r2router_core.config import Budget, format_budget
from r2router_core.errors import DataError

__all__ = ["ArmSummary", "CallRecord", "GradeRecord", "PromptRecord", "StoredCall"]

CALL_STATUSES = ("ok", "error")


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
