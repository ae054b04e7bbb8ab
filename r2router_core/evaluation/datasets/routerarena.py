"""RouterArena cached results: real answers of several LLMs to the same queries, scored."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from r2router_core.engine.config import ModelSpec
from r2router_core.errors import DataError
from r2router_core.evaluation.datasets._jsonl import field, read_jsonl
from r2router_core.evaluation.datasets.fetch import routerarena_dir
from r2router_core.evaluation.routing_dataset import RoutingDataset

__all__ = ["load_routerarena"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Outcome:
    question: str
    score: float
    output_tokens: float
    input_tokens: float
    cost: float


def load_routerarena(data_dir: str | Path | None = None) -> RoutingDataset:
    """Load RouterArena cached results as a :class:`RoutingDataset`.

    Every ``*.jsonl`` in the folder is one model (named after the file stem, e.g.
    ``gemini-2.0-flash-001``), priced from the folder's ``cost.json`` (RouterArena's
    table, USD per 1M tokens). The models are joined on ``global_index`` (inner
    join: queries some model lacks are dropped and counted in
    ``meta["dropped"]``). These are uncapped runs, so there is one budget, ``None``.

    Per (query, model): quality = ``evaluation_result.score`` as RouterArena scores
    it: the raw metric value, never clipped (its grader stores it as the entry's
    ``accuracy`` and ``router_evaluation/compute_scores.py`` averages those values
    as they are). RouterArena's METEOR can dip below 0 (its fragmentation penalty
    can exceed 1); such cells are listed in ``meta["scores_outside_0_1"]`` and
    :meth:`RoutingDataset.training_data` clips them to [0, 1] for the router's labels.
    Tokens = ``token_usage.output_tokens``, cost =
    ``evaluation_result.inference_cost`` (the USD actually charged), input tokens =
    ``token_usage.input_tokens``; prompts = ``question``, query ids = ``global_index``.

    Args:
        data_dir: The folder of the files, or a folder holding ``routerarena_sub10/``;
            ``None`` finds or downloads them with :func:`fetch_routerarena`.

    Returns:
        A dataset with quality/tokens/cost of shape (N, M, 1) and input_tokens (N, M).

    Raises:
        DataError: A file is malformed, a model has no price, or no query is shared.
        ResourceUnavailableError: ``data_dir=None``, no local copy and no network.
    """
    directory = routerarena_dir(data_dir)
    files = sorted(directory.glob("*.jsonl"))
    prices = _prices(directory / "cost.json")
    models = tuple(_model_spec(path, prices) for path in files)
    outcomes = [_read_model(path) for path in files]
    ids = [qid for qid in outcomes[0] if all(qid in o for o in outcomes[1:])]
    dropped = {spec.name: len(o) - len(ids) for spec, o in zip(models, outcomes, strict=True)}
    if not ids:
        raise DataError(f"the models in {directory} share no global_index; nothing to join")
    if any(dropped.values()):
        logger.info("RouterArena join on global_index kept %d queries, dropped per model: %s", len(ids), dropped)

    def grid(attr: str) -> np.ndarray:
        return np.array([[getattr(o[qid], attr) for o in outcomes] for qid in ids], dtype=np.float64)

    raw = grid("score")
    outside = [
        {"query_id": ids[i], "model": models[m].name, "score": float(raw[i, m])}
        for i, m in zip(*np.nonzero((raw < 0) | (raw > 1)), strict=True)
    ]
    if outside:
        logger.info("RouterArena: %d scores outside [0, 1], kept as RouterArena scores them: %s", len(outside), outside)
    return RoutingDataset(
        name=directory.name,
        prompts=tuple(outcomes[0][qid].question for qid in ids),
        query_ids=tuple(ids),
        models=models,
        budgets=(None,),
        quality=raw[:, :, None],
        tokens=grid("output_tokens")[:, :, None],
        cost=grid("cost")[:, :, None],
        input_tokens=grid("input_tokens"),
        meta={
            "source": "RouterArena cached results (github RouteWorks/RouterArena, Apache-2.0)",
            "directory": str(directory),
            "files": [p.name for p in files],
            "dropped": dropped,
            "scores_outside_0_1": outside,
            "budgets": "one budget, None: RouterArena runs are uncapped",
            "cost": "evaluation_result.inference_cost, USD charged per query (input + output)",
        },
    )


def _prices(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path} is missing; RouterArena's price table (cost.json) must sit beside the JSONL files")
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc.msg})") from exc
    if not isinstance(table, dict):
        raise DataError(f"{path} must hold a JSON object keyed by model name")
    return table


def _model_spec(path: Path, prices: dict[str, Any]) -> ModelSpec:
    name = path.stem
    entry = prices.get(name)
    if not isinstance(entry, dict):
        raise DataError(
            f"model {name!r} ({path.name}) has no price in cost.json; add an entry "
            '{"input_token_price_per_million": ..., "output_token_price_per_million": ...}'
        )
    where = f"cost.json[{name!r}]"
    return ModelSpec(
        name=name,
        output_price=field(entry, "output_token_price_per_million", where),
        input_price=field(entry, "input_token_price_per_million", where),
    )


def _read_model(path: Path) -> dict[str, _Outcome]:
    """global_index -> outcome for one model's file, in file order."""
    out: dict[str, _Outcome] = {}
    for number, record in read_jsonl(path):
        where = f"{path}:{number}"
        qid = str(field(record, "global_index", where))
        if qid in out:
            raise DataError(f"{where}: global_index {qid!r} appears twice")
        try:
            outcome = _Outcome(
                question=str(field(record, "question", where)),
                score=float(field(record, "evaluation_result.score", where)),
                output_tokens=float(field(record, "token_usage.output_tokens", where)),
                input_tokens=float(field(record, "token_usage.input_tokens", where)),
                cost=float(field(record, "evaluation_result.inference_cost", where)),
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: a score, token count or cost is not a number ({exc})") from exc
        if not all(np.isfinite([outcome.score, outcome.output_tokens, outcome.input_tokens, outcome.cost])):
            raise DataError(f"{where}: score, token counts and cost must be finite numbers")
        out[qid] = outcome
    if not out:
        raise DataError(f"{path} holds no records")
    return out
