"""Graders: how an answer becomes a quality label in [0, 1].

Named by a spec string (the ``--grader`` of ``r2router collect``)::

    exact                   the normalised answer equals the normalised reference (1/0)
    choice                  the multiple-choice letter in the answer equals the reference letter
    numeric[:TOL]           the last number in the answer is within TOL (default 1e-6, absolute
                            or relative) of the numeric reference
    regex[:PATTERN]         the reference is a regular expression found in the answer; with
                            PATTERN, its first group (or match) in the answer must equal the reference
    contains                the normalised reference occurs in the normalised answer
    python:MODULE:FUNCTION  your function(answer, reference, prompt) -> float in [0, 1], bool or None
                            (MODULE is imported from the current directory too)
    per-row                 each prompt's own rule grader: the ``grader`` of its row in the prompts file
                            (e.g. numeric for maths, contains for the rest)
    judge:UPSTREAM          an LLM judge: an upstream of the yaml (or --judge-upstreams), priced there
    judge:MODULE:ATTR       an LLM judge: a LangChain chat model (or a function returning one), priced
                            with --judge-price IN,OUT

Rule graders score a missing answer or letter as 0: the model failed. A score
of ``None`` means *ungraded*, never 0: a judge answer that does not follow the
rubric is stored as ungraded with the reason, and export leaves that cell out.

The judge's rubric is :data:`JUDGE_RUBRIC`; its answer must be exactly one line
``SCORE: <number in [0, 1]>``, anything else is unparseable (strict on purpose:
a lenient parser turns "I cannot score this" into a number).

Grades are checked before they label anything (:func:`check_grades`): a grader that
gives one score to at least :data:`DEGENERATE_SHARE` of the answers cannot tell the
models apart (``exact`` on free-text answers scores everything 0), so export and
``r2router train --store`` refuse its grades unless told to accept them.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import re
import statistics
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from r2router_core import ConfigError, DataError
from r2router_core.store import PromptRecord

if TYPE_CHECKING:
    from r2router_core.store import OutcomeStore

__all__ = [
    "DEGENERATE_SHARE",
    "GRADER_SPECS",
    "JUDGE_RUBRIC",
    "PER_ROW",
    "GradeCheck",
    "JudgeGrader",
    "RuleGrader",
    "check_grades",
    "parse_judge_score",
    "per_row_grader",
    "require_usable_grades",
    "rule_grader",
]

GRADER_SPECS = (
    "exact",
    "choice",
    "numeric[:TOL]",
    "regex[:PATTERN]",
    "contains",
    "python:MODULE:FUNCTION",
    "per-row",
    "judge:UPSTREAM",
    "judge:MODULE:ATTR",
)
"""The grader specs ``--grader`` accepts."""

DEFAULT_NUMERIC_TOLERANCE = 1e-6

PER_ROW = "per-row"
"""The grader that grades each prompt with the rule grader its row names."""

DEGENERATE_SHARE = 0.95
"""A grader that gives one score to at least this share of the answers is degenerate."""

MIN_GRADES_CHECKED = 20
"""Fewer scored answers than this are too few to call a grader degenerate."""

JUDGE_RUBRIC = """You are grading one answer to a question.

Question:
<<<
{prompt}
>>>

Reference answer (empty if there is none):
<<<
{reference}
>>>

Answer to grade:
<<<
{answer}
>>>

Score how correct and complete the answer is, from 0 (wrong, empty or useless) to 1 (fully correct and \
complete); give partial credit for partly correct answers. An answer that stops mid-way counts only for \
what it says. Reply with exactly one line and nothing else:
SCORE: <a number from 0 to 1>"""
"""The judge's prompt (``{prompt}``, ``{reference}``, ``{answer}``)."""

_SCORE = re.compile(r"SCORE:[ \t]*([01](?:\.\d+)?|\.\d+)")


