"""route() latency on a quiet and on a busy host: BLAS threads left alone ("before") against SmallProducts ("after").

Run by hand from the repository root (about 2 minutes on 2 cores)::

    python benchmarks/bench_tail_latency.py --out benchmarks/results/tail_latency.json

Setting: the speed page's router (N = 809 training queries, D = 1024, 6 models x
4 budgets, k = 80, seeded random embeddings; ``bench_routing.make_setting``).

Phases, each policy of :func:`r2router_core.engine.index.set_small_product_threads`
interleaved round by round so load changes hit every policy alike:

* ``quiet``: back-to-back ``route()`` calls, nothing else started (the
  micro-benchmark of one decision; the machine may still be shared: the load
  averages are recorded).
* ``busy``: two other processes each spin a core (plain Python loops, each
  bounded by a deadline and killed at the end), and ``route()`` is called
  ``paced`` (a pause between calls, as an application serving requests) and
  ``back-to-back`` (a CPU-bound loop: our process then gets 2/3 of a core and is
  descheduled every few ms whatever it does; this floor is reported, not hidden).

Policies: ``off`` = BLAS's own threads (the code path before), ``one`` = always
one BLAS thread, ``auto`` = the default (threads until a product stalls, then one
thread for a while). Every policy's decisions on the same queries are compared.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_routing import build_router, make_setting  # the speed page's setting (run as a script: a sibling)

from r2router_core import R2Router
from r2router_core.engine import index as index_module
from r2router_core.engine.index import set_small_product_threads

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "tail_latency.json"
BURN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def _percentiles(seconds: list[float]) -> dict[str, float]:
    us = np.asarray(seconds) * 1e6
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return {"p50_us": round(float(p50), 1), "p90_us": round(float(p90), 1), "p99_us": round(float(p99), 1)}


def _time_calls(router: R2Router, queries: np.ndarray, calls: int, pause: float) -> list[float]:
    out = []
    gc.disable()
    try:
        for i in range(calls):
            q = queries[i % len(queries)]
            start = time.perf_counter()
            router.route(q)
            out.append(time.perf_counter() - start)
            if pause:
                time.sleep(pause)
    finally:
        gc.enable()
    return out


def _fresh_guard() -> None:
    """Forget what the guard learnt (stalls, backoff), as in a new process."""
    index_module.small_products.__init__()  # type: ignore[misc]


def measure(
    router: R2Router, queries: np.ndarray, policies: list[str], modes: dict[str, float], calls: int, rounds: int
) -> dict[str, Any]:
    """Interleaved rounds: for each round, each mode, each policy, ``calls`` timed route() calls."""
    samples: dict[str, dict[str, list[float]]] = {m: {p: [] for p in policies} for m in modes}
    load_before = os.getloadavg()
    _fresh_guard()
    for _ in range(rounds):
        for mode, pause in modes.items():
            for policy in policies:
                previous = set_small_product_threads(policy)
                try:
                    samples[mode][policy] += _time_calls(router, queries, calls, pause)
                finally:
                    set_small_product_threads(previous)
    return {
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "results": {m: {p: _percentiles(s) for p, s in by.items()} for m, by in samples.items()},
    }


def same_decisions(router: R2Router, queries: np.ndarray, policies: list[str]) -> dict[str, Any]:
    """The (model, budget) of every query under every policy; they must be identical."""
    picks = {}
    for policy in policies:
        previous = set_small_product_threads(policy)
        try:
            picks[policy] = [(d.model, d.token_limit) for d in (router.route(q) for q in queries)]
        finally:
            set_small_product_threads(previous)
    first = picks[policies[0]]
    return {"n_queries": len(queries), "identical": all(p == first for p in picks.values())}


def busy(seconds: float) -> list[subprocess.Popen[bytes]]:
    """Two processes spinning a core each, for at most ``seconds``."""
    return [subprocess.Popen([sys.executable, "-c", BURN, str(seconds)]) for _ in range(2)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="timed route() calls per policy, mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pause-ms", type=float, default=1.0, help="pause between paced calls")
    parser.add_argument("--n-train", type=int, default=809)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    s = make_setting(args.n_train, args.dim, 256, 80, 0)
    router = build_router(s)
    queries = s.queries
    for q in queries:  # warm-up
        router.route(q)
    policies = ["off", "one", "auto"]
    report: dict[str, Any] = {
        "setting": {"n_train": args.n_train, "dim": args.dim, "calls": args.calls, "rounds": args.rounds},
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count()},
        "same_decisions": same_decisions(router, queries, policies),
    }
    report["quiet"] = measure(router, queries, policies, {"back_to_back": 0.0}, args.calls, args.rounds)
    pause = args.pause_ms / 1000
    per_call_bound = 0.05 + pause  # generous: a stalled call takes tens of ms
    budget = args.rounds * len(policies) * args.calls * (2 * per_call_bound) + 30
    burners = busy(budget)
    try:
        time.sleep(1.0)  # let the burners start
        report["busy"] = measure(
            router, queries, policies, {"paced": pause, "back_to_back": 0.0}, args.calls, args.rounds
        )
    finally:
        for p in burners:
            p.kill()
            p.wait()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    _print(report)
    return 0


def _print(report: dict[str, Any]) -> None:
    print(f"decisions identical across policies: {report['same_decisions']}")
    print("| phase | calls | policy | p50 us | p90 us | p99 us | load average before -> after |")
    print("|---|---|---|---|---|---|---|")
    for phase in ("quiet", "busy"):
        part = report[phase]
        load = f"{part['load_average_before'][0]} -> {part['load_average_after'][0]}"
        for mode, by in part["results"].items():
            for policy, r in by.items():
                print(f"| {phase} | {mode} | {policy} | {r['p50_us']} | {r['p90_us']} | {r['p99_us']} | {load} |")


if __name__ == "__main__":
    raise SystemExit(main())
