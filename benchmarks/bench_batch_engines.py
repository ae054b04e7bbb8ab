"""Batch routing throughput: the local engine vs the Ray engine on this machine.

Run by hand::

    python benchmarks/bench_batch_engines.py --prompts 20000 --out benchmarks/results/batch_engines.json

Both engines route the same Parquet file of synthetic prompts with the same
router (HashEmbedder, 4 models x 3 budgets, exact search over 300 rows; the
router of tests/core/engine/test_batch.py). Ray runs on a local cluster of all the
machine's CPUs: once cold (``ray.init`` and actor start-up included, as
``r2router route-batch --engine ray`` does) and once warm (cluster already up).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from r2router_core.engine.batch import route_file
from tests.core.engine.test_batch import hash_router, prompts, write_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "batch_engines.json")
    args = parser.parse_args()
    import ray

    from r2router_integrations.ray import route_file as route_file_ray

    result: dict[str, object] = {"prompts": args.prompts, "cpus": os.cpu_count(), "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        router = hash_router()
        ckpt = router.save(Path(tmp) / "router")
        src = write_input(Path(tmp) / "in.parquet", prompts(args.prompts, seed=1))
        t = time.perf_counter()
        route_file(router, src, Path(tmp) / "local.parquet", batch_size=args.batch_size)
        result["local_s"] = time.perf_counter() - t
        t = time.perf_counter()
        route_file_ray(src, Path(tmp) / "ray.parquet", ckpt, batch_size=args.batch_size)
        result["ray_cold_s"] = time.perf_counter() - t
        ray.init(include_dashboard=False, log_to_driver=False)
        try:
            route_file_ray(src, Path(tmp) / "ray.parquet", ckpt, batch_size=args.batch_size)  # actors warm up
            t = time.perf_counter()
            route_file_ray(src, Path(tmp) / "ray.parquet", ckpt, batch_size=args.batch_size)
            result["ray_warm_s"] = time.perf_counter() - t
        finally:
            ray.shutdown()
        local, remote = pq.read_table(Path(tmp) / "local.parquet"), pq.read_table(Path(tmp) / "ray.parquet")
        result["same_decisions"] = local.column("model").to_pylist() == remote.column("model").to_pylist() and (
            local.column("budget").to_pylist() == remote.column("budget").to_pylist()
        )
    for key in ("local", "ray_cold", "ray_warm"):
        result[f"{key}_prompts_per_s"] = args.prompts / float(result[f"{key}_s"])  # type: ignore[arg-type]
    result["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
