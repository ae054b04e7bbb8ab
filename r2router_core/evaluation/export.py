"""RouterArena interop: write a router's choices as a RouterArena prediction file.

RouterArena (github RouteWorks/RouterArena, Apache-2.0) scores a router from a
JSON list with one entry per query. What its scripts read, and so what is
written here, key for key:

* ``llm_evaluation/compute_scores.py`` reads ``accuracy`` and ``cost`` of each
  entry (accuracy: mean of the non-null values; cost: sum of the positive
  values / number of entries x 1000 = USD per 1K queries) and computes the
  arena score from them.
* ``llm_evaluation/run.py`` (the grader) reads ``global index`` (with a space;
  it falls back to ``global_index``), ``prediction`` (the model name, as in
  RouterArena's ``cached_results/<model>.jsonl`` and ``model_cost``) and
  ``generated_result`` with ``success``, ``generated_answer`` and
  ``token_usage`` (``input_tokens``, ``output_tokens``, ``total_tokens``); it
  skips entries whose ``generated_result.success`` is false.
* Its own prediction files (``router_inference/predictions/*.json``) also carry
  ``prompt`` and ``generated_result.error``.

The entries are filled from RouterArena's cached outcomes
(``cached_results/<model>.jsonl``: ``generated_answer``, ``token_usage``,
``success``, ``error``, ``evaluation_result.score`` and
``evaluation_result.inference_cost``), so ``compute_scores.py`` scores the file
unchanged and gives the same accuracy and cost as
:func:`r2router_core.evaluation.metrics.accuracy` / ``cost_per_1k`` on the
same choices.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.errors import DataError
from r2router_core.evaluation.dataset import RoutingDataset

__all__ = ["ENTRY_KEYS", "load_cached_results", "routerarena_predictions", "write_routerarena_predictions"]

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


def _record(results: CachedResults, names: Sequence[str], query_id: str) -> tuple[str, Mapping[str, Any]]:
    for name in names:
        if name in results:
            record = results[name].get(query_id)
            if record is None:
                raise DataError(f"no cached result of {name!r} for global_index {query_id!r}")
            return str(record.get("llm_selected") or name), record
    raise DataError(f"no cached results for model {names[0]!r}; the files hold {sorted(results)}")


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
