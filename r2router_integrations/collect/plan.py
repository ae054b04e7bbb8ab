"""The plan of a collection: which (prompt, model, budget) cells will be called, and the most it can cost.

The worst case counts every capped answer at its full budget and every uncapped
answer at :data:`DEFAULT_UNCAPPED_MAX_TOKENS` (``--uncapped-max-tokens``); input
tokens are estimated at one token per :data:`CHARS_PER_TOKEN` characters plus the
length instruction and the chat template's overhead. Cells already done in the
store are not planned again. A judge among the graders adds, per new answer, its
rubric's estimated input (the answer counted at its whole budget) and an answer of
``uncapped_max_tokens`` at the judge's prices.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from r2router_core import Budget, ConfigError, ModelSpec, format_budget
from r2router_core.store import PromptRecord

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_UNCAPPED_MAX_TOKENS",
    "Cell",
    "CollectPlan",
    "build_plan",
    "parse_budgets",
    "price_text",
]

DEFAULT_UNCAPPED_MAX_TOKENS = 4096
"""Output tokens an uncapped answer is counted at in the worst-case cost."""

CHARS_PER_TOKEN = 4
"""Characters per token of the input estimate (English text; code and other scripts use more tokens)."""

_OVERHEAD_TOKENS = 16  # the length instruction and the chat template's role markers


def parse_budgets(text: str) -> tuple[Budget, ...]:
    """Budgets from ``"64,256,uncapped"`` (``uncapped``/``none`` = no cap).

    Raises:
        ConfigError: An empty list, a non-positive or unreadable value, or a repeat.
    """
    budgets: list[Budget] = []
    for item in str(text).split(","):
        word = item.strip().lower()
        if word in ("uncapped", "none", "null"):
            budgets.append(None)
            continue
        if not word.isdigit() or int(word) < 1:
            raise ConfigError(f"budget {item.strip()!r} is not a positive integer or 'uncapped' (in {text!r})")
        budgets.append(int(word))
    if len(set(budgets)) != len(budgets):
        raise ConfigError(f"budgets repeat a value: {text!r}")
    return tuple(budgets)


def estimate_input_tokens(text: str) -> int:
    """Estimated prompt tokens of one call."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) + _OVERHEAD_TOKENS


@dataclass(frozen=True)
class Cell:
    """One (prompt, model, budget) call to make."""

    prompt: PromptRecord
    model: str
    budget: Budget


