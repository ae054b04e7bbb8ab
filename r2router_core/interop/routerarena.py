"""RouterArena interop: write a router's choices as a RouterArena submission.

RouterArena (github RouteWorks/RouterArena, Apache-2.0) scores a router from two
files in its checkout, both named after the router:

* ``router_inference/predictions/<name>.json``: a JSON list with one entry per
  query (:func:`routerarena_predictions`).
* ``router_inference/config/<name>.json``: the router's pool,
  ``{"pipeline_params": {"router_name": <name>, "models": [...]}}``
  (:func:`routerarena_config`). Its validator
  (``router_inference/check_config_prediction_files.py <name> sub_10``), its
  grader (``llm_evaluation/run.py``) and its leaderboard workflow load it and
  reject a prediction whose model is not in ``models``.

:func:`write_routerarena_submission` writes both. What RouterArena's scripts
read from a prediction entry, and so what is written here, key for key:

* ``router_evaluation/compute_scores.py <name>`` reads ``accuracy`` and ``cost``
  of each entry (accuracy: plain mean of the non-null values, each value as the
  metric gave it, never clipped; cost: sum of the positive values / number of
  entries x 1000 = USD per 1K queries) and computes the arena score from them.
* ``llm_evaluation/run.py`` (the grader) reads ``global index`` (with a space;
  it falls back to ``global_index``), ``prediction`` (the model name, as in
  RouterArena's ``cached_results/<model>.jsonl`` and ``model_cost``) and
  ``generated_result`` with ``success``, ``generated_answer`` and
  ``token_usage`` (``input_tokens``, ``output_tokens``, ``total_tokens``); it
  skips entries whose ``generated_result.success`` is false and stores the raw
  metric score as ``accuracy``.
* Its own prediction files also carry ``prompt`` and ``generated_result.error``.

The entries are filled from RouterArena's cached outcomes
(``cached_results/<model>.jsonl``: ``generated_answer``, ``token_usage``,
``success``, ``error``, ``evaluation_result.score`` and
``evaluation_result.inference_cost``), so ``compute_scores.py`` scores the file
unchanged and gives the same accuracy and cost as
:func:`r2router_core.evaluation.metrics.accuracy` / ``cost_per_1k`` on the
same choices. RouterArena's METEOR score can dip below 0 (one sub_10 answer of
claude-3-haiku scores -0.033): it is written, and averaged, as it is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.errors import DataError
from r2router_core.evaluation.routing_dataset import RoutingDataset

__all__ = [
    "ENTRY_KEYS",
    "RouterArenaFiles",
    "load_cached_results",
    "routerarena_config",
    "routerarena_pool",
    "routerarena_predictions",
    "write_routerarena_predictions",
    "write_routerarena_submission",
]

logger = logging.getLogger(__name__)

ENTRY_KEYS = ("global index", "prompt", "prediction", "generated_result", "cost", "accuracy")
"""The keys of one prediction entry, in RouterArena's order."""

CachedResults = Mapping[str, Mapping[str, Mapping[str, Any]]]


def _jsonl_records(path: Path) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{line_no} is not valid JSON ({exc})") from exc
    return records


