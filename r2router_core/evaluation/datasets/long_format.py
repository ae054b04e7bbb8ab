"""Your own routing outcomes in long format, and R2-Bench's ``<budget>_judge.csv`` files.

Long format: one row per (query, model, budget), as CSV (with a header) or JSONL.

======================  ========  =====================================================
column                  required  meaning
======================  ========  =====================================================
``query``               yes       the prompt text
``model``               yes       model name (priced by ``models=`` or the price columns)
``budget``              no        output-token budget: an int, or empty / ``default`` /
                                  ``none`` / ``uncapped`` (JSON ``null``) for uncapped;
                                  no column = every answer uncapped (one budget)
``quality``             yes       score in [0, 1]: 0/1 correctness or a graded score
``output_tokens``       yes/no    output tokens actually spent (>= 0); may be left out
                                  when ``cost`` is given (see below)
``query_id``            no        id of the query (default: the query text)
``cost``                no        USD actually charged for this answer (else computed)
``input_tokens``        no        prompt tokens of this model (adds input cost)
``output_price``        no        USD per 1M output tokens, when ``models=`` is not given
``input_price``         no        USD per 1M input tokens, when ``models=`` is not given
======================  ========  =====================================================

Cost without tokens (RouterBench's layout records only each answer's cost):
the cost is used as the cost, and the output tokens the router learns are
derived from it, ``(cost - input_tokens x input_price / 1e6) / output_price x 1e6``.
Without any prices (no ``models=``, no price columns) each model is priced at
1 USD per 1M "tokens" and its tokens are ``cost x 1e6``: the router then
predicts the cost directly (logged; ``meta["cost_as_tokens"]``).

Cost and tokens together: a cost that differs from ``output_tokens x
output_price (+ input_tokens x input_price)`` by more than
:data:`COST_TOLERANCE` (5 %, relative) is reported (a warning naming the first
such row; ``meta["cost_mismatch"]`` counts them); the recorded cost is kept.

RouterBench's wide layout (:func:`load_routerbench`): one row per prompt with
``prompt`` (``sample_id`` as the query id), and for each model a column
``<model>`` (its score) and ``<model>|total_cost`` (USD); ``<model>|model_response``
and other columns are ignored. :func:`load_long_format` reads such a CSV/JSONL
file when its header has a ``|total_cost`` column.

R2-Bench layout (:func:`load_r2bench_judge_dir`): a directory of
``<budget>_judge.csv`` files (``100_judge.csv``, ``default_judge.csv``, ...) with
columns ``original_prompt``, ``actual_token_count``, ``correctness_score`` and,
if present, ``model``; or a directory of per-model subdirectories of such files
(the subdirectory names the model). :func:`load_long_format` given a directory
reads it this way.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from r2router_core.engine.config import Budget, ModelSpec
from r2router_core.errors import ConfigError, DataError
from r2router_core.evaluation.datasets._jsonl import read_jsonl
from r2router_core.evaluation.routing_dataset import RoutingDataset

__all__ = ["COST_TOLERANCE", "load_long_format", "load_r2bench_judge_dir", "load_routerbench", "parse_budget"]

logger = logging.getLogger(__name__)

COST_TOLERANCE = 0.05
"""Relative gap between a recorded cost and tokens x price above which the row is reported."""

ModelsArg = Mapping[str, ModelSpec] | Sequence[ModelSpec] | ModelSpec | None

_UNCAPPED = {"", "default", "none", "null", "uncapped"}
_REQUIRED = ("query", "model", "quality")
_TOTAL_COST = "|total_cost"
_JUDGE_FILE = re.compile(r"^(?P<budget>[^_]+)_judge\.csv$", re.IGNORECASE)


@dataclass(frozen=True)
class _Row:
    where: str
    query_id: str
    query: str
    model: str
    budget: Budget
    quality: float
    tokens: float | None
    cost: float | None
    input_tokens: float | None
    prices: tuple[float, float | None] | None  # (output, input) from the price columns


def parse_budget(value: Any, where: str = "budget") -> Budget:
    """An output-token budget from a cell: a positive int, or ``None`` for uncapped.

    ``None``, ``""``, ``"default"``, ``"none"``, ``"null"`` and ``"uncapped"`` (any
    case) mean uncapped; ``"400"``, ``400`` and ``400.0`` mean 400.

    Raises:
        DataError: Anything else; the message names ``where``.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in _UNCAPPED):
        return None
    number = _number(value, where, "budget")
    if number != int(number) or number < 1:
        raise DataError(f"{where}: budget must be a positive int or empty/'default' for uncapped, got {value!r}")
    return int(number)