def parse_judge_score(text: str) -> float | None:
    """The score of a judge answer that is exactly ``SCORE: x`` with x in [0, 1]; else ``None``."""
    match = _SCORE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    score = float(match.group(1))
    return score if 0.0 <= score <= 1.0 else None


def normalise(text: str) -> str:
    """Case-folded, NFKC, markdown emphasis and surrounding quotes/punctuation removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("*", "").replace("`", "")
    text = " ".join(text.split())
    return text.strip(" \"'.,;:!?")


@dataclass(frozen=True)
class RuleGrader:
    """A grader computed from the answer and the reference, with no model call.

    Attributes:
        name: The spec it was built from (the store's grader name).
        score_fn: ``(answer, prompt) -> score in [0, 1] or None``.
        needs_reference: Whether every prompt must carry a reference.
        check_reference: Validates one reference before any call (raises ``ValueError``).
    """

    name: str
    score_fn: Callable[[str, PromptRecord], float | None]
    needs_reference: bool = True
    check_reference: Callable[[str], Any] | None = None

    def check(self, prompt: PromptRecord) -> None:
        """Refuse, before anything is called, a prompt this grader cannot grade.

        Raises:
            DataError: A missing or unusable reference (the prompt id named).
        """
        if not self.needs_reference:
            return
        if prompt.reference is None or not prompt.reference.strip():
            raise DataError(f"grader {self.name!r} needs a 'reference' for every prompt; prompt {prompt.id!r} has none")
        if self.check_reference is not None:
            try:
                self.check_reference(prompt.reference)
            except (ValueError, re.error) as exc:
                raise DataError(
                    f"grader {self.name!r} cannot use the reference {prompt.reference!r} of prompt {prompt.id!r}: {exc}"
                ) from exc

    def score(self, answer: str, prompt: PromptRecord) -> float | None:
        """The score of one answer."""
        value = self.score_fn(answer, prompt)
        if value is None:
            return None
        if isinstance(value, bool):
            return float(value)
        if not isinstance(value, int | float) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"grader {self.name!r} returned {value!r} for prompt {prompt.id!r}; expected [0, 1]")
        return float(value)


@dataclass(frozen=True)
class JudgeGrader:
    """An LLM judge: the judge model is asked with :data:`JUDGE_RUBRIC` and its answer strictly parsed.

    Attributes:
        name: The spec it was built from.
        member: The judge model (a pool member: an upstream or a LangChain chat model).
        rubric: The judge prompt template.
    """

    name: str
    member: Any
    rubric: str = JUDGE_RUBRIC

    def check(self, prompt: PromptRecord) -> None:
        """A judge grades any prompt (the reference is optional)."""

    def messages(self, answer: str, prompt: PromptRecord) -> list[dict[str, str]]:
        """The judge's request."""
        text = self.rubric.format(prompt=prompt.text, reference=prompt.reference or "", answer=answer)
        return [{"role": "user", "content": text}]


Grader = RuleGrader | JudgeGrader


# -- the rule graders ----------------------------------------------------------------------
def _exact(answer: str, prompt: PromptRecord) -> float:
    return float(normalise(answer) == normalise(prompt.reference or ""))


def _contains(answer: str, prompt: PromptRecord) -> float:
    return float(normalise(prompt.reference or "") in normalise(answer))


_LETTER_AFTER_ANSWER = re.compile(r"answer\s*(?:is|:)?\s*[:\-]?\s*\(?\s*([A-Za-z])\s*\)?(?![A-Za-z])", re.IGNORECASE)
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")


def choice_letter(answer: str) -> str | None:
    """The multiple-choice letter an answer gives: after "answer", alone, or the last "(X)"."""
    found = _LETTER_AFTER_ANSWER.findall(answer)
    if found:
        return str(found[-1]).upper()
    bare = answer.strip().strip("*().:[] \n")
    if len(bare) == 1 and bare.isalpha():
        return bare.upper()
    parens = _PAREN_LETTER.findall(answer)
    return str(parens[-1]) if parens else None


def _check_letter(reference: str) -> str:
    letter = reference.strip().strip("().").upper()
    if len(letter) != 1 or not letter.isalpha():
        raise ValueError("a multiple-choice reference must be one letter such as 'B'")
    return letter


def _choice(answer: str, prompt: PromptRecord) -> float:
    return float(choice_letter(answer) == _check_letter(prompt.reference or ""))


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")


def last_number(answer: str) -> float | None:
    """The last number in a text (thousands commas allowed), or ``None``."""
    found = _NUMBER.findall(answer)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def _numeric(tol: float) -> Callable[[str, PromptRecord], float]:
    def score(answer: str, prompt: PromptRecord) -> float:
        got = last_number(answer)
        want = float((prompt.reference or "").replace(",", ""))
        return float(got is not None and math.isclose(got, want, rel_tol=tol, abs_tol=tol))

    return score


def _regex_reference(answer: str, prompt: PromptRecord) -> float:
    return float(re.search(prompt.reference or "", answer) is not None)


def _regex_extract(pattern: re.Pattern[str]) -> Callable[[str, PromptRecord], float]:
    def score(answer: str, prompt: PromptRecord) -> float:
        match = pattern.search(answer)
        if match is None:
            return 0.0
        got = match.group(1) if pattern.groups else match.group(0)
        return float(normalise(got or "") == normalise(prompt.reference or ""))

    return score


def _python(spec: str, target: str) -> RuleGrader:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"grader {spec!r}: write python:MODULE:FUNCTION, e.g. python:my_graders:score")
    try:
        func = getattr(_import_user_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"grader {spec!r}: cannot import {attr!r} from module {module_name!r} ({exc})") from exc
    if not callable(func):
        raise ConfigError(f"grader {spec!r}: {target} is not callable")
    return RuleGrader(spec, lambda answer, prompt: func(answer, prompt.reference, prompt), needs_reference=False)


