"""Reading JSONL files with errors that name the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from r2router_core.errors import DataError

__all__ = ["field", "read_jsonl"]


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file.

    Raises:
        DataError: A line is not a JSON object; the message names file and line.
    """
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            yield number, record


def field(record: Mapping[str, Any], dotted: str, where: str) -> Any:
    """The value at a dotted path such as ``"token_usage.output_tokens"``.

    Raises:
        DataError: The field is missing; the message names it and ``where``.
    """
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise DataError(f"{where}: missing field {dotted!r}")
        value = value[part]
    return value
