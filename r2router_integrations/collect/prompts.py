"""Reading a prompts file: JSONL or CSV with ``id``, ``prompt``, optional ``reference``, ``category`` and ``grader``.

Every line is checked before anything is called; an error names the file and the line::

    {"id": "q1", "prompt": "What is 2 + 2?", "reference": "4", "category": "math", "grader": "numeric"}

    id,prompt,reference,category,grader
    q1,What is 2 + 2?,4,math,numeric

A row's ``grader`` (a rule grader spec) grades that row under the grader ``per-row``
(see :func:`~r2router_integrations.collect.graders.per_row_grader`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r2router_core import DataError
from r2router_core.store import PromptRecord

__all__ = ["PROMPT_FIELDS", "Prompt", "read_prompts"]

PROMPT_FIELDS = ("id", "prompt", "reference", "category", "grader")
"""The fields of a prompt line; ``id`` and ``prompt`` are required."""


@dataclass(frozen=True)
class Prompt(PromptRecord):
    """A prompt of a prompts file: a :class:`PromptRecord` plus the grader its row names.

    Attributes:
        grader: The rule grader spec of this row (``None``: none given), used by ``per-row``.
    """

    grader: str | None = None


def read_prompts(path: str | Path) -> list[Prompt]:
    """Every prompt of a ``.jsonl`` (or ``.json`` lines) or ``.csv`` file, in file order.

    Raises:
        DataError: A missing file, a bad line (file and line named), or a duplicate id.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prompts file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text: {exc}") from exc
    rows = _csv_rows(path, text) if path.suffix.lower() == ".csv" else _jsonl_rows(path, text)
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for line, raw in rows:
        prompt = _prompt(path, line, raw)
        if prompt.id in seen:
            raise DataError(f"{path}:{line}: duplicate prompt id {prompt.id!r} (first on line {seen[prompt.id]})")
        seen[prompt.id] = line
        prompts.append(prompt)
    if not prompts:
        raise DataError(f"{path} holds no prompts")
    return prompts


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, Any]]:
    rows = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rows.append((line, json.loads(raw)))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line}: not a JSON object ({exc.msg}); each line holds one prompt") from exc
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[int, Any]]:
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [f for f in ("id", "prompt") if f not in header]
    if missing:
        raise DataError(f"{path}:1: the CSV header needs columns {missing}; it has {header}")
    rows = []
    for raw in reader:
        if None in raw:
            raise DataError(f"{path}:{reader.line_num}: more fields than the header's {len(header)}")
        rows.append((reader.line_num, {k: (v if v != "" else None) for k, v in raw.items()}))
    return rows


def _prompt(path: Path, line: int, raw: Any) -> Prompt:
    where = f"{path}:{line}"
    if not isinstance(raw, Mapping):
        raise DataError(f"{where}: a prompt must be an object with 'id' and 'prompt', got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(PROMPT_FIELDS))
    if unknown:
        raise DataError(f"{where}: unknown fields {unknown}; the fields are {list(PROMPT_FIELDS)}")
    pid, text = raw.get("id"), raw.get("prompt")
    if isinstance(pid, int) and not isinstance(pid, bool):
        pid = str(pid)
    if not isinstance(pid, str) or not pid.strip():
        raise DataError(f"{where}: 'id' must be a non-empty string, got {pid!r}")
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: 'prompt' must be a non-empty string, got {text!r}")
    optional: dict[str, str | None] = {}
    for key in ("reference", "category", "grader"):
        value = raw.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if value is not None and not isinstance(value, str):
            raise DataError(f"{where}: {key!r} must be a string or a number, got {value!r}")
        optional[key] = value
    grader = optional["grader"]
    if grader is not None and not grader.strip():
        grader = None
    return Prompt(pid.strip(), text, optional["reference"], optional["category"], grader)