def load_cached_results(directory: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Read RouterArena cached results: one ``<model>.jsonl`` per model.

    Args:
        directory: The folder of the JSONL files (e.g. ``.../routerarena_sub10``).

    Returns:
        model name -> ``global_index`` -> record. A model is listed under its file
        stem and under the ``llm_selected`` name its records give.
    """
    directory = Path(directory)
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise DataError(f"no RouterArena cached results (*.jsonl) in {directory}")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for path in files:
        records = _jsonl_records(path)
        by_index = {str(r["global_index"]): r for r in records if "global_index" in r}
        if len(by_index) != len(records):
            raise DataError(f"{path}: every record needs a unique 'global_index'")
        names = {path.stem} | {str(r["llm_selected"]) for r in records if r.get("llm_selected")}
        for name in names:
            out[name] = by_index
    return out


def _cached(results: CachedResults, names: Sequence[str]) -> tuple[str, Mapping[str, Mapping[str, Any]]]:
    for name in names:
        if name in results:
            return name, results[name]
    raise DataError(f"no cached results for model {names[0]!r}; the files hold {sorted(results)}")


def _record(results: CachedResults, names: Sequence[str], query_id: str) -> tuple[str, Mapping[str, Any]]:
    name, by_index = _cached(results, names)
    record = by_index.get(query_id)
    if record is None:
        raise DataError(f"no cached result of {name!r} for global_index {query_id!r}")
    return str(record.get("llm_selected") or name), record


def _entry(query_id: str, prompt: str, model: str, record: Mapping[str, Any]) -> dict[str, Any]:
    evaluation = record.get("evaluation_result") or {}
    if "score" not in evaluation or "inference_cost" not in evaluation:
        raise DataError(f"cached result {model}/{query_id} lacks evaluation_result.score or .inference_cost")
    usage = dict(record.get("token_usage") or {})
    if "total_tokens" not in usage and {"input_tokens", "output_tokens"} <= usage.keys():
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
    return {
        "global index": query_id,
        "prompt": prompt,
        "prediction": model,
        "generated_result": {
            "generated_answer": record.get("generated_answer", ""),
            "success": bool(record.get("success", True)),
            "token_usage": usage,
            "error": record.get("error"),
        },
        "cost": float(evaluation["inference_cost"]),
        "accuracy": float(evaluation["score"]),
    }


def routerarena_predictions(
    dataset: RoutingDataset, arms: Sequence[int] | NDArray[np.integer[Any]], results: CachedResults
) -> list[dict[str, Any]]:
    """Prediction entries for a router's choices.

    Args:
        dataset: The RouterArena dataset that was routed (its ``query_ids`` are
            the ``global_index`` values).
        arms: shape (N,), the chosen flat arm per query (the model is
            ``arm // len(dataset.budgets)``; RouterArena has no budget axis).
        results: :func:`load_cached_results` output.

    Returns:
        One entry per query with exactly the keys :data:`ENTRY_KEYS`.
    """
    arms = np.asarray(arms)
    if arms.shape != (dataset.n_queries,):
        raise DataError(f"arms must have shape ({dataset.n_queries},), got {arms.shape}")
    n_b = len(dataset.budgets)
    entries = []
    for query_id, prompt, arm in zip(dataset.query_ids, dataset.prompts, arms.tolist(), strict=True):
        spec = dataset.models[arm // n_b]
        model, record = _record(results, (spec.name, spec.full_name), query_id)
        entries.append(_entry(query_id, prompt, model, record))
    return entries


def write_routerarena_predictions(path: str | Path, entries: Sequence[Mapping[str, Any]]) -> Path:
    """Write the entries as RouterArena's JSON list (UTF-8, indent 2, as its own files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(entries), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %d RouterArena predictions to %s", len(entries), path)
    return path


def routerarena_pool(dataset: RoutingDataset, results: CachedResults) -> list[str]:
    """RouterArena's names of the dataset's models, as the prediction entries name them.

    Args:
        dataset: The RouterArena dataset that was routed.
        results: :func:`load_cached_results` output.

    Returns:
        One name per model of ``dataset.models``, in their order.
    """
    pool = []
    for spec in dataset.models:
        name, by_index = _cached(results, (spec.name, spec.full_name))
        first = next(iter(by_index.values()), {})
        pool.append(str(first.get("llm_selected") or name))
    return pool


def _check_router_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise DataError(
            f"RouterArena router name must be a plain file name (no path separator, no leading '.'), got {name!r}"
        )
    return name


def routerarena_config(name: str, models: Sequence[str], *, description: str | None = None) -> dict[str, Any]:
    """RouterArena's router config: ``{"pipeline_params": {"router_name", "models"[, "description"]}}``.

    Args:
        name: The router name (the file stem of both submission files).
        models: The pool: every model the predictions may name (RouterArena names).
        description: Optional free text shown beside the router.

    Raises:
        DataError: An empty pool or a name that is not a plain file name.
    """
    pool = list(dict.fromkeys(str(m) for m in models))
    if not pool:
        raise DataError("a RouterArena config needs at least one model in its pool")
    params: dict[str, Any] = {"router_name": _check_router_name(name), "models": pool}
    if description is not None:
        params["description"] = description
    return {"pipeline_params": params}


@dataclass(frozen=True)
class RouterArenaFiles:
    """The two files of a RouterArena submission.

    Attributes:
        predictions: ``<root>/router_inference/predictions/<name>.json``.
        config: ``<root>/router_inference/config/<name>.json``.
    """

    predictions: Path
    config: Path


def write_routerarena_submission(
    root: str | Path,
    name: str,
    entries: Sequence[Mapping[str, Any]],
    models: Sequence[str],
    *,
    description: str | None = None,
) -> RouterArenaFiles:
    """Write the prediction file and the router config where RouterArena's scripts look for them.

    Args:
        root: A RouterArena checkout (or any folder to copy into one later).
        name: The router name, e.g. ``"r2router"``; RouterArena's scripts take it
            as their argument (``router_evaluation/compute_scores.py r2router``).
        entries: :func:`routerarena_predictions` output.
        models: The pool (:func:`routerarena_pool`); every entry's ``prediction``
            must be one of them, as RouterArena's validator requires.
        description: Optional free text for the config.

    Returns:
        The paths written.

    Raises:
        DataError: An entry predicts a model outside ``models``, or a bad name.
    """
    config = routerarena_config(name, models, description=description)
    pool = set(config["pipeline_params"]["models"])
    outside = sorted({str(e["prediction"]) for e in entries} - pool)
    if outside:
        raise DataError(f"predictions name models outside the config's pool {sorted(pool)}: {outside}")
    base = Path(root) / "router_inference"
    predictions = write_routerarena_predictions(base / "predictions" / f"{name}.json", entries)
    config_path = base / "config" / f"{name}.json"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote RouterArena config of %s to %s", name, config_path)
    return RouterArenaFiles(predictions=predictions, config=config_path)
