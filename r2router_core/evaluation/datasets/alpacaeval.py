"""AlpacaEval 2 length variants: each (model, length instruction) is a (model, budget) arm."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from r2router_core.engine.config import Budget, ModelSpec
from r2router_core.errors import ConfigError, DataError
from r2router_core.evaluation.datasets._jsonl import field, read_jsonl
from r2router_core.evaluation.datasets.fetch import alpacaeval_dir
from r2router_core.evaluation.datasets.tokens import count_tokens
from r2router_core.evaluation.routing_dataset import RoutingDataset

__all__ = ["ALPACAEVAL_MODELS", "LENGTH_MODES", "load_alpacaeval_length"]

logger = logging.getLogger(__name__)

LENGTH_MODES = ("concise", "default", "verbose")
"""AlpacaEval's length instructions, shortest first; ``default`` means no instruction."""

ALPACAEVAL_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("gpt-3.5-turbo-1106", output_price=2.0, input_price=1.0),
    ModelSpec("claude-2.1", output_price=24.0, input_price=8.0),
    ModelSpec("alpaca-7b", output_price=0.2, input_price=0.2),
)
"""The pool with list prices in USD per 1M tokens (gpt-3.5-turbo-1106 1/2 in/out, claude-2.1
8/24). alpaca-7b has no list price: 0.2/0.2 is a stated self-hosting price, about what
hosting APIs charge for 7B models."""

_BUDGET_STEP = 50


@dataclass(frozen=True)
class _Row:
    instruction: str
    model: str
    mode: str
    output: str
    quality: float


def load_alpacaeval_length(
    data_dir: str | Path | None = None,
    *,
    tokenizer: str = "minilm-wordpiece",
    models: Mapping[str, ModelSpec] | Sequence[ModelSpec] | None = None,
    budgets: Mapping[str, Budget] | None = None,
) -> RoutingDataset:
    """Load the AlpacaEval length outcomes as a :class:`RoutingDataset`.

    ``outcomes.jsonl`` holds one line per (instruction, model, length mode) with
    the answer text and its judged ``quality`` (AlpacaEval's weighted GPT-4-turbo
    preference over a GPT-4-turbo reference, minus 1; in [0, 1]). Each (model,
    length mode) becomes a (model, budget) arm:

    * ``default`` (no length instruction) -> budget ``None`` (uncapped);
    * ``concise`` / ``verbose`` -> the smallest multiple of 50 tokens that is >= every
      answer of that mode in the data (all models), and, for ``verbose``, above
      the ``concise`` budget. Sending that ``max_tokens``
      with the mode's instruction truncates none of the recorded answers, so the
      arm's data is what such a call produced. The values are in
      ``meta["length_mode_budgets"]`` (and ``meta["budget_modes"]`` maps back).

    Output tokens are counted from the answer text with ``tokenizer`` (see
    :mod:`~r2router_core.evaluation.datasets.tokens`; recorded in
    ``meta["tokenizer"]``); input tokens from the instruction, the same way (the
    few words of the length instruction itself are not counted). An arm with no
    answer for a query (claude-2.1 has no ``verbose`` run) is NaN.

    Args:
        data_dir: The folder of ``outcomes.jsonl``, or a folder holding
            ``alpacaeval_length/``; ``None`` finds or downloads it
            (:func:`fetch_alpacaeval_length`).
        tokenizer: ``"minilm-wordpiece"`` (default) or ``"regex"``.
        models: Prices per model (a mapping name -> spec, or specs); default
            :data:`ALPACAEVAL_MODELS`.
        budgets: Override the length mode -> budget mapping (``default`` must stay
            ``None``); answers longer than their budget are counted in the log.

    Returns:
        A dataset named ``"alpacaeval_length"`` with quality/tokens/cost of shape
        (N, M, B) (B = the modes present, in the order concise, default, verbose)
        and input_tokens of shape (N,).

    Raises:
        DataError: A malformed line, unknown length mode, duplicate arm, quality
            outside [0, 1] or a model without price.
        ResourceUnavailableError: ``data_dir=None``, no local copy and no network.
    """
    path = alpacaeval_dir(data_dir) / "outcomes.jsonl"
    rows = _read(path)
    pool = _pool(rows, models)
    modes = [m for m in LENGTH_MODES if any(r.mode == m for r in rows)]
    instructions = list(dict.fromkeys(r.instruction for r in rows))
    out_tokens = count_tokens([r.output for r in rows], tokenizer=tokenizer)
    mode_budgets = _budgets(rows, out_tokens, modes, budgets)
    qi = {text: i for i, text in enumerate(instructions)}
    mi = {spec.name: j for j, spec in enumerate(pool)}
    shape = (len(instructions), len(pool), len(modes))
    quality, tokens = np.full(shape, np.nan), np.full(shape, np.nan)
    for row, n_tokens in zip(rows, out_tokens, strict=True):
        cell = (qi[row.instruction], mi[row.model], modes.index(row.mode))
        quality[cell], tokens[cell] = row.quality, n_tokens
    return RoutingDataset(
        name="alpacaeval_length",
        prompts=tuple(instructions),
        query_ids=tuple(f"alpaca_eval_{i:03d}" for i in range(len(instructions))),
        models=pool,
        budgets=tuple(mode_budgets[m] for m in modes),
        quality=quality,
        tokens=tokens,
        input_tokens=np.asarray(count_tokens(instructions, tokenizer=tokenizer), dtype=np.float64),
        meta={
            "source": "AlpacaEval 2 length-controlled outputs (github tatsu-lab/alpaca_eval, Apache-2.0)",
            "path": str(path),
            "tokenizer": tokenizer,
            "length_modes": tuple(modes),
            "length_mode_budgets": dict(mode_budgets),
            "budget_modes": {mode_budgets[m]: m for m in modes},
            "budget_rule": "default -> None; concise, verbose -> smallest multiple of 50 >= every answer of the mode"
            " (verbose above concise)",
            "quality": "AlpacaEval weighted GPT-4-turbo preference - 1 (judge-based, vs a GPT-4-turbo reference)",
            "prices": "USD per 1M tokens; gpt-3.5-turbo-1106 and claude-2.1 list prices, alpaca-7b self-hosted 0.2/0.2",
            "missing_cells": int(np.isnan(quality).sum()),
        },
    )


