"""``--engine ray`` for ``r2router eval`` and ``r2router collect export``: the same vectors, so the same results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from r2router_core import ModelSpec, TrainingData
from r2router_core.embedders import load_embedder
from r2router_core.evaluation.datasets import make_synthetic_pool
from r2router_core.store import CallRecord, GradeRecord, OutcomeStore, PromptRecord
from r2router_integrations.cli import main
from r2router_integrations.ray import RayEmbedder

EMBEDDER = "r2router-hash-embedder-32"
N_PROMPTS = 300


@pytest.fixture
def ray_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of texts of every RayEmbedder.embed call: proof the cluster, not the local embedder, embedded."""
    calls: list[int] = []
    real = RayEmbedder.embed

    def counted(self: RayEmbedder, texts: Any) -> Any:
        calls.append(len(texts))
        return real(self, texts)

    monkeypatch.setattr(RayEmbedder, "embed", counted)
    return calls


def test_ray_embedder_gives_the_local_vectors_in_order(cluster: None) -> None:
    texts = [f"prompt {i} about {'math' if i % 3 else 'poems'} number {i * 7}" for i in range(N_PROMPTS)]
    remote = RayEmbedder(EMBEDDER, batch_size=64, concurrency=2)
    local = load_embedder(EMBEDDER)
    assert (remote.id, remote.dim) == (local.id, local.dim)
    np.testing.assert_array_equal(remote.embed(texts), local.embed(texts))


def write_long_format(path: Path, n: int) -> Path:
    data, _ = make_synthetic_pool(n, seed=4)
    lines = ["query,model,budget,quality,output_tokens,output_price"]
    for i, prompt in enumerate(data.prompts):
        for m, spec in enumerate(data.models):
            for b, budget in enumerate(data.budgets):
                cells = [prompt, spec.name, "" if budget is None else budget, data.quality[i, m, b]]
                lines.append(",".join(str(x) for x in [*cells, data.tokens[i, m, b], spec.output_price]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_eval_engine_ray_equals_local(
    tmp_path: Path, cluster: None, ray_calls: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_long_format(tmp_path / "outcomes.csv", N_PROMPTS)
    common = [str(src), "--embedder", EMBEDDER, "--folds", "3", "--k", "10", "-q"]
    for engine in ("local", "ray"):  # each with its own embedding cache: the ray run embeds everything itself
        args = ["--engine", engine, "--cache-dir", str(tmp_path / f"cache-{engine}"), "--out", str(tmp_path / engine)]
        assert main(["eval", *common, *args]) == 0, capsys.readouterr().err
    local, remote = (json.loads((tmp_path / e / "eval_outcomes.json").read_text()) for e in ("local", "ray"))
    assert remote["methods"] == local["methods"]
    assert ray_calls == [N_PROMPTS]  # every prompt in one job on the cluster


def outcome_store(path: Path, n: int) -> str:
    store = OutcomeStore(f"sqlite:///{path}")
    store.set_models([ModelSpec("small", 1.0, 0.5), ModelSpec("big", 10.0, 2.0)])
    store.add_prompts("set1", [PromptRecord(f"p{i}", f"question {i} on topic {i % 7}", str(i)) for i in range(n)])
    rng = np.random.default_rng(0)
    for i in range(n):
        for model in ("small", "big"):
            call = CallRecord("set1", f"p{i}", model, None, "ok", answer="x", output_tokens=int(rng.integers(5, 90)))
            store.record_grade(GradeRecord(store.record_call(call), "exact", float(rng.integers(0, 2))))
    store.close()
    return f"sqlite:///{path}"


def test_collect_export_engine_ray_equals_local(tmp_path: Path, cluster: None, ray_calls: list[int]) -> None:
    url = outcome_store(tmp_path / "runs.db", N_PROMPTS)
    for engine in ("local", "ray"):
        args = ["collect", "export", "--store", url, "--out", str(tmp_path / engine), "--embedder", EMBEDDER]
        assert main([*args, "--engine", engine, "--concurrency", "2"] if engine == "ray" else args) == 0
    assert ray_calls == [N_PROMPTS]
    local, remote = (TrainingData.load(tmp_path / e / "training_data") for e in ("local", "ray"))
    assert remote.n_queries == N_PROMPTS and remote.query_ids == local.query_ids
    np.testing.assert_array_equal(remote.embeddings, local.embeddings)
    np.testing.assert_array_equal(remote.label_matrix(), local.label_matrix())
    assert (tmp_path / "ray" / "config.json").read_text() == (tmp_path / "local" / "config.json").read_text()
