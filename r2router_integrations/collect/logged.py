"""Collect's graders on the decision log: what grading the logged answers will do, and cost.

A logged answer can be graded only when the deployment kept its text
(``keep_text=True``, ``r2router serve --keep-text``); the others are skipped and
counted. A grade is stored as feedback on the decision, with the source
``"grader:<spec>"``, so it labels the row exactly as a user's score does
(``training_data_from_decisions``, ``r2router train --store``), and a decision that
holds feedback from a grader is never graded by it again.

Logged traffic has no reference answers: graders that need one (``exact``,
``numeric``, ``regex`` ...) get it from ``references``, a mapping from the prompt
text as logged (the last user message) to its reference, e.g. the prompts file of
a replayed benchmark. Decisions without a reference are skipped and counted for
those graders; ``python:`` graders and judges grade any answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from r2router_core.store import DecisionRecord, OutcomeStore, PromptRecord
from r2router_integrations.collect.graders import JudgeGrader, RuleGrader
from r2router_integrations.collect.plan import CHARS_PER_TOKEN, DEFAULT_UNCAPPED_MAX_TOKENS, estimate_input_tokens

__all__ = [
    "GRADER_SOURCE",
    "LogGradePlan",
    "LogGradeResult",
    "feedback_source",
    "plan_log_grading",
    "references_of",
]

GRADER_SOURCE = "grader:"
"""The prefix of the feedback source of a grade (``grader:exact``, ``grader:judge:gpt-small``)."""


def feedback_source(grader: RuleGrader | JudgeGrader) -> str:
    """The feedback source under which ``grader``'s grades of logged answers are stored."""
    return GRADER_SOURCE + grader.name


@dataclass(frozen=True)
class LogGradePlan:
    """What one grader will grade in the decision log, and the most it can cost.

    Attributes:
        grader: The grader.
        todo: The logged answers to grade, each with its prompt (text and reference, id = decision id).
        graded_before: Answers with kept text this grader graded in an earlier run (not graded again).
        no_text: ``ok`` answers logged without their text: cannot be graded, skipped.
        no_reference: Answers skipped because the grader needs a reference and none matched the prompt.
        uncapped_max_tokens: Output tokens a judge answer counts for in the worst case.
    """

    grader: RuleGrader | JudgeGrader
    todo: tuple[tuple[DecisionRecord, PromptRecord], ...]
    graded_before: int
    no_text: int
    no_reference: int
    uncapped_max_tokens: int = DEFAULT_UNCAPPED_MAX_TOKENS

    @property
    def calls_models(self) -> bool:
        """Whether grading calls a model (a judge with answers to grade)."""
        return isinstance(self.grader, JudgeGrader) and bool(self.todo)

    def worst_case_call_usd(self, decision: DecisionRecord, prompt: PromptRecord) -> float:
        """The most one judge call can cost: its estimated input plus an uncapped answer (0 for rule graders)."""
        if not isinstance(self.grader, JudgeGrader):
            return 0.0
        spec = self.grader.member.spec
        text = self.grader.messages(decision.answer or "", prompt)[0]["content"]
        return (estimate_input_tokens(text) * spec.input_price + self.uncapped_max_tokens * spec.output_price) / 1e6

    @property
    def worst_case_usd(self) -> float:
        """The most grading every planned answer can cost."""
        return sum(self.worst_case_call_usd(d, p) for d, p in self.todo)

    def describe(self) -> str:
        """The plan for people."""
        lines = [
            f"grader {self.grader.name!r} on the decision log: {len(self.todo)} logged answers to grade "
            f"({self.graded_before} graded before; skipped: {self.no_text} without kept text, "
            f"{self.no_reference} without a reference)"
        ]
        if self.no_reference:
            lines.append("  logged traffic has no reference answers: give them by prompt text (--references PROMPTS)")
        if isinstance(self.grader, JudgeGrader):
            spec = self.grader.member.spec
            lines.append(
                f"  judge {spec.name} (${spec.input_price:g}/${spec.output_price:g} per 1M in/out): "
                f"{len(self.todo)} calls, worst-case cost ${self.worst_case_usd:.4f} "
                f"(input at {CHARS_PER_TOKEN} characters per token, each answer at {self.uncapped_max_tokens:,} tokens)"
            )
            if spec.input_price == 0 and spec.output_price == 0:
                lines.append(f"  no prices for the judge {spec.name}: its calls count as $0")
        return "\n".join(lines)


@dataclass(frozen=True)
class LogGradeResult:
    """What grading the decision log did.

    Attributes:
        plans: The plan of each grader.
        graded: Grades stored as feedback.
        ungraded: Answers a judge did not score (failed call or an answer off the rubric): nothing
            stored, the next run asks again.
        spent_usd: Cost of the judges' calls (not stored: feedback rows hold no cost).
        stopped_at_max_usd: Grading stopped before ``max_usd`` would have been passed.
    """

    plans: tuple[LogGradePlan, ...]
    graded: int
    ungraded: int
    spent_usd: float
    stopped_at_max_usd: bool

    def describe(self) -> str:
        """One line for people."""
        text = f"{self.graded} logged answers graded, {self.ungraded} left ungraded, ${self.spent_usd:.4f} spent"
        if self.stopped_at_max_usd:
            text += "; stopped at --max-usd: run again with a higher limit to go on"
        return text


def plan_log_grading(
    store: OutcomeStore,
    grader: RuleGrader | JudgeGrader,
    *,
    references: Mapping[str, str] | None = None,
    uncapped_max_tokens: int = DEFAULT_UNCAPPED_MAX_TOKENS,
) -> LogGradePlan:
    """Plan one grader over the decision log: the ``ok`` answers with kept text it has not graded.

    Args:
        store: The outcome store holding the decision log.
        grader: A rule grader or a judge (see :func:`~r2router_integrations.collect.runner.resolve_graders`).
        references: Prompt text as logged -> its reference answer.
        uncapped_max_tokens: Output tokens a judge answer counts for in the worst case.

    Raises:
        DataError: A matched reference the grader cannot use (the decision named).
    """
    refs = references or {}
    pending = store.ungraded_decisions(feedback_source(grader))
    todo: list[tuple[DecisionRecord, PromptRecord]] = []
    for decision in pending:
        text = decision.prompt or ""
        prompt = PromptRecord(decision.id, text, refs.get(text))
        if isinstance(grader, RuleGrader) and grader.needs_reference and prompt.reference is None:
            continue
        grader.check(prompt)
        todo.append((decision, prompt))
    return LogGradePlan(
        grader=grader,
        todo=tuple(todo),
        graded_before=store.count_decisions(status="ok", text_kept=True) - len(pending),
        no_text=store.count_decisions(status="ok", text_kept=False),
        no_reference=len(pending) - len(todo),
        uncapped_max_tokens=uncapped_max_tokens,
    )


def references_of(prompts: Sequence[PromptRecord]) -> dict[str, str]:
    """Prompt text -> reference, of the prompts that have one (a prompts file of ``r2router collect``)."""
    return {p.text: p.reference for p in prompts if p.reference is not None}
