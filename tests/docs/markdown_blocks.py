"""Find the code blocks of a Markdown file, with the not-run markers that excuse some of them.

A block is preceded (on the line before its opening fence) by an optional marker
``<!-- not-run: REASON -->``; the reason must name the test that covers the block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^```(\w*)\s*$")
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.+?)\s*-->")


@dataclass(frozen=True)
class Block:
    """One fenced code block."""

    language: str
    code: str
    line: int  # 1-based line of the opening fence
    not_run: str | None  # the reason, if excused


def code_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` in document order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        marker = _NOT_RUN.search(lines[start - 1]) if start else None
        blocks.append(Block(match.group(1), "\n".join(body) + "\n", start + 1, marker.group(1) if marker else None))
        i += 1
    return blocks
