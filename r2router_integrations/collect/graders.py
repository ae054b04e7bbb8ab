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
    judge:UPSTREAM          an LLM judge: an upstream of the yaml (or --judge-upstreams)
    judge:MODULE:ATTR       an LLM judge: a LangChain chat model (or a function returning one)

Rule graders score a missing answer or letter as 0: the model failed. A score
of ``None`` means *ungraded*, never 0: a judge answer that does not follow the
rubric is stored as ungraded with the reason, and export leaves that cell out.

The judge's rubric is :data:`JUDGE_RUBRIC`; its answer must be exactly one line
``SCORE: <number in [0, 1]>``, anything else is unparseable (strict on purpose:
a lenient parser turns "I cannot score this" into a number).
"""

from __future__ import annotations

import importlib
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from r2router_core import ConfigError, DataError
from r2router_core.store import PromptRecord

__all__ = [
    "GRADER_SPECS",
    "JUDGE_RUBRIC",
    "JudgeGrader",
    "RuleGrader",
    "parse_judge_score",
    "rule_grader",
]

GRADER_SPECS = (
    "exact",
    "choice",
    "numeric[:TOL]",
    "regex[:PATTERN]",
    "contains",
    "python:MODULE:FUNCTION",
    "judge:UPSTREAM",
    "judge:MODULE:ATTR",
)
"""The grader specs ``--grader`` accepts."""

DEFAULT_NUMERIC_TOLERANCE = 1e-6

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
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"grader {spec!r}: cannot import {attr!r} from module {module_name!r} ({exc})") from exc
    if not callable(func):
        raise ConfigError(f"grader {spec!r}: {target} is not callable")
    return RuleGrader(spec, lambda answer, prompt: func(answer, prompt.reference, prompt), needs_reference=False)


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
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"grader {spec!r}: cannot import {attr!r} from module {module_name!r} ({exc})") from exc
    model = obj if isinstance(obj, BaseChatModel) else obj() if callable(obj) else None
    if not isinstance(model, BaseChatModel):
        raise ConfigError(f"grader {spec!r}: {target} is not a LangChain chat model (nor a function returning one)")
    return model