@dataclass(frozen=True)
class CollectPlan:
    """What a run will call, and its worst-case cost.

    Attributes:
        prompt_set: The prompt set.
        cells: The cells still to call, prompt by prompt (every model and budget of a prompt together).
        total_cells: Cells of the full grid (prompts x models x budgets).
        models: The pool's specs (prices), in pool order.
        budgets: The budgets.
        uncapped_max_tokens: Output tokens an uncapped answer counts for.
    """

    prompt_set: str
    cells: tuple[Cell, ...]
    total_cells: int
    models: tuple[ModelSpec, ...]
    budgets: tuple[Budget, ...]
    uncapped_max_tokens: int = DEFAULT_UNCAPPED_MAX_TOKENS
    judges: tuple[tuple[str, ModelSpec], ...] = ()

    @property
    def done_cells(self) -> int:
        """Cells already done in the store."""
        return self.total_cells - len(self.cells)

    def spec(self, model: str) -> ModelSpec:
        """The prices of one pool model."""
        return next(m for m in self.models if m.name == model)

    def worst_case_cell_usd(self, cell: Cell) -> float:
        """The most one call can cost: estimated input plus the whole budget of output."""
        spec = self.spec(cell.model)
        out = self.uncapped_max_tokens if cell.budget is None else cell.budget
        return (estimate_input_tokens(cell.prompt.text) * spec.input_price + out * spec.output_price) / 1e6

    @property
    def estimated_input_tokens(self) -> int:
        """Estimated prompt tokens of every planned call."""
        return sum(estimate_input_tokens(c.prompt.text) for c in self.cells)

    @property
    def worst_case_usd(self) -> float:
        """The most the planned calls can cost (the pool's calls only)."""
        return sum(self.worst_case_cell_usd(c) for c in self.cells)

    def judge_worst_case_cell_usd(self, cell: Cell, judge: ModelSpec) -> float:
        """The most one judge call on a cell's answer can cost."""
        from r2router_integrations.collect.graders import JUDGE_RUBRIC

        answer = self.uncapped_max_tokens if cell.budget is None else cell.budget
        text = JUDGE_RUBRIC + cell.prompt.text + (cell.prompt.reference or "")
        return (
            (estimate_input_tokens(text) + answer) * judge.input_price + self.uncapped_max_tokens * judge.output_price
        ) / 1e6

    @property
    def judge_worst_case_usd(self) -> float:
        """The most the judges can cost grading the planned calls' answers."""
        return sum(self.judge_worst_case_cell_usd(c, spec) for c in self.cells for _, spec in self.judges)

    @property
    def total_worst_case_usd(self) -> float:
        """The most the run can cost: the pool's calls and the judges'."""
        return self.worst_case_usd + self.judge_worst_case_usd

    def describe(self) -> str:
        """The plan for people."""
        n_prompts = len({c.prompt.id for c in self.cells})
        prices = ", ".join(f"{m.name} ({price_text(m)})" for m in self.models)
        lines = [
            f"plan for prompt set {self.prompt_set!r}: {len(self.cells)} calls to make "
            f"({n_prompts} prompts x {len(self.models)} models x {len(self.budgets)} budgets; "
            f"{self.done_cells} of {self.total_cells} already done)",
            f"  models:  {prices}",
            f"  budgets: {', '.join(format_budget(b) for b in self.budgets)}",
            f"  estimated input tokens: {self.estimated_input_tokens:,} ({CHARS_PER_TOKEN} characters per token)",
            f"  worst-case cost: ${self.worst_case_usd:.4f} (capped answers at their full budget, "
            f"uncapped answers at {self.uncapped_max_tokens:,} tokens)",
        ]
        for name, spec in self.judges:
            lines.append(f"  judge {name} ({price_text(spec)}): up to {len(self.cells)} calls")
        if self.judges:
            lines.append(
                f"  judges' worst-case cost: ${self.judge_worst_case_usd:.4f} (each judge answer at "
                f"{self.uncapped_max_tokens:,} tokens); total ${self.total_worst_case_usd:.4f}"
            )
        return "\n".join(lines)


def price_text(spec: ModelSpec) -> str:
    """A model's prices for people: ``$0.5/$1 per 1M in/out``, or ``free`` when both are 0."""
    if spec.input_price == 0 and spec.output_price == 0:
        return "free"
    return f"${spec.input_price:g}/${spec.output_price:g} per 1M in/out"


def build_plan(
    prompt_set: str,
    prompts: Sequence[PromptRecord],
    models: Sequence[ModelSpec],
    budgets: Sequence[Budget],
    done: Collection[tuple[str, str, Budget]] = frozenset(),
    *,
    uncapped_max_tokens: int = DEFAULT_UNCAPPED_MAX_TOKENS,
    judges: Sequence[tuple[str, ModelSpec]] = (),
) -> CollectPlan:
    """Plan the cells of ``prompts x models x budgets`` not in ``done``.

    Raises:
        ConfigError: An empty pool or budget list, or a bad ``uncapped_max_tokens``.
    """
    if not models:
        raise ConfigError("the pool is empty; name at least one model")
    if not budgets:
        raise ConfigError("no budgets; pass e.g. --budgets 64,256,uncapped")
    if isinstance(uncapped_max_tokens, bool) or not isinstance(uncapped_max_tokens, int) or uncapped_max_tokens < 1:
        raise ConfigError(f"uncapped_max_tokens must be a positive int, got {uncapped_max_tokens!r}")
    cells = tuple(Cell(p, m.name, b) for p in prompts for m in models for b in budgets if (p.id, m.name, b) not in done)
    return CollectPlan(
        prompt_set=prompt_set,
        cells=cells,
        total_cells=len(prompts) * len(models) * len(budgets),
        models=tuple(models),
        budgets=tuple(budgets),
        uncapped_max_tokens=uncapped_max_tokens,
        judges=tuple(judges),
    )