@contextlib.contextmanager
def _cwd_on_path() -> Iterator[None]:
    """The current directory on ``sys.path`` while importing (the ``r2router`` script's own
    ``sys.path`` starts at its bin directory, so ``my_graders.py`` beside the prompts would not import)."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _import_user_module(name: str) -> ModuleType:
    with _cwd_on_path():
        return importlib.import_module(name)


def rule_grader(spec: str) -> RuleGrader | None:
    """The rule grader of a spec; ``None`` for a judge spec.

    Raises:
        ConfigError: An unknown grader or a bad argument (the valid specs listed).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a grader spec must be one of {list(GRADER_SPECS)}, got {spec!r}")
    kind, _, arg = spec.strip().partition(":")
    if kind == "judge":
        return None
    if kind == PER_ROW:
        raise ConfigError(f"grader {PER_ROW!r} is built from the prompts (per_row_grader), not from a spec alone")
    if kind == "python":
        return _python(spec, arg)
    if kind in ("exact", "choice", "contains") and not arg:
        fn = {"exact": _exact, "choice": _choice, "contains": _contains}[kind]
        return RuleGrader(spec, fn, check_reference=_check_letter if kind == "choice" else None)
    if kind == "numeric":
        try:
            tol = float(arg) if arg else DEFAULT_NUMERIC_TOLERANCE
        except ValueError:
            tol = -1.0
        if not math.isfinite(tol) or tol < 0:
            raise ConfigError(f"grader {spec!r}: the tolerance must be a number >= 0, e.g. numeric:0.01")
        return RuleGrader(spec, _numeric(tol), check_reference=lambda r: float(r.replace(",", "")))
    if kind == "regex":
        if not arg:
            return RuleGrader(spec, _regex_reference, check_reference=re.compile)
        try:
            pattern = re.compile(arg)
        except re.error as exc:
            raise ConfigError(f"grader {spec!r}: {arg!r} is not a regular expression ({exc})") from exc
        return RuleGrader(spec, _regex_extract(pattern))
    raise ConfigError(f"unknown grader {spec!r}; the graders are {list(GRADER_SPECS)}")