def _number(value: Any, where: str, what: str) -> float:
    if isinstance(value, bool):
        raise DataError(f"{where}: {what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: {what} must be a number, got {value!r}") from exc
    if not math.isfinite(number):
        raise DataError(f"{where}: {what} must be finite, got {value!r}")
    return number


def _optional(record: Mapping[str, Any], key: str, where: str) -> float | None:
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _number(value, where, key)


def _parse(record: Mapping[str, Any], where: str) -> _Row:
    missing = [c for c in _REQUIRED if c not in record]
    cost = _optional(record, "cost", where)
    if "output_tokens" not in record and cost is None:
        missing.append("output_tokens")
    if missing:
        raise DataError(
            f"{where}: missing columns {missing}; long format needs {list(_REQUIRED)} and output_tokens "
            "(or a cost column)"
        )
    query = str(record["query"])
    if not query.strip():
        raise DataError(f"{where}: empty query")
    quality = _number(record["quality"], where, "quality")
    if not 0.0 <= quality <= 1.0:
        raise DataError(f"{where}: quality must lie in [0, 1], got {record['quality']!r}; rescale the scores")
    tokens = _optional(record, "output_tokens", where)
    if tokens is None and cost is None:
        raise DataError(f"{where}: no output_tokens and no cost; give one of them")
    if tokens is not None and tokens < 0:
        raise DataError(f"{where}: output_tokens must be >= 0, got {record['output_tokens']!r}")
    if cost is not None and cost < 0:
        raise DataError(f"{where}: cost must be >= 0 USD, got {record['cost']!r}")
    out_price = _optional(record, "output_price", where)
    qid = record.get("query_id")
    return _Row(
        where=where,
        query_id=str(qid) if qid not in (None, "") else query,
        query=query,
        model=str(record["model"]).strip(),
        budget=parse_budget(record.get("budget"), where),
        quality=quality,
        tokens=tokens,
        cost=cost,
        input_tokens=_optional(record, "input_tokens", where),
        prices=None if out_price is None else (out_price, _optional(record, "input_price", where)),
    )


