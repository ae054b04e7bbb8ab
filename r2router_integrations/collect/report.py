"""The per-(model, budget) table printed at the end of a run and by ``r2router collect status``."""

from __future__ import annotations

from collections.abc import Sequence

from r2router_core.store import ArmSummary

__all__ = ["HEADER", "format_table"]

HEADER = ("model", "budget", "calls", "errors", "quality", "out tokens", "cut", "spend $")


def format_table(arms: Sequence[ArmSummary]) -> str:
    """A plain-text table, one row per arm, with a total row."""
    rows = [list(HEADER), *[a.row() for a in arms]]
    if arms:
        total_calls = sum(a.calls for a in arms)
        total_errors = sum(a.errors for a in arms)
        rows.append(
            ["total", "", str(total_calls), str(total_errors), "", "", "", f"{sum(a.spend_usd for a in arms):.4f}"]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    return "\n".join(lines)
