"""The per-(model, budget) table printed at the end of a run and by ``r2router collect status``.

The spend column is the pool's own (its calls); what judges cost is shown apart
(:func:`judge_spend`), never folded into a pool model's spend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from r2router_core import Budget
from r2router_core.store import ArmSummary, OutcomeStore

__all__ = ["HEADER", "collect_table", "format_table", "judge_spend", "pool_spend"]

HEADER = ("model", "budget", "calls", "errors", "quality", "out tokens", "cut", "pool $")


def format_table(arms: Sequence[ArmSummary], spend: Mapping[tuple[str, Budget], float] | None = None) -> str:
    """A plain-text table, one row per arm, with a total row.

    Args:
        arms: The arms.
        spend: The pool's spend per arm (default: each arm's own ``spend_usd``).
    """
    rows = [list(HEADER)]
    total = 0.0
    for a in arms:
        cost = a.spend_usd if spend is None else spend.get((a.model, a.budget), 0.0)
        total += cost
        rows.append([*a.row()[:-1], f"{cost:.4f}"])
    if arms:
        total_calls = sum(a.calls for a in arms)
        total_errors = sum(a.errors for a in arms)
        rows.append(["total", "", str(total_calls), str(total_errors), "", "", "", f"{total:.4f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    return "\n".join(lines)


def pool_spend(store: OutcomeStore, prompt_set: str | None = None) -> dict[tuple[str, Budget], float]:
    """USD the pool's calls cost, per (model, budget)."""
    out: dict[tuple[str, Budget], float] = {}
    for stored in store.calls(prompt_set):
        key = (stored.call.model, stored.call.budget)
        out[key] = out.get(key, 0.0) + stored.call.cost_usd
    return out


def judge_spend(store: OutcomeStore, prompt_set: str | None = None) -> dict[str, float]:
    """USD each paid grader (a judge) cost, by grader name (graders that cost nothing left out)."""
    out = {}
    for grader in store.graders(prompt_set):
        cost = sum(g.cost_usd for g in store.grades(grader, prompt_set).values())
        if cost > 0 or grader.startswith("judge:"):
            out[grader] = cost
    return out


def collect_table(store: OutcomeStore, prompt_set: str | None = None, grader: str | None = None) -> str:
    """The arm table (pool spend only), then one line of the judges' spend when there is any."""
    table = format_table(store.summary(prompt_set, grader), pool_spend(store, prompt_set))
    judges = judge_spend(store, prompt_set)
    if judges:
        spent = ", ".join(f"{name} ${cost:.4f}" for name, cost in judges.items())
        table += f"\njudges (not in the table): {spent}"
    return table