def _records(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(where, record)`` for each row of a CSV or JSONL file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for number, record in read_jsonl(path):
            yield f"{path}:{number}", record
    elif suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            for record in reader:
                yield f"{path}:{reader.line_num}", record
    else:
        raise DataError(f"{path}: long format must be a .csv or .jsonl file (or an R2-Bench judge directory)")


def load_long_format(
    path: str | Path,
    *,
    models: ModelsArg = None,
    budgets: Sequence[Budget] | None = None,
    name: str | None = None,
) -> RoutingDataset:
    """Load routing outcomes in long format (see the module docstring for the columns).

    Args:
        path: A ``.csv``/``.jsonl`` file, or a directory in R2-Bench's layout
            (read by :func:`load_r2bench_judge_dir`).
        models: The pool with prices: a mapping name -> :class:`ModelSpec`, a
            sequence of specs, or one spec; it fixes the model order and rows of
            other models are refused. ``None``: prices come from the
            ``output_price``/``input_price`` columns, models in order of appearance.
        budgets: The allowed budgets in axis order; rows with another budget are
            refused. ``None``: every budget in the data, ints ascending, then ``None``.
        name: Dataset name; default the file or directory name.

    Returns:
        A :class:`RoutingDataset` (quality/tokens/cost of shape (N, M, B), NaN for
        arms without a row; input_tokens (N, M) if the column is given).

    Raises:
        DataError: Naming the file and line: a missing column, a quality outside
            [0, 1], a bad budget or count, a duplicate (query, model, budget), an
            unknown model or budget, or missing prices.
    """
    path = Path(path)
    if path.is_dir():
        return load_r2bench_judge_dir(path, models=models, budgets=budgets, name=name)
    if not path.is_file():
        raise DataError(f"no long-format file at {path}")
    records = list(_records(path))
    if records and any(key.endswith(_TOTAL_COST) for key in records[0][1]):
        return _routerbench(records, models, name or path.stem, f"RouterBench file {path}")
    rows = [_parse(record, where) for where, record in records]
    return _build(rows, models, budgets, name or path.stem, f"long format file {path}")


def load_routerbench(path: str | Path, *, models: ModelsArg = None, name: str | None = None) -> RoutingDataset:
    """Load RouterBench's wide layout, saved as CSV or JSONL (see the module docstring).

    RouterBench ships a pandas pickle; unpickling runs code, so convert it once where
    you trust it: ``pd.read_pickle("routerbench_0shot.pkl").to_csv("routerbench.csv", index=False)``.
    Every answer is uncapped (one budget); its ``|total_cost`` is used as the cost and
    the tokens are derived from ``models=`` prices, or the cost is used directly without them.

    Args:
        path: The ``.csv`` or ``.jsonl`` file.
        models: Prices (as in :func:`load_long_format`); restricts and orders the pool.
        name: Dataset name; default the file name.
    """
    path = Path(path)
    if path.suffix.lower() in (".pkl", ".pickle"):
        raise DataError(
            f"{path}: a pickle runs code when read; convert it where you trust it: "
            "pd.read_pickle(FILE).to_csv('routerbench.csv', index=False), and load the CSV"
        )
    if not path.is_file():
        raise DataError(f"no RouterBench file at {path}")
    return _routerbench(list(_records(path)), models, name or path.stem, f"RouterBench file {path}")


def _routerbench(
    records: list[tuple[str, Mapping[str, Any]]], models: ModelsArg, name: str, source: str
) -> RoutingDataset:
    where0, first = records[0]
    names = [key[: -len(_TOTAL_COST)] for key in first if key.endswith(_TOTAL_COST)]
    specs = _specs(models)
    if specs is not None:
        names = [m for m in names if m in specs]
    absent = [m for m in names if m not in first]
    if "prompt" not in first or absent:
        raise DataError(
            f"{where0}: RouterBench layout needs a prompt column and a score column per model; missing "
            f"{(['prompt'] if 'prompt' not in first else []) + absent}"
        )
    rows = []
    for where, record in records:
        for model in names:
            cost = record[model + _TOTAL_COST]
            long = {"query": record["prompt"], "model": model, "quality": record[model], "cost": cost}
            if record.get("sample_id") not in (None, ""):
                long["query_id"] = record["sample_id"]
            rows.append(_parse(long, where))
    return _build(rows, models, None, name, source)


def load_r2bench_judge_dir(
    directory: str | Path,
    *,
    models: ModelsArg = None,
    budgets: Sequence[Budget] | None = None,
    name: str | None = None,
) -> RoutingDataset:
    """Load R2-Bench-style ``<budget>_judge.csv`` files.

    Each file holds one budget (from its name: ``400_judge.csv`` -> 400,
    ``default_judge.csv`` -> ``None``) with columns ``original_prompt`` (query),
    ``actual_token_count`` (output tokens) and ``correctness_score`` (quality in
    [0, 1]). The model comes from a ``model`` column if the file has one, else
    from the name of the subdirectory holding the file, else from ``models``
    when it names exactly one model.

    Args:
        directory: The directory of judge files, or of per-model subdirectories of them.
        models: Prices (as in :func:`load_long_format`); one :class:`ModelSpec`
            for a single-model directory.
        budgets: Allowed budgets in axis order (default: all found).
        name: Dataset name; default the directory name.

    Raises:
        DataError: No judge files, a file without the columns, or bad values
            (naming file and line).
    """
    directory = Path(directory)
    files = sorted(directory.glob("*_judge.csv")) + sorted(directory.glob("*/*_judge.csv"))
    if not files:
        raise DataError(f"no <budget>_judge.csv files in {directory} or its subdirectories")
    single = _single_model(models)
    rows: list[_Row] = []
    for file in files:
        match = _JUDGE_FILE.match(file.name)
        if match is None:
            raise DataError(f"{file}: expected a name like 400_judge.csv or default_judge.csv")
        budget = parse_budget(match["budget"], str(file))
        folder_model = file.parent.name if file.parent != directory else single
        for where, record in _records(file):
            model = record.get("model") or folder_model
            if not model:
                raise DataError(f"{where}: no model column; pass models=ModelSpec(...) for a single-model directory")
            missing = [c for c in ("original_prompt", "actual_token_count", "correctness_score") if c not in record]
            if missing:
                raise DataError(f"{where}: missing columns {missing} of R2-Bench's judge files")
            long = {
                "query": record["original_prompt"],
                "model": model,
                "budget": budget,
                "quality": record["correctness_score"],
                "output_tokens": record["actual_token_count"],
                **{k: record[k] for k in ("query_id", "cost", "input_tokens") if k in record},
            }
            rows.append(_parse(long, where))
    return _build(rows, models, budgets, name or directory.name, f"R2-Bench judge files in {directory}")


def _single_model(models: ModelsArg) -> str | None:
    if isinstance(models, ModelSpec):
        return models.name
    specs = _specs(models)
    return next(iter(specs)) if specs is not None and len(specs) == 1 else None


def _specs(models: ModelsArg) -> dict[str, ModelSpec] | None:
    if models is None:
        return None
    if isinstance(models, ModelSpec):
        return {models.name: models}
    if isinstance(models, Mapping):
        return dict(models)
    if isinstance(models, str) or not all(isinstance(m, ModelSpec) for m in models):
        raise ConfigError(f"models must be a mapping name -> ModelSpec or a sequence of ModelSpec, got {models!r}")
    return {m.name: m for m in models}


def _pool(rows: list[_Row], models: ModelsArg) -> tuple[ModelSpec, ...]:
    specs = _specs(models)
    if specs is not None:
        for row in rows:
            if row.model not in specs:
                raise DataError(f"{row.where}: unknown model {row.model!r}; the pool is {list(specs)}")
        return tuple(specs.values())
    prices: dict[str, tuple[float, float | None]] = {}
    if all(row.prices is None and row.cost is not None and row.tokens is None for row in rows):
        logger.info("no prices: each model is priced at 1 USD per 1M tokens and its cost is used as its tokens x 1e-6")
        return tuple(ModelSpec(m, output_price=1.0) for m in dict.fromkeys(row.model for row in rows))
    for row in rows:
        if row.prices is None:
            raise DataError(f"{row.where}: no output_price for {row.model!r}; add the column or pass models=...")
        if prices.setdefault(row.model, row.prices) != row.prices:
            raise DataError(f"{row.where}: prices of {row.model!r} differ from an earlier row's {prices[row.model]}")
    return tuple(ModelSpec(m, output_price=out, input_price=inp) for m, (out, inp) in prices.items())  # None: not given


def _axis(rows: list[_Row], budgets: Sequence[Budget] | None) -> tuple[Budget, ...]:
    if budgets is None:
        found = {row.budget for row in rows}
        return (*sorted(b for b in found if b is not None), *((None,) if None in found else ()))
    allowed = tuple(parse_budget(b, "budgets=") for b in budgets)
    for row in rows:
        if row.budget not in allowed:
            raise DataError(f"{row.where}: unknown budget {row.budget!r}; allowed budgets are {list(allowed)}")
    return allowed


def _build(
    rows: list[_Row], models: ModelsArg, budgets: Sequence[Budget] | None, name: str, source: str
) -> RoutingDataset:
    if not rows:
        raise DataError(f"{source} holds no rows")
    pool, axis = _pool(rows, models), _axis(rows, budgets)
    texts: dict[str, str] = {}
    for row in rows:
        if texts.setdefault(row.query_id, row.query) != row.query:
            raise DataError(f"{row.where}: query_id {row.query_id!r} has two different query texts")
    qi = {qid: i for i, qid in enumerate(texts)}
    mi = {spec.name: j for j, spec in enumerate(pool)}
    shape = (len(texts), len(pool), len(axis))
    quality, tokens, cost = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    inputs = np.full(shape[:2], np.nan)
    first: dict[tuple[int, int, int], str] = {}
    for row in rows:
        cell = (qi[row.query_id], mi[row.model], axis.index(row.budget))
        if cell in first:
            raise DataError(
                f"{row.where}: duplicate row for ({row.query_id!r}, {row.model}, {row.budget}); first at {first[cell]}"
            )
        first[cell] = row.where
        quality[cell], tokens[cell] = row.quality, _tokens(row, pool[cell[1]])
        cost[cell] = np.nan if row.cost is None else row.cost
        if row.input_tokens is not None:
            inputs[cell[:2]] = row.input_tokens
    has_cost = [row.cost is not None for row in rows]
    if any(has_cost) and not all(has_cost):
        raise DataError(f"{rows[has_cost.index(False)].where}: no cost, but other rows have one; give all or none")
    meta: dict[str, Any] = {"source": source, "rows": len(rows), "missing_cells": int(np.isnan(quality).sum())}
    if any(row.tokens is None for row in rows):
        meta["tokens_from_cost"] = True
        if models is None and all(row.prices is None for row in rows):  # unit prices: tokens are cost x 1e6
            meta["cost_as_tokens"] = True
    else:
        meta["cost_mismatch"] = _cost_mismatches(rows, pool, mi)
    return RoutingDataset(
        name=name,
        prompts=tuple(texts.values()),
        query_ids=tuple(texts),
        models=pool,
        budgets=axis,
        quality=quality,
        tokens=tokens,
        cost=cost if all(has_cost) else None,
        input_tokens=None if np.isnan(inputs).all() else np.nan_to_num(inputs, nan=0.0),
        meta=meta,
    )


def _tokens(row: _Row, spec: ModelSpec) -> float:
    """The row's output tokens, or, without them, its cost turned into tokens by the model's prices."""
    if row.tokens is not None:
        return row.tokens
    assert row.cost is not None  # _parse refuses a row with neither
    if spec.output_price <= 0:
        raise DataError(f"{row.where}: no output_tokens and {spec.name!r} has output_price 0: cannot derive tokens")
    output_cost = row.cost - (row.input_tokens or 0.0) * spec.input_price / 1e6
    return max(output_cost, 0.0) / spec.output_price * 1e6


def _cost_mismatches(rows: list[_Row], pool: tuple[ModelSpec, ...], mi: dict[str, int]) -> int:
    """Rows whose recorded cost is more than COST_TOLERANCE away from tokens x price; warns about the first."""
    bad = []
    for row in rows:
        if row.cost is None or row.tokens is None:
            continue
        spec = pool[mi[row.model]]
        expected = (row.tokens * spec.output_price + (row.input_tokens or 0.0) * spec.input_price) / 1e6
        if abs(row.cost - expected) > COST_TOLERANCE * max(abs(expected), abs(row.cost)) + 1e-12:
            bad.append((row, expected))
    if bad:
        row, expected = bad[0]
        logger.warning(
            "%d of %d costs differ from output_tokens x price by more than %.0f%% (first: %s, cost %.6g USD vs "
            "%.6g from tokens); the recorded costs are used: check the prices or the cost column",
            len(bad),
            len(rows),
            100 * COST_TOLERANCE,
            row.where,
            row.cost,
            expected,
        )
    return len(bad)