def judge_target(spec: str) -> str:
    """The ``UPSTREAM`` or ``MODULE:ATTR`` of a ``judge:`` spec.

    Raises:
        ConfigError: An empty target.
    """
    target = spec.strip().partition(":")[2].strip()
    if not target:
        raise ConfigError(f"grader {spec!r}: write judge:UPSTREAM (a yaml entry) or judge:MODULE:ATTR (a chat model)")
    return target


def import_chat_model(spec: str, target: str) -> Any:
    """The LangChain chat model named ``MODULE:ATTR`` (an instance, or a function returning one).

    Raises:
        ConfigError: Not importable, or not a chat model.
    """
    from langchain_core.language_models import BaseChatModel

    module_name, _, attr = target.partition(":")
    try:
        obj = getattr(_import_user_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"grader {spec!r}: cannot import {attr!r} from module {module_name!r} ({exc})") from exc
    model = obj if isinstance(obj, BaseChatModel) else obj() if callable(obj) else None
    if not isinstance(model, BaseChatModel):
        raise ConfigError(f"grader {spec!r}: {target} is not a LangChain chat model (nor a function returning one)")
    return model


# -- per-row graders -----------------------------------------------------------------------
@dataclass(frozen=True)
class _RowGrader(RuleGrader):
    """``per-row``: each prompt graded by its own rule grader."""

    by_prompt: Mapping[str, RuleGrader] | None = None

    def check(self, prompt: PromptRecord) -> None:
        """Refuse a prompt without a grader of its own, or one its grader cannot grade."""
        grader = (self.by_prompt or {}).get(prompt.id)
        if grader is None:
            raise DataError(
                f"grader {PER_ROW!r} needs a 'grader' on every prompt's row; prompt {prompt.id!r} has none "
                '(add e.g. "grader": "contains" to its line; collect grade reads the rows from --prompts FILE)'
            )
        grader.check(prompt)


def per_row_grader(prompts: Sequence[PromptRecord]) -> RuleGrader:
    """The ``per-row`` grader of prompts read by :func:`~r2router_integrations.collect.prompts.read_prompts`.

    Each prompt is graded by the rule grader its row names (``grader``), so a file can
    grade maths with ``numeric`` and the rest with ``contains``; grades are stored under
    the one grader name ``per-row``.

    Raises:
        ConfigError: A row's grader is unknown or a judge (rule graders only).
    """
    specs = {p.id: getattr(p, "grader", None) for p in prompts}
    graders: dict[str, RuleGrader] = {}
    for spec in sorted({s for s in specs.values() if s}):
        rule = rule_grader(spec)
        if rule is None:
            raise ConfigError(
                f"a row's grader must be a rule grader, not the judge {spec!r}; give judges with --grader"
            )
        graders[spec] = rule
    by_prompt = {pid: graders[spec] for pid, spec in specs.items() if spec}

    def score(answer: str, prompt: PromptRecord) -> float | None:
        grader = by_prompt.get(prompt.id)
        if grader is None:
            raise DataError(f"grader {PER_ROW!r}: prompt {prompt.id!r} has no grader of its own")
        return grader.score(answer, prompt)

    return _RowGrader(PER_ROW, score, needs_reference=False, by_prompt=by_prompt)


