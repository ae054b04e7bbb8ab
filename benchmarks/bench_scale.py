"""Scale: exact vs approximate (faiss IVF-Flat) neighbour search at N = 10k, 100k, 1M.

Run by hand (the 1M build takes minutes on the 2-core VM; run it once)::

    python benchmarks/bench_scale.py --out benchmarks/results/scale.json
    python benchmarks/bench_scale.py --sizes 2000 --queries 50 --out /tmp/scale.json   # a quick check

Setting: D = 384, 6 models x 4 budgets (the card's pool), seeded synthetic
embeddings with cluster structure (N / 500 clusters, each a 16-dimensional
subspace around its centre, plus isotropic noise) and labels that depend on the
cluster (each arm has a per-cluster success rate) plus noise. Queries are drawn
from the same mixture.

Measured per N, in the same process: build time of each router (the exact one
normalises a copy; the ann one trains k-means and fills the lists), the index
size, one-query latency (median of ``route()`` calls), batch latency
(``route_batch`` of the query set), the share of decisions (model, budget)
equal to exact search, and, for the largest N, the time and RSS growth of
opening a saved checkpoint's embeddings and index (memory-mapped).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_routing import CARD_BUDGETS, CARD_MODELS  # the card's pool, defined once (run as a script: a sibling)
from numpy.typing import NDArray

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.index import FaissIVFIndex, fingerprint_file

DIM = 384
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "scale.json"


def mixture(
    n_train: int, n_query: int, seed: int
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[Any], NDArray[Any]]:
    """Seeded clustered embeddings (train, queries) and the cluster of each train row and query."""
    rng = np.random.default_rng(seed)
    n_clusters = max(n_train // 500, 10)
    centres = rng.standard_normal((n_clusters, DIM)).astype(np.float32)
    bases = (0.35 * rng.standard_normal((n_clusters, 16, DIM))).astype(np.float32)

    def draw(m: int) -> tuple[NDArray[np.float32], NDArray[Any]]:
        out = np.empty((m, DIM), dtype=np.float32)
        which = rng.integers(0, n_clusters, m)
        for s in range(0, m, 65_536):
            c = which[s : s + 65_536]
            z = rng.standard_normal((c.size, 16)).astype(np.float32)
            x = centres[c] + np.einsum("mj,mjd->md", z, bases[c]) + 0.1 * rng.standard_normal((c.size, DIM))
            out[s : s + c.size] = x
        return out, which

    X, cx = draw(n_train)
    Q, cq = draw(n_query)
    return X, Q, cx, cq


def training_data(X: NDArray[np.float32], clusters: NDArray[Any], seed: int) -> tuple[RouterConfig, TrainingData]:
    """Labels: a per-cluster success rate of each arm, then Bernoulli outcomes; tokens per cluster and model."""
    rng = np.random.default_rng(seed + 1)
    m, b, n_clusters = len(CARD_MODELS), len(CARD_BUDGETS), int(clusters.max()) + 1
    rate = rng.uniform(0.1, 0.9, size=(n_clusters, m, b))
    rate.sort(axis=2)  # larger budgets help
    quality = (rng.uniform(size=(X.shape[0], m, b)) < rate[clusters]).astype(np.float64)
    length = rng.uniform(50, 900, size=(n_clusters, m))
    tokens = np.clip(length[clusters] * rng.lognormal(0, 0.3, size=(X.shape[0], m)), 1, None)
    config = RouterConfig(
        models=tuple(ModelSpec(name, output_price=p) for name, p in CARD_MODELS), budgets=CARD_BUDGETS, lambda_=0.99
    )
    return config, TrainingData(X, config.model_names, config.budgets, quality, tokens)


def _median_ms(fn: Any, items: Any) -> float:
    times = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(n: int, n_query: int, n_single: int, seed: int, open_checkpoint: bool) -> dict[str, Any]:
    X, Q, cx, _ = mixture(n, n_query, seed)
    config, data = training_data(X, cx, seed)
    row: dict[str, Any] = {"n": n, "dim": DIM, "queries": n_query}
    t = time.perf_counter()
    exact = R2Router(config.with_options(index="exact"), data)
    row["exact_build_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ann = R2Router(config.with_options(index="ann"), data)
    row["ann_build_s"] = time.perf_counter() - t
    index = ann._predictor.index_
    assert isinstance(index, FaissIVFIndex)
    row["ann_params"] = index.params
    row["exact_index_mb"] = X.nbytes / 2**20
    row["ann_index_mb"] = index.size_bytes / 2**20
    singles = [Q[i : i + 1] for i in range(min(n_single, n_query))]
    exact_singles = singles[: max(20, n_single // 10)] if n >= 1_000_000 else singles
    exact.route(singles[0])
    ann.route(singles[0])
    row["exact_single_ms"] = _median_ms(exact.route, exact_singles)
    row["ann_single_ms"] = _median_ms(ann.route, singles)
    row["single_speedup"] = row["exact_single_ms"] / row["ann_single_ms"]
    t = time.perf_counter()
    a = exact.route_batch(Q)
    row["exact_batch_s"] = time.perf_counter() - t
    t = time.perf_counter()
    b = ann.route_batch(Q)
    row["ann_batch_s"] = time.perf_counter() - t
    row["batch_speedup"] = row["exact_batch_s"] / row["ann_batch_s"]
    row["decision_agreement"] = float(
        np.mean([(x.model, x.token_limit) == (y.model, y.token_limit) for x, y in zip(a, b, strict=True)])
    )
    if open_checkpoint:
        row.update(open_saved(ann, Q[:1]))
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def open_saved(router: R2Router, query: NDArray[np.float32]) -> dict[str, Any]:
    """Save the ann router, then time opening its embeddings (memory map) and index, and the RSS they add."""
    import faiss

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        emb_file = Path(tmp) / "embeddings.npy"
        np.save(emb_file, router.training_data.embeddings)
        router._predictor.index_.save(Path(tmp) / "index", fingerprint_file(emb_file))  # type: ignore[union-attr]
        rss = _rss_mb()
        t = time.perf_counter()
        emb = np.load(emb_file, mmap_mode="r")
        fp = fingerprint_file(emb_file)
        index = faiss.read_index(str(Path(tmp) / "index" / "index.faiss"), faiss.IO_FLAG_MMAP)
        out["open_embeddings_and_index_s"] = time.perf_counter() - t
        out["open_rss_growth_mb"] = _rss_mb() - rss
        out["embeddings_mb"] = emb.nbytes / 2**20
        out["fingerprint"] = fp.split(":")[0]
        index.search(query, 80)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated N")
    parser.add_argument("--queries", type=int, default=1000, help="batch size (and source of single queries)")
    parser.add_argument("--single", type=int, default=200, help="single-query calls timed per N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [measure(n, args.queries, args.single, args.seed, open_checkpoint=n == max(sizes)) for n in sizes]
    result = {
        "setting": {"dim": DIM, "models": len(CARD_MODELS), "budgets": list(CARD_BUDGETS), "k": 80, "seed": args.seed},
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
