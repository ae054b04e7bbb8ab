"""Ray engine: a local 2-CPU Ray cluster routes a few thousand prompts exactly as the local engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from r2router_core.engine.batch import route_file
from r2router_integrations.cli import main
from r2router_integrations.ray import route_dataset
from tests.core.engine.test_batch import hash_router, prompts, write_input

N_PROMPTS = 3000


def test_route_batch_ray_equals_local(tmp_path: Path, cluster: None, capsys: pytest.CaptureFixture[str]) -> None:
    router = hash_router()
    ckpt = router.save(tmp_path / "router")
    src = write_input(tmp_path / "in.parquet", prompts(N_PROMPTS, seed=11))
    route_file(router, src, tmp_path / "local.parquet")
    argv = ["route-batch", str(src), "--out", str(tmp_path / "ray.parquet"), "--router", str(ckpt)]
    assert main([*argv, "--engine", "ray", "--batch-size", "500", "--concurrency", "2"]) == 0
    assert f"routed {N_PROMPTS} prompts" in capsys.readouterr().out
    local, remote = pq.read_table(tmp_path / "local.parquet"), pq.read_table(tmp_path / "ray.parquet")
    assert remote.num_rows == N_PROMPTS
    assert remote.column("id").to_pylist() == local.column("id").to_pylist()
    assert remote.column("model").to_pylist() == local.column("model").to_pylist()
    assert remote.column("budget").to_pylist() == local.column("budget").to_pylist()
    for column in ("predicted_cost", "predicted_quality"):  # batches may split differently: float32 rounding
        np.testing.assert_allclose(remote.column(column).to_numpy(), local.column(column).to_numpy(), rtol=1e-5)


def test_route_dataset_takes_a_ray_dataset(tmp_path: Path, cluster: None) -> None:
    router = hash_router()
    ckpt = router.save(tmp_path / "router")
    texts = prompts(200, seed=5)
    ds = ray.data.from_arrow(pa.table({"id": [str(i) for i in range(200)], "prompt": texts}))
    out = route_dataset(ds, ckpt, lambda_=0.0, concurrency=1).to_pandas().sort_values("id", key=lambda s: s.astype(int))
    assert out["model"].tolist() == [d.model for d in router.route_texts(texts, lambda_=0.0)]
