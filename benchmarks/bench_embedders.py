"""Embedder speed and routing quality: MiniLM in PyTorch vs ONNX Runtime vs int8 ONNX vs the model2vec static table.

Run by hand (a few minutes on 2 cores once the models are built; the first run
also exports the ONNX models and distils the static one, about 10 minutes)::

    python benchmarks/bench_embedders.py --out benchmarks/results/embedders.json

Speed, all backends in the same process, rounds interleaved across backends:

* ms per prompt for a short prompt (~40 characters) and a long one (650),
  one prompt per call and in batches of 32;
* the end-to-end routing call ``router.route_text(short prompt)`` (embed +
  route) of a router trained on RouterArena sub_10 with that backend's
  embeddings, and the decision alone (``router.route(embedding)``).

Each number is the median over ``--rounds`` rounds of the mean over
``--calls`` calls; embedders run without the in-memory text cache.

Routing quality: the evaluation behind ``r2router eval`` (5-fold CV by query,
k = 80, lambda calibrated for the arena score inside each training part) on
RouterArena sub_10 and AlpacaEval length, for each backend's embeddings (cached
on disk per embedder id, backend included), over ``--seeds`` split seeds:
R2-Router's arena score and AUDC as mean and standard deviation.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from real_data import embed_named, load_named

from r2router_core import R2Router
from r2router_core.embedders import Embedder, load_embedder
from r2router_core.evaluation.cross_validation import complete_queries
from r2router_core.evaluation.runner import evaluate

BACKENDS = {
    "pytorch": "minilm",
    "onnx": "minilm@onnx",
    "onnx-int8": "minilm@onnx-int8",
    "model2vec-256": "minilm@model2vec-256",
}
SHORT = "What is the capital of France, and why?"  # 39 characters
LONG = (
    "I am preparing a lecture for first-year students about the causes of the French Revolution. "
    "Please write a structured outline that covers the fiscal crisis of the monarchy, the role of "
    "Enlightenment ideas, the bad harvests of 1788 and the rising price of bread, the calling of the "
    "Estates-General and the Tennis Court Oath. For each point give two or three key facts with dates, "
    "one primary source the students could read, and a question to discuss in class. Keep the language "
    "simple, avoid jargon, and finish with a short summary that links the causes together and explains "
    "why historians still disagree about which of them mattered most in the end."
)  # 650 characters
DATASETS = {"routerarena": "routerarena_sub10", "alpacaeval-length": "alpacaeval_length"}
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "embedders.json"


def per_call_ms(fn: Callable[[], object], calls: int, per: int = 1) -> float:
    """Mean wall milliseconds per item of ``calls`` calls of ``fn`` (``per`` items each), GC off."""
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return 1000 * (time.perf_counter() - start) / (calls * per)
    finally:
        gc.enable()


def router_for(embedder: Embedder, spec: str, data_dir: str | None) -> R2Router:
    """A router trained on RouterArena sub_10 with ``embedder``'s embeddings, the embedder attached."""
    dataset = load_named("routerarena", data_dir)
    emb, _ = embed_named(dataset, spec)
    data, rows = complete_queries(dataset)
    config = data.config(k=80, embedder=embedder.id, embedding_dim=embedder.dim)
    return R2Router(config, data.training_data(emb[rows]), embedder=embedder)


def speed(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Speed of every backend; rounds interleaved so load on the machine hits all alike."""
    embedders = {name: load_embedder(spec, cache_size=0) for name, spec in BACKENDS.items()}
    routers = {name: router_for(e, BACKENDS[name], args.data_dir) for name, e in embedders.items()}
    short_batch, long_batch = [SHORT] * 32, [LONG] * 32
    vectors = {name: e.embed([SHORT]) for name, e in embedders.items()}
    cases: dict[str, Callable[[str], tuple[Callable[[], object], int, int]]] = {
        "short_ms": lambda n: (lambda: embedders[n].embed([SHORT]), args.calls, 1),
        "long_ms": lambda n: (lambda: embedders[n].embed([LONG]), max(1, args.calls // 2), 1),
        "short_batch32_ms_per_prompt": lambda n: (lambda: embedders[n].embed(short_batch), 3, 32),
        "long_batch32_ms_per_prompt": lambda n: (lambda: embedders[n].embed(long_batch), 2, 32),
        "route_text_short_ms": lambda n: (lambda: routers[n].route_text(SHORT), args.calls, 1),
        "route_only_ms": lambda n: (lambda: routers[n].route(vectors[n]), args.calls, 1),
    }
    samples: dict[str, dict[str, list[float]]] = {n: {c: [] for c in cases} for n in embedders}
    for name in embedders:  # warm up every path once
        for make in cases.values():
            make(name)[0]()
    for _ in range(args.rounds):
        for case, make in cases.items():
            for name in embedders:
                fn, calls, per = make(name)
                samples[name][case].append(per_call_ms(fn, calls, per))
    return {n: {c: statistics.median(v) for c, v in by_case.items()} for n, by_case in samples.items()}


def quality(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """R2-Router's arena score and AUDC per backend and dataset, over the split seeds."""
    out: dict[str, dict[str, Any]] = {}
    for cli_name, stem in DATASETS.items():
        dataset = load_named(cli_name, args.data_dir)
        out[stem] = {}
        for name, spec in BACKENDS.items():
            emb, embedder_id = embed_named(dataset, spec)
            rows = []
            for seed in args.seeds:
                result = evaluate(dataset, emb, seed=seed, k=80, target="arena", embedder=embedder_id)
                rows.append(result.method("R2-Router"))
            arena = [r.arena_score for r in rows]  # already 0-100
            audc = [r.audc for r in rows]
            out[stem][name] = {
                "embedder": embedder_id,
                "arena_mean": statistics.mean(arena),
                "arena_sd": statistics.stdev(arena) if len(arena) > 1 else 0.0,
                "audc_mean": statistics.mean(audc),
                "audc_sd": statistics.stdev(audc) if len(audc) > 1 else 0.0,
                "arena_per_seed": arena,
                "audc_per_seed": audc,
            }
            print(f"{stem:<18} {name:<14} arena {statistics.mean(arena):6.2f}  AUDC {statistics.mean(audc):.4f}")
    return out


def environment() -> dict[str, Any]:
    """Machine and library facts for the report."""
    import onnxruntime
    import torch

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "short_prompt_chars": len(SHORT),
        "long_prompt_chars": len(LONG),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("R2ROUTER_DATA_DIR"), help="the shared data folder")
    p.add_argument("--rounds", type=int, default=5, help="rounds per case (the median is reported)")
    p.add_argument("--calls", type=int, default=20, help="calls per round for one-prompt cases")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="split seeds of the evaluation")
    p.add_argument("--skip-quality", action="store_true", help="speed only")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args()
    report: dict[str, Any] = {"environment": environment(), "backends": BACKENDS}
    report["speed"] = speed(args)
    for name, row in report["speed"].items():
        print(f"{name:<14} " + "  ".join(f"{k} {v:7.3f}" for k, v in row.items()))
    if not args.skip_quality:
        report["quality"] = quality(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
