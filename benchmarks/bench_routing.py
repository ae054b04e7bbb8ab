"""Routing speed and memory: r2router's one-search kNN vs the model card's per-head scikit-learn way.

Run by hand (a few minutes on 2 cores)::

    python benchmarks/bench_routing.py --out benchmarks/results/routing.json

Setting (the issue's): N = 809 training queries, D = 1024, the card's 6 models
(output prices of the card) x 4 budgets (100, 200, 400, 800), seeded random
float32 embeddings, random 0/1 quality labels and random token counts.

Two ways to route a query, measured in the same process:

* ``r2router``: ``R2Router.route(emb)`` / ``route_batch(embs)``: one cosine
  neighbour search serves all 30 heads.
* ``per-head``: the card's way, one fitted scikit-learn
  ``KNeighborsRegressor(n_neighbors=80, metric="cosine", weights="distance")``
  per head: 24 quality heads (one per model x budget) + 6 token heads (one
  per model) = 30 ``.predict`` calls per query or batch, then the same
  utility and argmax in numpy. The card ships 18 quality + 6 token
  checkpoints (24 files); the time of the first 24 calls is also reported as a
  lower bound for a "24 predict calls" reading of the issue.

Peak memory for the batch is measured in a fresh child process per way
(tracemalloc peak during the call, and the process max RSS from
``resource.getrusage``). The environment (BLAS threads etc.) is left as is and
reported. Timing loops run with the garbage collector disabled, like ``timeit``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData

# The card's pool (method.md section 6): name, output USD per 1M tokens.
CARD_MODELS = (
    ("Qwen3-235B-A22B", 0.463),
    ("Qwen3-Next-80B-A3B", 1.10),
    ("Qwen3-30B-A3B", 0.33),
    ("Qwen3-Coder-Next", 0.30),
    ("Gemini-2.5-Flash", 2.50),
    ("Claude-3-Haiku", 1.25),
)
CARD_BUDGETS = (100, 200, 400, 800)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "routing.json"


# -- setting ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """The synthetic training set and query batch."""

    embeddings: NDArray[np.float32]  # (N, D)
    quality: NDArray[np.float64]  # (N, M, B)
    tokens: NDArray[np.float64]  # (N, M)
    queries: NDArray[np.float32]  # (n_batch, D)
    config: RouterConfig


def make_setting(n_train: int, dim: int, n_batch: int, k: int, seed: int) -> Setting:
    """Seeded random embeddings and labels in the card's shape."""
    rng = np.random.default_rng(seed)
    m, b = len(CARD_MODELS), len(CARD_BUDGETS)
    config = RouterConfig(
        models=tuple(ModelSpec(name, price) for name, price in CARD_MODELS), budgets=CARD_BUDGETS, k=k
    )
    return Setting(
        embeddings=rng.standard_normal((n_train, dim), dtype=np.float32),
        quality=rng.integers(0, 2, size=(n_train, m, b)).astype(np.float64),
        tokens=rng.integers(20, 1200, size=(n_train, m)).astype(np.float64),
        queries=rng.standard_normal((n_batch, dim), dtype=np.float32),
        config=config,
    )


def build_router(s: Setting) -> R2Router:
    """The router under test."""
    names = s.config.model_names
    return R2Router(s.config, TrainingData(s.embeddings, names, CARD_BUDGETS, s.quality, s.tokens))


