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
equal to exact search, and, for the largest N, opening the saved ann router
(``R2Router.from_pretrained``: memory-mapped embeddings, labels and index): its
time, the private memory (RssAnon) and mapped file pages (RssFile) it adds, and
its one-query latency; then the same for the same checkpoint with its labels
inline in ``labels.json`` (the layout before ``labels.npy``).

The real data sets (``--datasets``, read from ../shared/data or ``--data-dir``):
RouterArena sub_10 and AlpacaEval length at their own size, prompts embedded
with MiniLM through the library's embedding cache; 20 % of the prompts (seeded)
are the queries, the rest the training rows. At their size ``index="auto"``
searches exactly; the ann rows show what forcing ``index="ann"`` would do.
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
from r2router_core.engine.index import FaissIVFIndex, resolve_index_kind

DIM = 384
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "scale.json"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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


def _memory_kb() -> dict[str, int]:
    """Private (RssAnon) and mapped-file (RssFile) resident memory of this process, in kB."""
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k in ("RssAnon", "RssFile")}


def compare(exact: R2Router, ann: R2Router, Q: NDArray[np.float32], n_single: int, exact_single: int) -> dict[str, Any]:
    """One-query and batch latency of both routers on ``Q``, and their agreement."""
    row: dict[str, Any] = {}
    singles = [Q[i : i + 1] for i in range(min(n_single, Q.shape[0]))]
    exact.route(singles[0])
    ann.route(singles[0])
    row["exact_single_ms"] = _median_ms(exact.route, singles[:exact_single])
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
    return row


def build_both(config: RouterConfig, data: TrainingData) -> tuple[R2Router, R2Router, dict[str, Any]]:
    """The exact and the ann router over ``data``, with build times and index sizes."""
    row: dict[str, Any] = {"n": data.n_queries, "dim": data.dim}
    t = time.perf_counter()
    exact = R2Router(config.with_options(index="exact"), data)
    row["exact_build_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ann = R2Router(config.with_options(index="ann"), data)
    row["ann_build_s"] = time.perf_counter() - t
    index = ann._predictor.index_
    assert isinstance(index, FaissIVFIndex)
    row["ann_params"] = index.params
    row["auto_index"] = resolve_index_kind("auto", data.n_queries)
    row["exact_index_mb"] = data.embeddings.nbytes / 2**20
    row["ann_index_mb"] = index.size_bytes / 2**20
    return exact, ann, row


def measure(n: int, n_query: int, n_single: int, seed: int, open_checkpoint: bool) -> dict[str, Any]:
    X, Q, cx, _ = mixture(n, n_query, seed)
    config, data = training_data(X, cx, seed)
    exact, ann, row = build_both(config, data)
    row["queries"] = n_query
    exact_single = max(20, n_single // 10) if n >= 1_000_000 else n_single
    row.update(compare(exact, ann, Q, n_single, exact_single))
    del exact
    if open_checkpoint:
        row.update(open_saved(ann, Q[:n_single]))
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def _write_inline_labels(data: TrainingData, directory: Path) -> None:
    """labels.json with the labels inline (null = missing), as every checkpoint held them before labels.npy."""

    def nested(x: NDArray[Any]) -> Any:
        obj = x.astype(object)
        obj[np.isnan(x)] = None
        return obj.tolist()

    labels = {"models": list(data.models), "budgets": list(data.budgets)}
    labels.update(quality=nested(data.quality), tokens=nested(data.tokens))
    (directory / "labels.json").write_text(json.dumps(labels, separators=(",", ":")), encoding="utf-8")
    (directory / "labels.npy").unlink()


def _open_timed(path: Path, queries: NDArray[np.float32], prefix: str) -> dict[str, Any]:
    """Open a saved router in this process: time, memory added, and its one-query latency."""
    before = _memory_kb()
    t = time.perf_counter()
    router = R2Router.from_pretrained(path)
    out: dict[str, Any] = {f"{prefix}_s": time.perf_counter() - t}
    after = _memory_kb()
    out[f"{prefix}_rss_anon_mb"] = (after["RssAnon"] - before["RssAnon"]) / 1024
    out[f"{prefix}_rss_file_mb"] = (after["RssFile"] - before["RssFile"]) / 1024
    singles = [queries[i : i + 1] for i in range(queries.shape[0])]
    for q in singles:  # one pass to fault in the mapped pages these queries read, then the timed pass
        router.route(q)
    out[f"{prefix}_single_ms"] = _median_ms(router.route, singles)
    return out


def open_saved(router: R2Router, queries: NDArray[np.float32]) -> dict[str, Any]:
    """Save the ann router, open it (memory maps), then open it again with the labels inline in labels.json."""
    out: dict[str, Any] = {"embeddings_mb": router.training_data.embeddings.nbytes / 2**20}
    with tempfile.TemporaryDirectory() as tmp:
        path = router.save(Path(tmp) / "router")
        out.update(_open_timed(path, queries, "open"))
        _write_inline_labels(router.training_data, path / "training_data")
        out.update(_open_timed(path, queries[:20], "open_inline_labels"))
    return out


def real_dataset(name: str, data_dir: Path, embedder_id: str, n_single: int, seed: int) -> dict[str, Any]:
    """Exact vs ann on a real data set at its size: 80 % training rows, 20 % queries (seeded)."""
    from r2router_core.embedders import load_embedder
    from r2router_core.evaluation import datasets

    load = datasets.load_routerarena if name == "routerarena" else datasets.load_alpacaeval_length
    dataset = load(data_dir)
    embedder = load_embedder(embedder_id, cache_size=0)
    t = time.perf_counter()
    emb = np.asarray(datasets.embed_dataset(dataset, embedder), dtype=np.float32)  # cached on disk after a first run
    embed_s = time.perf_counter() - t
    order = np.random.default_rng(seed).permutation(dataset.n_queries)
    n_query = dataset.n_queries // 5
    train, query = np.sort(order[n_query:]), np.sort(order[:n_query])
    sub = dataset.subset(train)
    exact, ann, row = build_both(sub.config(), sub.training_data(emb[train]))
    row.update(dataset=name, queries=int(n_query), embedder=embedder.id, embed_s=embed_s)
    row.update(compare(exact, ann, emb[query], n_single, n_single))
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated N")
    parser.add_argument("--queries", type=int, default=1000, help="batch size (and source of single queries)")
    parser.add_argument("--single", type=int, default=200, help="single-query calls timed per N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", default="routerarena,alpacaeval-length", help="real data sets ('' for none)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="the shared data (default: ../shared/data)")
    parser.add_argument("--embedder", default="minilm", help="embedder of the real data's prompts")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = [measure(n, args.queries, args.single, args.seed, open_checkpoint=n == max(sizes)) for n in sizes]
    names = [d for d in args.datasets.split(",") if d]
    real = [real_dataset(name, args.data_dir, args.embedder, args.single, args.seed) for name in names]
    result = {
        "setting": {"dim": DIM, "models": len(CARD_MODELS), "budgets": list(CARD_BUDGETS), "k": 80, "seed": args.seed},
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
        "rows": rows,
        "datasets": real,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