# -- are the grades usable? ----------------------------------------------------------------
@dataclass(frozen=True)
class GradeCheck:
    """How one grader's scores spread over the stored answers.

    Attributes:
        grader: The grader.
        scored: Answers it scored.
        unscored: Answers it left without a score (a judge off its rubric).
        top_score: The score it gave most often (``None``: nothing scored).
        top_share: The share of scored answers that got ``top_score``.
        median_words: Median words per scored answer (free text when above a few).
    """

    grader: str
    scored: int
    unscored: int
    top_score: float | None
    top_share: float
    median_words: float

    @property
    def degenerate(self) -> bool:
        """One score for at least :data:`DEGENERATE_SHARE` of at least :data:`MIN_GRADES_CHECKED` answers."""
        return self.scored >= MIN_GRADES_CHECKED and self.top_share >= DEGENERATE_SHARE

    @property
    def likely_cause(self) -> str:
        """Why a degenerate grader probably is one."""
        kind = self.grader.partition(":")[0]
        if kind == "exact" and self.median_words > 3:
            return (
                f"'exact' compares the whole answer with the reference, and these answers are free text "
                f"(median {self.median_words:g} words); grade them with contains, numeric, choice, regex:PATTERN "
                "or a judge"
            )
        if self.top_score == 0.0:
            return (
                "the grader finds no right answer: check that it reads the answers' format (numeric for a number in "
                "text, choice for a letter, contains for a word in a sentence) and that the references are right"
            )
        if self.top_score == 1.0:
            return "the grader accepts nearly everything: it is too lenient, or the prompts are too easy to tell apart"
        return "the grader gives nearly every answer the same score: check its rubric against a few answers by hand"

    def describe(self) -> str:
        """One line for people (loud when degenerate)."""
        text = f"grader {self.grader!r}: {self.scored} answers scored, {self.unscored} unscored"
        if self.top_score is not None:
            text += f"; most common score {self.top_score:g} on {self.top_share:.0%}"
        if self.scored < MIN_GRADES_CHECKED:
            text += f" (fewer than {MIN_GRADES_CHECKED} scored answers: not checked for a constant score)"
        if self.degenerate:
            text = (
                f"WARNING: grader {self.grader!r} gives {self.top_score:g} to {self.top_share:.0%} of "
                f"{self.scored} answers, so its grades cannot tell the models apart and a router trained on them "
                f"learns only the prices. Likely cause: {self.likely_cause}. Export and train refuse these grades "
                "unless given --accept-degenerate-grades"
            )
        return text


def check_grades(store: OutcomeStore, grader: str, prompt_set: str | None = None) -> GradeCheck:
    """The spread of ``grader``'s stored scores over the ``ok`` calls (of ``prompt_set``, or all)."""
    grades = store.grades(grader, prompt_set)
    answers = {c.id: c.call.answer or "" for c in store.calls(prompt_set, status="ok")}
    scores = [g.score for cid, g in grades.items() if cid in answers and g.score is not None]
    unscored = sum(1 for cid, g in grades.items() if cid in answers and g.score is None)
    counts = Counter(round(s, 6) for s in scores)
    top, n = counts.most_common(1)[0] if counts else (None, 0)
    words = [len(answers[cid].split()) for cid, g in grades.items() if cid in answers and g.score is not None]
    return GradeCheck(
        grader=grader,
        scored=len(scores),
        unscored=unscored,
        top_score=top,
        top_share=n / len(scores) if scores else 0.0,
        median_words=float(statistics.median(words)) if words else 0.0,
    )


def require_usable_grades(
    store: OutcomeStore, grader: str, prompt_set: str | None = None, *, accept_degenerate: bool = False
) -> GradeCheck:
    """:func:`check_grades`, refusing a degenerate grader unless ``accept_degenerate``.

    Raises:
        DataError: The grader gives one score to nearly every answer (the cause and the way out named).
    """
    check = check_grades(store, grader, prompt_set)
    if check.degenerate and not accept_degenerate:
        raise DataError(
            f"grader {grader!r} gives {check.top_score:g} to {check.top_share:.0%} of {check.scored} answers; "
            f"a router trained on these grades learns only the prices. Likely cause: {check.likely_cause}. "
            "Grade again with a better grader, or pass --accept-degenerate-grades to use them anyway"
        )
    return check