class PerHeadRouter:
    """The card's way: one scikit-learn regressor per head, then the argmax."""

    def __init__(self, s: Setting) -> None:
        from sklearn.neighbors import KNeighborsRegressor

        def fitted(y: NDArray[np.float64]) -> Any:
            knn = KNeighborsRegressor(n_neighbors=s.config.k, metric="cosine", weights="distance")
            return knn.fit(s.embeddings, y)

        m, b = s.quality.shape[1:]
        # token heads first, so the first 24 calls are the card's 6 token + 18 quality checkpoints
        self.token_heads = [fitted(s.tokens[:, mi]) for mi in range(m)]
        self.quality_heads = [fitted(s.quality[:, mi, bi]) for mi in range(m) for bi in range(b)]
        self.shape = (m, b)
        self.prices = np.array([spec.output_price for spec in s.config.models])
        self.budgets = np.array(CARD_BUDGETS, dtype=np.float64)
        self.lambda_ = s.config.lambda_

    @property
    def n_heads(self) -> int:
        return len(self.token_heads) + len(self.quality_heads)

    def route_batch(self, x: NDArray[np.float32], *, stop_after: int | None = None) -> NDArray[np.intp] | None:
        """Flat (model * B + budget) index of the chosen arm per row; ``stop_after`` calls only times them."""
        heads = self.token_heads + self.quality_heads
        preds = []
        for i, head in enumerate(heads):
            if stop_after is not None and i == stop_after:
                return None
            preds.append(head.predict(x))
        m, b = self.shape
        tokens = np.stack(preds[:m], axis=1)  # (n, M)
        quality = np.stack(preds[m:], axis=1).reshape(-1, m, b)  # (n, M, B)
        cost = np.minimum(tokens[:, :, None], self.budgets) * self.prices[:, None] / 1e6
        util = (1 - self.lambda_) * quality - self.lambda_ * cost
        return np.argmax(util.reshape(len(x), -1), axis=1)

    def predict_raw(self, x: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(quality (n, M, B), tokens (n, M)) from the per-head regressors."""
        m, b = self.shape
        quality = np.stack([h.predict(x) for h in self.quality_heads], axis=1).reshape(-1, m, b)
        tokens = np.stack([h.predict(x) for h in self.token_heads], axis=1)
        return quality, tokens


# -- timing ----------------------------------------------------------------------------
def time_calls(fn: Callable[[int], object], repeats: int, samples: list[float]) -> None:
    """Time ``fn(i)`` one call at a time, appending microseconds to ``samples`` (gc off, like timeit)."""
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for i in range(repeats):
            t0 = time.perf_counter_ns()
            fn(i)
            samples.append((time.perf_counter_ns() - t0) / 1e3)
    finally:
        if gc_was_on:
            gc.enable()


def summarise(samples: list[float]) -> dict[str, float]:
    """Median, p99, mean and min of microsecond samples."""
    samples = sorted(samples)
    return {
        "median_us": statistics.median(samples),
        "p99_us": samples[min(len(samples) - 1, int(0.99 * len(samples)))],
        "mean_us": statistics.fmean(samples),
        "min_us": samples[0],
        "repeats": len(samples),
    }


Case = tuple[Callable[[int], object], int, Callable[[], AbstractContextManager[object]]]


def time_interleaved(cases: dict[str, Case], rounds: int) -> dict[str, dict[str, float]]:
    """Time every case in ``rounds`` interleaved rounds, so load changes hit all cases alike.

    Args:
        cases: name -> (fn(i), total timed calls, context to run them in); each round runs
            ``total // rounds`` calls of each, after a warm-up of the same size.
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn, total, context in cases.values():
        with context():
            time_calls(fn, max(1, total // rounds), [])  # warm-up
    for _ in range(rounds):
        for name, (fn, total, context) in cases.items():
            with context():
                time_calls(fn, max(1, total // rounds), samples[name])
    return {name: summarise(values) for name, values in samples.items()}


def one_blas_thread() -> AbstractContextManager[object]:
    """Limit BLAS to one thread for a block (threadpoolctl, at run time; the environment is untouched)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def time_rounds(cases: dict[str, tuple[Callable[[], object], int]]) -> dict[str, dict[str, float]]:
    """Wall seconds of each ``fn()`` (median, min), runs interleaved across cases.

    Args:
        cases: name -> (fn, timed runs); each case is run once untimed first.
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn, _ in cases.values():
        fn()  # warm-up
    for r in range(max(runs for _, runs in cases.values())):
        for name, (fn, runs) in cases.items():
            if r < runs:
                gc.collect()
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    return {name: {"median_s": statistics.median(v), "min_s": min(v), "repeats": len(v)} for name, v in samples.items()}


def single_query(s: Setting, router: R2Router, per_head: PerHeadRouter, args: argparse.Namespace) -> dict[str, Any]:
    """One-query latency of both ways, and a breakdown of the router's."""
    pool = s.queries[: args.query_pool]
    rows = [q[None, :] for q in pool]
    n = len(pool)
    x_unit = router.training_data.embeddings / np.linalg.norm(router.training_data.embeddings, axis=1, keepdims=True)
    x_unit = np.ascontiguousarray(x_unit, dtype=np.float32)
    as_is = nullcontext
    cases: dict[str, Case] = {
        "router_route": (lambda i: router.route(pool[i % n]), args.repeats, as_is),
        "router_predict": (lambda i: router.predict(rows[i % n]), args.repeats, as_is),
        "matvec_only": (lambda i: x_unit @ pool[i % n], args.repeats, as_is),
        "per_head_route": (lambda i: per_head.route_batch(rows[i % n]), args.sk_repeats, as_is),
        "per_head_first_24_calls": (
            lambda i: per_head.route_batch(rows[i % n], stop_after=24),
            args.sk_repeats,
            as_is,
        ),
        "per_head_one_predict_call": (lambda i: per_head.quality_heads[0].predict(rows[i % n]), args.sk_repeats, as_is),
    }
    if _has_threadpoolctl():  # the same two timings with one BLAS thread, to show what the matvec owes to threads
        cases["router_route_1_blas_thread"] = (lambda i: router.route(pool[i % n]), args.repeats, one_blas_thread)
        cases["matvec_only_1_blas_thread"] = (lambda i: x_unit @ pool[i % n], args.repeats, one_blas_thread)
    out: dict[str, Any] = dict(time_interleaved(cases, args.rounds))
    route_us = out["router_route"]["median_us"]
    out["ratio_median"] = out["per_head_route"]["median_us"] / route_us
    out["ratio_median_vs_24_calls"] = out["per_head_first_24_calls"]["median_us"] / route_us
    out["router_route_minus_matvec_us"] = route_us - out["matvec_only"]["median_us"]
    return out


def _has_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


def batch(s: Setting, router: R2Router, per_head: PerHeadRouter, args: argparse.Namespace) -> dict[str, Any]:
    """Wall time for the whole query batch, both ways."""
    q = s.queries
    cases: dict[str, tuple[Callable[[], object], int]] = {
        "router_route_batch": (lambda: router.route_batch(q), args.batch_repeats),
        "router_predict": (lambda: router.predict(q), args.batch_repeats),
        "per_head_route_batch": (lambda: per_head.route_batch(q), args.sk_batch_repeats),
    }
    out: dict[str, Any] = {"n_queries": len(q), **time_rounds(cases)}
    out["ratio_median"] = out["per_head_route_batch"]["median_s"] / out["router_route_batch"]["median_s"]
    for key in ("router_route_batch", "router_predict", "per_head_route_batch"):
        out[key]["queries_per_s"] = len(q) / out[key]["median_s"]
    return out


def agreement(s: Setting, router: R2Router, per_head: PerHeadRouter, n: int) -> dict[str, Any]:
    """Same numbers and same decisions as the per-head regressors on the first ``n`` queries."""
    q = s.queries[:n]
    pred = router.predict(q)
    quality, tokens = per_head.predict_raw(q)
    chosen = per_head.route_batch(q)
    assert chosen is not None
    b = per_head.shape[1]
    decisions = router.route_batch(q)
    same = sum(
        d.model == s.config.models[c // b].name and d.token_limit == CARD_BUDGETS[c % b]
        for d, c in zip(decisions, chosen.tolist(), strict=True)
    )
    return {
        "n_queries": n,
        "max_abs_diff_quality": float(np.max(np.abs(pred.quality - quality))),
        "max_rel_diff_tokens": float(np.max(np.abs(pred.tokens[:, :, 0] - tokens) / tokens)),
        "same_decisions": same,
    }


# -- memory (fresh child process per way) ----------------------------------------------
def _max_rss_mb() -> dict[str, float]:
    """Max RSS from getrusage, and Linux's VmHWM (the same peak, but reset by exec)."""
    out = {"getrusage_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["vmhwm_mb"] = int(line.split()[1]) / 1024
    return out


def memory_child(way: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one way on the batch once in this (fresh) process and report its memory."""
    s = make_setting(args.n_train, args.dim, args.batch, args.k, args.seed)
    if way == "router":
        router = build_router(s)
        router.route(s.queries[0])  # import and warm everything outside the measurement
        call: Callable[[], object] = lambda: router.route_batch(s.queries)  # noqa: E731
    else:
        per_head = PerHeadRouter(s)
        per_head.route_batch(s.queries[:1])
        call = lambda: per_head.route_batch(s.queries)  # noqa: E731
    gc.collect()
    rss_before = _max_rss_mb()
    tracemalloc.start()
    result = call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return {"tracemalloc_peak_mb": peak / 2**20, "max_rss_before": rss_before, "max_rss_after": _max_rss_mb()}


def memory(args: argparse.Namespace) -> dict[str, Any]:
    """Peak memory of each way for the batch, each in its own child process.

    Run before the parent builds anything: Linux carries the parent's max RSS over
    fork + exec into the child's ``getrusage`` (VmHWM is not carried over).
    """
    out: dict[str, Any] = {}
    for way in ("router", "per_head"):
        cmd = [sys.executable, __file__, "--memory-child", way, *_setting_args(args)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        out[way] = json.loads(done.stdout.strip().splitlines()[-1])
    out["tracemalloc_ratio"] = out["per_head"]["tracemalloc_peak_mb"] / out["router"]["tracemalloc_peak_mb"]
    return out


def _setting_args(args: argparse.Namespace) -> list[str]:
    return [f"--n-train={args.n_train}", f"--dim={args.dim}", f"--batch={args.batch}", f"--k={args.k}",
            f"--seed={args.seed}"]  # fmt: skip


# -- environment and report -------------------------------------------------------------
def environment() -> dict[str, Any]:
    """Machine, library versions, BLAS and its thread count (unchanged by this script)."""
    import sklearn

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    try:
        from threadpoolctl import threadpool_info

        blas = [
            {
                **{
                    key: info.get(key) for key in ("user_api", "internal_api", "version", "num_threads", "architecture")
                },
                "library": Path(info.get("filepath") or "?").name,  # e.g. numpy.libs/libscipy_openblas64_*.so
            }
            for info in threadpool_info()
        ]
    except ImportError:
        blas = [{"note": "threadpoolctl not installed; see numpy.show_config()"}]
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "threadpools": blas,
        "thread_env": {k: v for k, v in os.environ.items() if k.endswith("_NUM_THREADS")},
        "load_average_start": os.getloadavg(),
    }


def markdown(res: dict[str, Any]) -> str:
    """The README tables: the comparison, then the breakdown of one query."""
    one, bat, mem = res["single_query"], res["batch"], res.get("memory")
    n = bat["n_queries"]
    route, per_head = one["router_route"], one["per_head_route"]
    rb, pb = bat["router_route_batch"], bat["per_head_route_batch"]
    rows = [
        ("one query, median", f"{route['median_us']:.0f} µs", f"{per_head['median_us'] / 1e3:.1f} ms",
         f"{one['ratio_median']:.0f}x"),
        ("one query, p99", f"{route['p99_us']:.0f} µs", f"{per_head['p99_us'] / 1e3:.1f} ms",
         f"{per_head['p99_us'] / route['p99_us']:.0f}x"),
        (f"batch of {n:,}, median wall", f"{rb['median_s']:.3f} s", f"{pb['median_s']:.2f} s",
         f"{bat['ratio_median']:.0f}x"),
        (f"batch of {n:,}, throughput", f"{rb['queries_per_s']:,.0f} q/s", f"{pb['queries_per_s']:,.0f} q/s", ""),
    ]  # fmt: skip
    if mem:
        r, p = mem["router"], mem["per_head"]
        rows += [
            (f"batch of {n:,}, tracemalloc peak", f"{r['tracemalloc_peak_mb']:.0f} MB",
             f"{p['tracemalloc_peak_mb']:.0f} MB", f"{mem['tracemalloc_ratio']:.1f}x less"),
            (f"batch of {n:,}, process peak RSS", f"{r['max_rss_after']['getrusage_max_rss_mb']:.0f} MB",
             f"{p['max_rss_after']['getrusage_max_rss_mb']:.0f} MB", ""),
        ]  # fmt: skip
    lines = ["| measurement | r2router | per-head scikit-learn (30 heads) | speed-up |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    breakdown = [
        ("matvec `X_unit @ q` alone (3.3 MB read)", "matvec_only"),
        ("`router.predict(q)`", "router_predict"),
        ("`router.route(q)`", "router_route"),
        ("matvec alone, 1 BLAS thread", "matvec_only_1_blas_thread"),
        ("`router.route(q)`, 1 BLAS thread", "router_route_1_blas_thread"),
        ("per-head: one scikit-learn `.predict` call", "per_head_one_predict_call"),
        ("per-head: first 24 of the 30 calls", "per_head_first_24_calls"),
    ]
    lines += ["", "| one query (same run) | median | p99 |", "|---|---|---|"]
    lines += [
        f"| {label} | {one[key]['median_us']:,.0f} µs | {one[key]['p99_us']:,.0f} µs |"
        for label, key in breakdown
        if key in one
    ]
    agree = res["agreement"]
    lines += [
        "",
        f"`router.predict` alone on the batch: {bat['router_predict']['median_s']:.3f} s. "
        f"Agreement with the per-head way on {agree['n_queries']} queries: max |quality diff| "
        f"{agree['max_abs_diff_quality']:.1e}, max relative token diff {agree['max_rel_diff_tokens']:.1e}, "
        f"same (model, budget) {agree['same_decisions']}/{agree['n_queries']}.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results path (default: %(default)s)")
    p.add_argument("--n-train", type=int, default=809, help="training queries N (default: %(default)s)")
    p.add_argument("--dim", type=int, default=1024, help="embedding dimension D (default: %(default)s)")
    p.add_argument("--k", type=int, default=80, help="neighbours (default: %(default)s)")
    p.add_argument("--batch", type=int, default=10_000, help="queries in the batch (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--repeats", type=int, default=3000, help="timed single-query calls, r2router (default: %(default)s)"
    )
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds of single-query timing")
    p.add_argument("--sk-repeats", type=int, default=40, help="timed single queries, per-head (default: %(default)s)")
    p.add_argument("--query-pool", type=int, default=256, help="distinct queries cycled through (default: %(default)s)")
    p.add_argument("--batch-repeats", type=int, default=3, help="timed batch runs, r2router (default: %(default)s)")
    p.add_argument("--sk-batch-repeats", type=int, default=3, help="timed batch runs, per-head (default: %(default)s)")
    p.add_argument("--agreement", type=int, default=500, help="queries checked against the per-head way")
    p.add_argument("--no-memory", action="store_true", help="skip the child-process memory measurement")
    p.add_argument("--memory-child", choices=("router", "per_head"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args)))
        return 0
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "memory_child")}
    res: dict[str, Any] = {"environment": environment(), "args": settings}
    if not args.no_memory:
        res["memory"] = memory(args)
    s = make_setting(args.n_train, args.dim, args.batch, args.k, args.seed)
    t0 = time.perf_counter()
    router = build_router(s)
    res["fit_s"] = {"router": time.perf_counter() - t0}
    t0 = time.perf_counter()
    per_head = PerHeadRouter(s)
    res["fit_s"]["per_head"] = time.perf_counter() - t0
    res["per_head_calls"] = {"quality_heads": len(per_head.quality_heads), "token_heads": len(per_head.token_heads)}
    res["agreement"] = agreement(s, router, per_head, args.agreement)
    res["single_query"] = single_query(s, router, per_head, args)
    res["batch"] = batch(s, router, per_head, args)
    res["environment"]["load_average_end"] = os.getloadavg()
    table = markdown(res)
    res["markdown"] = table
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(table)
    print(f"\nBLAS: {res['environment']['threadpools']}; results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
