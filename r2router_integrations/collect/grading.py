"""Grading stored calls: what a grader will grade, what a judge can cost, and what grading did.

A rule grader costs nothing; a judge is a paid model, so its plan states the number
of calls and their worst case (the rubric's estimated input plus an answer of
``uncapped_max_tokens``) before it is called, exactly as a collection's plan does.
"""

from __future__ import annotations

from dataclasses import dataclass

from r2router_core import ModelSpec
from r2router_core.store import OutcomeStore, PromptRecord, StoredCall
from r2router_integrations.collect.graders import GradeCheck, JudgeGrader, RuleGrader
from r2router_integrations.collect.plan import (
    CHARS_PER_TOKEN,
    DEFAULT_UNCAPPED_MAX_TOKENS,
    estimate_input_tokens,
    price_text,
)

__all__ = ["GradePlan", "GradeResult", "judge_worst_usd", "plan_grading"]


def judge_worst_usd(spec: ModelSpec, request_text: str, uncapped_max_tokens: int) -> float:
    """The most one judge call can cost: its estimated input plus an answer of ``uncapped_max_tokens``."""
    return (estimate_input_tokens(request_text) * spec.input_price + uncapped_max_tokens * spec.output_price) / 1e6


@dataclass(frozen=True)
class GradePlan:
    """What one grader will grade among the stored calls, and the most it can cost.

    Attributes:
        grader: The grader.
        todo: The ``ok`` calls it has not graded yet.
        uncapped_max_tokens: Output tokens a judge answer counts for in the worst case.
    """

    grader: RuleGrader | JudgeGrader
    todo: tuple[StoredCall, ...]
    uncapped_max_tokens: int = DEFAULT_UNCAPPED_MAX_TOKENS

    @property
    def calls_models(self) -> bool:
        """Whether grading calls a model (a judge with answers to grade)."""
        return isinstance(self.grader, JudgeGrader) and bool(self.todo)

    def worst_case_call_usd(self, answer: str, prompt: PromptRecord) -> float:
        """The most grading one answer can cost (0 for a rule grader)."""
        if not isinstance(self.grader, JudgeGrader):
            return 0.0
        text = self.grader.messages(answer, prompt)[0]["content"]
        return judge_worst_usd(self.grader.member.spec, text, self.uncapped_max_tokens)

    @property
    def worst_case_usd(self) -> float:
        """The most grading every planned answer can cost."""
        return sum(self.worst_case_call_usd(s.call.answer or "", s.prompt) for s in self.todo)

    def describe(self) -> str:
        """The plan for people."""
        line = f"grader {self.grader.name!r}: {len(self.todo)} stored answers to grade"
        if not isinstance(self.grader, JudgeGrader):
            return line + " (a rule grader: no model is called)"
        spec = self.grader.member.spec
        return (
            f"{line}\n  judge {spec.name} ({price_text(spec)}): {len(self.todo)} calls, worst-case cost "
            f"${self.worst_case_usd:.4f} (input at {CHARS_PER_TOKEN} characters per token, each judge answer at "
            f"{self.uncapped_max_tokens:,} tokens)"
        )


def plan_grading(
    store: OutcomeStore,
    grader: RuleGrader | JudgeGrader,
    prompt_set: str | None = None,
    *,
    uncapped_max_tokens: int = DEFAULT_UNCAPPED_MAX_TOKENS,
) -> GradePlan:
    """Plan one grader over the stored ``ok`` calls it has not graded."""
    todo = tuple(store.ungraded_calls(grader.name, prompt_set))
    return GradePlan(grader, todo, uncapped_max_tokens)


@dataclass(frozen=True)
class GradeResult:
    """What grading stored calls did.

    Attributes:
        plans: The plan of each grader.
        graded: Grades stored (scored or not).
        unscored: Of those, answers a judge did not score (off its rubric): stored without a score,
            with the reason; export leaves them out.
        failed: Judge calls that failed: nothing stored, the next run asks again.
        judge_spent_usd: What the judges' calls cost (stored with each grade).
        stopped_at_max_usd: Grading stopped before ``max_usd`` would have been passed.
        checks: The spread of each grader's scores after grading.
    """

    plans: tuple[GradePlan, ...]
    graded: int
    unscored: int
    failed: int
    judge_spent_usd: float
    stopped_at_max_usd: bool
    checks: tuple[GradeCheck, ...] = ()

    def describe(self) -> str:
        """A few lines for people."""
        text = f"{self.graded} grades stored"
        if self.unscored or any(isinstance(p.grader, JudgeGrader) for p in self.plans):
            text += f" ({self.unscored} answers the judge did not score: stored without a score, with the reason)"
        if self.failed:
            text += f"; {self.failed} judge calls failed (run again to retry them)"
        text += f"; judges spent ${self.judge_spent_usd:.4f}"
        if self.stopped_at_max_usd:
            text += "; stopped at --max-usd: run again with a higher limit to go on"
        return "\n".join([text, *(c.describe() for c in self.checks)])
