"""Local batch routing: files in, one decision per prompt out, equal to routing the texts directly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.engine.batch import OUTPUT_COLUMNS, read_prompts, route_file
from r2router_core.errors import ConfigError, DataError
from r2router_core.testing import HashEmbedder
from r2router_integrations.cli import main

TOPICS = ("math", "proof", "code", "python", "poem", "rhyme", "story", "sum", "loop", "verse")
WORDS = TOPICS + tuple(f"w{i}" for i in range(300))  # many words: duplicate prompts (exact ties) are rare


def prompts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join([*rng.choice(TOPICS, size=2), *rng.choice(WORDS, size=rng.integers(3, 8))]) for _ in range(n)]


def hash_router(n_train: int = 300, seed: int = 0) -> R2Router:
    """Four models x three budgets over HashEmbedder embeddings of random word prompts."""
    embedder = HashEmbedder(dim=32)
    rng = np.random.default_rng(seed)
    X = embedder.embed(prompts(n_train, seed + 1))
    quality = 1 / (1 + np.exp(-(X[:, :12].reshape(n_train, 4, 3) * 3 + rng.normal(0, 0.3, (n_train, 4, 3)))))
    config = RouterConfig(
        models=tuple(ModelSpec(f"m{i}", output_price=p) for i, p in enumerate((0.3, 1.0, 3.0, 10.0))),
        budgets=(100, 400, None),
        lambda_=0.5,
        k=15,
        embedder=embedder.id,
    )
    data = TrainingData(X, config.model_names, config.budgets, quality, rng.uniform(50, 800, (n_train, 4)))
    return R2Router(config, data, embedder=embedder)


def write_input(path: Path, texts: list[str]) -> Path:
    ids = [f"q{i}" for i in range(len(texts))]
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({"id": i, "prompt": t}) + "\n" for i, t in zip(ids, texts, strict=True)))
    elif path.suffix == ".csv":
        pacsv.write_csv(pa.table({"id": ids, "prompt": texts}), path)
    else:
        pq.write_table(pa.table({"id": ids, "prompt": texts}), path)
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_route_file_equals_route_texts(tmp_path: Path, suffix: str) -> None:
    router, texts = hash_router(), prompts(500, seed=7)
    n = route_file(router, write_input(tmp_path / f"in{suffix}", texts), tmp_path / "out.parquet", batch_size=64)
    out = pq.read_table(tmp_path / "out.parquet")
    assert n == 500 and tuple(out.column_names) == OUTPUT_COLUMNS
    expected = router.route_texts(texts)
    assert out.column("id").to_pylist() == [f"q{i}" for i in range(500)]
    assert out.column("model").to_pylist() == [d.model for d in expected]
    assert out.column("budget").to_pylist() == [d.token_limit for d in expected]
    # chunks of 64 vs one batch: BLAS may round a similarity differently, hence a float32 tolerance
    np.testing.assert_allclose(out.column("predicted_cost").to_numpy(), [d.predicted_cost for d in expected], rtol=1e-5)


def test_missing_ids_become_row_numbers_and_bad_inputs_say_why(tmp_path: Path) -> None:
    pq.write_table(pa.table({"text": ["a math proof", "a poem"]}), tmp_path / "in.parquet")
    assert read_prompts(tmp_path / "in.parquet", text_column="text").column("id").to_pylist() == ["0", "1"]
    with pytest.raises(DataError, match="no column 'prompt'"):
        read_prompts(tmp_path / "in.parquet")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        read_prompts(tmp_path / "in.txt")


def test_cli_route_batch_local(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    router, texts = hash_router(), prompts(50, seed=3)
    ckpt = router.save(tmp_path / "router")
    src = write_input(tmp_path / "in.jsonl", texts)
    code = main(["route-batch", str(src), "--out", str(tmp_path / "o.parquet"), "--router", str(ckpt), "--lambda", "0"])
    assert code == 0 and "routed 50 prompts" in capsys.readouterr().out
    out = pq.read_table(tmp_path / "o.parquet")
    assert out.column("model").to_pylist() == [d.model for d in router.route_texts(texts, lambda_=0.0)]
    code = main(
        ["route-batch", str(src), "--out", str(tmp_path / "x.parquet"), "--router", str(ckpt), "--ray-address", "auto"]
    )
    assert code == 1 and "need --engine ray" in capsys.readouterr().err