def _read(path: Path) -> list[_Row]:
    rows: list[_Row] = []
    seen: set[tuple[str, str, str]] = set()
    for number, record in read_jsonl(path):
        where = f"{path}:{number}"
        row = _Row(
            instruction=str(field(record, "instruction", where)),
            model=str(field(record, "model", where)),
            mode=str(field(record, "length_mode", where)),
            output=str(field(record, "output", where)),
            quality=_quality(field(record, "quality", where), where),
        )
        if row.mode not in LENGTH_MODES:
            raise DataError(f"{where}: unknown length_mode {row.mode!r}; expected one of {list(LENGTH_MODES)}")
        key = (row.instruction, row.model, row.mode)
        if key in seen:
            raise DataError(f"{where}: a second answer of {row.model} ({row.mode}) to the same instruction")
        seen.add(key)
        rows.append(row)
    if not rows:
        raise DataError(f"{path} holds no outcomes")
    return rows


def _quality(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise DataError(f"{where}: quality must be a number in [0, 1], got {value!r}")
    return float(value)


def _pool(rows: list[_Row], models: Mapping[str, ModelSpec] | Sequence[ModelSpec] | None) -> tuple[ModelSpec, ...]:
    """The specs of the models in the data: known ones in the default order, then the rest."""
    if models is None:
        specs = {s.name: s for s in ALPACAEVAL_MODELS}
    elif isinstance(models, Mapping):
        specs = dict(models)
    else:
        specs = {s.name: s for s in models}
    present = list(dict.fromkeys(r.model for r in rows))
    unpriced = [m for m in present if m not in specs]
    if unpriced:
        raise DataError(f"no price for models {unpriced}; pass models={{name: ModelSpec(...)}} (known: {list(specs)})")
    return tuple(specs[name] for name in sorted(present, key=lambda n: list(specs).index(n)))


def _budgets(
    rows: list[_Row], out_tokens: list[int], modes: list[str], override: Mapping[str, Budget] | None
) -> dict[str, Budget]:
    """Length mode -> budget: the documented rule, or the caller's mapping (checked)."""
    longest = {m: max(n for r, n in zip(rows, out_tokens, strict=True) if r.mode == m) for m in modes}
    if override is None:
        out: dict[str, Budget] = {"default": None}
        floor = 0  # verbose must stay above concise, even when their longest answers are close
        for m in (m for m in modes if m != "default"):
            budget = max(floor + _BUDGET_STEP, math.ceil(longest[m] / _BUDGET_STEP) * _BUDGET_STEP)
            out[m], floor = budget, budget
    else:
        missing = [m for m in modes if m not in override]
        if missing or override.get("default", None) is not None:
            raise ConfigError(
                f"budgets must map every mode {modes} to a budget, with 'default' -> None; got {override}"
            )
        out = {m: override[m] for m in modes}
        for m in modes:
            cap = out[m]
            over = sum(1 for r, n in zip(rows, out_tokens, strict=True) if r.mode == m and cap is not None and n > cap)
            if over:
                logger.warning("%d %s answers are longer than their budget %s", over, m, cap)
    chosen = [out[m] for m in modes]
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"length modes must map to distinct budgets, got {out}")
    return {m: out[m] for m in modes}
