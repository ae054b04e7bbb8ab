"""RouterArena prediction files: RouterArena's keys, filled from cached outcomes, scored unchanged."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from r2router_core import ModelSpec
from r2router_core.errors import DataError
from r2router_core.evaluation import RoutingDataset
from r2router_core.evaluation.datasets import load_routerarena
from r2router_core.evaluation.metrics import accuracy, arena_score, cost_per_1k
from r2router_core.interop.routerarena import (
    ENTRY_KEYS,
    load_cached_results,
    routerarena_config,
    routerarena_pool,
    routerarena_predictions,
    write_routerarena_predictions,
    write_routerarena_submission,
)

MODELS = ("gemini-2.0-flash-001", "claude-3-haiku-20240307")


def compute_scores(entries: list[dict[str, Any]]) -> dict[str, float]:
    """What RouterArena's router_evaluation/compute_scores.py computes from a prediction file.

    Its rule, re-implemented from its source: accuracy = plain mean of the entries' non-null ``accuracy`` values
    as stored (no clipping, so a negative METEOR pulls the mean down); cost = sum of the positive ``cost`` values
    divided by the number of entries, x 1000; then the arena score (beta 0.1, c_max 200, c_min 0.0044).
    """
    accs = [e["accuracy"] for e in entries if e.get("accuracy") is not None]
    costs = [e["cost"] for e in entries if e.get("cost") is not None and e["cost"] > 0]
    per_1k = sum(costs) / len(entries) * 1000
    c = (math.log2(200) - math.log2(per_1k)) / (math.log2(200) - math.log2(0.0044))
    acc = sum(accs) / len(accs)
    return {"accuracy": acc, "avg_cost_per_1000": per_1k, "arena_score": 1.1 * acc * c / (0.1 * acc + c)}


def record(model: str, gi: str, rng: np.random.Generator) -> dict[str, Any]:
    out_tokens = int(rng.integers(10, 300))
    return {
        "global_index": gi,
        "question": f"question {gi}",
        "llm_selected": model,
        "generated_answer": f"answer of {model} to {gi}",
        "token_usage": {"input_tokens": 50, "output_tokens": out_tokens, "total_tokens": 50 + out_tokens},
        "success": True,
        "error": None,
        "evaluation_result": {"score": float(rng.integers(0, 2)), "inference_cost": out_tokens * 1e-6},
    }


@pytest.fixture
def cached(tmp_path: Path) -> tuple[Path, RoutingDataset]:
    rng = np.random.default_rng(0)
    ids = [f"AIME_{i}" for i in range(6)] + ["MMLU: pro_3"]
    records = {m: [record(m, gi, rng) for gi in ids] for m in MODELS}
    for m, recs in records.items():
        (tmp_path / f"{m}.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    quality = np.array([[[r["evaluation_result"]["score"]] for r in records[m]] for m in MODELS]).transpose(1, 0, 2)
    cost = np.array([[[r["evaluation_result"]["inference_cost"]] for r in records[m]] for m in MODELS])
    tokens = np.array([[[r["token_usage"]["output_tokens"]] for r in records[m]] for m in MODELS], dtype=float)
    dataset = RoutingDataset(
        name="routerarena-toy",
        prompts=tuple(f"question {gi}" for gi in ids),
        query_ids=tuple(ids),
        models=(
            ModelSpec("gemini", 0.4, 0.1, full_name=MODELS[0]),
            ModelSpec("haiku", 1.25, 0.25, full_name=MODELS[1]),
        ),
        budgets=(None,),
        quality=quality,
        tokens=tokens.transpose(1, 0, 2),
        cost=cost.transpose(1, 0, 2),
    )
    return tmp_path, dataset


def test_entries_have_routerarenas_keys_and_cached_values(cached: tuple[Path, RoutingDataset]) -> None:
    directory, dataset = cached
    arms = np.array([0, 1, 1, 0, 0, 1, 0])
    entries = routerarena_predictions(dataset, arms, load_cached_results(directory))
    assert len(entries) == dataset.n_queries
    for entry, arm, gi in zip(entries, arms, dataset.query_ids, strict=True):
        assert (
            tuple(entry)
            == ENTRY_KEYS
            == ("global index", "prompt", "prediction", "generated_result", "cost", "accuracy")
        )
        assert entry["global index"] == gi and entry["prediction"] == MODELS[arm]
        result = entry["generated_result"]
        assert result["success"] is True and result["generated_answer"] == f"answer of {MODELS[arm]} to {gi}"
        assert set(result["token_usage"]) == {"input_tokens", "output_tokens", "total_tokens"}
        assert entry["cost"] == pytest.approx(dataset.cost[dataset.query_ids.index(gi), arm, 0])


def test_compute_scores_scores_the_file_like_our_metrics(cached: tuple[Path, RoutingDataset], tmp_path: Path) -> None:
    directory, dataset = cached
    arms = np.array([1, 1, 0, 0, 1, 0, 1])
    path = write_routerarena_predictions(
        tmp_path / "out" / "r2.json", routerarena_predictions(dataset, arms, load_cached_results(directory))
    )
    scores = compute_scores(json.loads(path.read_text(encoding="utf-8")))
    rows = np.arange(dataset.n_queries)
    acc = accuracy(dataset.quality[rows, arms, 0])
    c1k = cost_per_1k(dataset.cost[rows, arms, 0])
    assert scores["accuracy"] == pytest.approx(acc)
    assert scores["avg_cost_per_1000"] == pytest.approx(c1k)
    assert 100 * scores["arena_score"] == pytest.approx(arena_score(acc, c1k))  # ours on the leaderboard scale


def test_missing_cached_results_are_named(cached: tuple[Path, RoutingDataset], tmp_path: Path) -> None:
    directory, dataset = cached
    results = load_cached_results(directory)
    del results[MODELS[1]]["AIME_2"]
    with pytest.raises(DataError, match="AIME_2"):
        routerarena_predictions(dataset, np.ones(dataset.n_queries, dtype=int), results)
    with pytest.raises(DataError, match=r"\*\.jsonl"):
        load_cached_results(tmp_path / "empty")


def routerarena_validate(root: Path, name: str) -> list[str]:
    """The checks RouterArena's loaders make on a submission, re-implemented from its source.

    ``router_inference/router/base_router.py`` loads ``router_inference/config/<name>.json`` and requires
    ``pipeline_params`` holding ``models``; ``check_config_prediction_files.py <name> <split>`` loads
    ``router_inference/predictions/<name>.json`` and requires each entry's ``global index`` (or
    ``global_index``), ``prompt`` and a ``prediction`` among ``pipeline_params.models``.
    """
    config = json.loads((root / "router_inference" / "config" / f"{name}.json").read_text(encoding="utf-8"))
    entries = json.loads((root / "router_inference" / "predictions" / f"{name}.json").read_text(encoding="utf-8"))
    errors = []
    if "pipeline_params" not in config or "models" not in config["pipeline_params"]:
        return ["config lacks pipeline_params.models"]
    models = set(config["pipeline_params"]["models"])
    for i, entry in enumerate(entries):
        if not (entry.get("global index") or entry.get("global_index")) or not entry.get("prompt"):
            errors.append(f"entry {i}: no global index or prompt")
        if entry.get("prediction") not in models:
            errors.append(f"entry {i}: prediction {entry.get('prediction')!r} not in config models")
    return errors


def test_submission_writes_the_config_routerarenas_loaders_accept(
    cached: tuple[Path, RoutingDataset], tmp_path: Path
) -> None:
    directory, dataset = cached
    results = load_cached_results(directory)
    entries = routerarena_predictions(dataset, np.array([0, 1, 1, 0, 0, 1, 0]), results)
    files = write_routerarena_submission(
        tmp_path / "arena", "my-router", entries, routerarena_pool(dataset, results), description="test"
    )
    assert files.config == tmp_path / "arena" / "router_inference" / "config" / "my-router.json"
    assert files.predictions == tmp_path / "arena" / "router_inference" / "predictions" / "my-router.json"
    config = json.loads(files.config.read_text(encoding="utf-8"))
    assert config == {"pipeline_params": {"router_name": "my-router", "models": list(MODELS), "description": "test"}}
    assert routerarena_validate(tmp_path / "arena", "my-router") == []


def test_submission_refuses_predictions_outside_the_pool_and_path_names(
    cached: tuple[Path, RoutingDataset], tmp_path: Path
) -> None:
    directory, dataset = cached
    results = load_cached_results(directory)
    entries = routerarena_predictions(dataset, np.ones(dataset.n_queries, dtype=int), results)
    with pytest.raises(DataError, match="claude-3-haiku-20240307"):
        write_routerarena_submission(tmp_path, "r", entries, [MODELS[0]])
    assert not (tmp_path / "router_inference").exists()
    for bad in ("", "../up", "a/b", ".hidden"):
        with pytest.raises(DataError, match="plain file name"):
            routerarena_config(bad, MODELS)
    with pytest.raises(DataError, match="at least one model"):
        routerarena_config("r", [])


def test_a_negative_meteor_score_is_scored_like_routerarena(tmp_path: Path) -> None:
    """A raw METEOR of -0.033 (RouterArena's fragmentation penalty can exceed 1) stays -0.033 everywhere."""
    rng = np.random.default_rng(1)
    ids = ["NarrativeQA_1", "NarrativeQA_2", "AIME_3"]
    for m in MODELS:
        recs = [record(m, gi, rng) for gi in ids]
        if m == MODELS[1]:
            recs[0]["evaluation_result"]["score"] = -0.033
            recs[0]["evaluation_result"]["metric"] = "meteor_score"
        (tmp_path / f"{m}.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    prices = {"input_token_price_per_million": 1.0, "output_token_price_per_million": 1.0}
    (tmp_path / "cost.json").write_text(json.dumps({m: prices for m in MODELS}))
    data = load_routerarena(tmp_path)
    haiku = data.model_names.index(MODELS[1])
    assert data.meta["scores_outside_0_1"] == [{"query_id": "NarrativeQA_1", "model": MODELS[1], "score": -0.033}]
    arms = np.full(data.n_queries, haiku)
    entries = routerarena_predictions(data, arms, load_cached_results(tmp_path))
    assert entries[0]["accuracy"] == -0.033
    ours = accuracy(data.quality[np.arange(data.n_queries), arms, 0])
    assert ours == compute_scores(entries)["accuracy"]  # the same values, summed in the same order
    # the router's training labels stay in [0, 1]: the negative score trains as 0
    labels = data.training_data(rng.normal(size=(data.n_queries, 4)).astype(np.float32)).quality
    assert labels[0, haiku, 0] == 0.0 and data.quality[0, haiku, 0] == -0.033
