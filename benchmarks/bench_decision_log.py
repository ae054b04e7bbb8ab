"""CPU the decision log costs a gateway per logged row: its writer thread, and the caller's ``record()``.

Run by hand (about 5 s per line)::

    python benchmarks/bench_decision_log.py                                   # SQLite only
    python benchmarks/bench_decision_log.py --postgres postgresql+psycopg://user@host/db   # and PostgreSQL

Rows like the gateway's (a 384-float embedding, options, tokens, costs) arrive
at ``--rate`` per second (a gateway serving that many requests), for
``--seconds``; the writer thread's CPU time is read from ``/proc`` (user +
system, so the database driver's and SQLite's own work counts) and divided by
the rows. One line per flush interval (0: write whatever is queued at once, as
before issue 23). CPU time, not throughput: a shared, loaded machine disturbs it
far less. Pass ``--baseline-pythonpath /path/to/older/checkout`` to measure that
code's writer in a subprocess too (its own flush behaviour; no interval).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _thread_cpu(tid: int) -> float:
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, rate: float, seconds: float, interval: float | None) -> dict[str, Any]:
    """Writer CPU and caller time per row for one store URL and flush interval (``None``: the code's default)."""
    from r2router_core import DecisionLog
    from r2router_core.store import DecisionRecord

    log = DecisionLog(url) if interval is None else DecisionLog(url, flush_interval=interval)
    tid = log._thread.native_id
    assert tid is not None
    embedding = np.random.default_rng(0).normal(size=384).astype(np.float32)
    n = int(rate * seconds)
    tag = os.urandom(4).hex()
    caller = 0.0
    writer_before = _thread_cpu(tid)
    start = time.perf_counter()
    for i in range(n):
        record = DecisionRecord(
            id=f"{tag}{i:08d}",
            source="gateway",
            model="qwen3-30b-a3b",
            budget=400,
            options={"lambda_": 0.999, "allowed_models": None, "max_cost": None},
            predicted_quality=0.7,
            predicted_cost=1e-4,
            lambda_=0.999,
            input_tokens=10,
            output_tokens=2,
            finish_reason="stop",
            latency_s=0.01,
            cost_usd=1e-6,
            embedder="hash-384",
            embedding=embedding,
            prompt="a prompt the log drops (privacy by default)",
        )
        t = time.thread_time()
        log.record(record)
        caller += time.thread_time() - t
        time.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
    log.flush()
    writer = _thread_cpu(tid) - writer_before
    written = log.stats.written
    log.close()
    return {
        "store": url.split(":", 1)[0],
        "flush_interval_s": getattr(log, "flush_interval", None),
        "rows": n,
        "written": written,
        "writer_us_per_row": writer / n * 1e6,
        "record_us_per_row": caller / n * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=150.0, help="rows per second (default 150)")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--intervals", default="0,0.05,0.1", help="flush intervals to measure, seconds")
    parser.add_argument("--postgres", help="also measure this (empty or scratch) PostgreSQL store URL")
    parser.add_argument("--baseline-pythonpath", help="also measure the r2router found on this PYTHONPATH")
    parser.add_argument("--one", nargs=2, metavar=("URL", "INTERVAL"), help=argparse.SUPPRESS)  # internal
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.one:
        interval = None if args.one[1] == "-" else float(args.one[1])
        print(json.dumps(measure(args.one[0], args.rate, args.seconds, interval)))
        return 0
    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="r2router-bench-log-") as tmp:
        urls = [f"sqlite:///{tmp}/log.db", *([args.postgres] if args.postgres else [])]
        runs = [(url, iv, None) for url in urls for iv in args.intervals.split(",")]
        if args.baseline_pythonpath:
            runs += [(url, "-", args.baseline_pythonpath) for url in urls]
        for i, (url, interval, pythonpath) in enumerate(runs):
            url = url.replace("log.db", f"log{i}.db")
            env = {**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
            cmd = [sys.executable, __file__, "--one", url, interval, "--rate", str(args.rate)]
            cmd += ["--seconds", str(args.seconds)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=True)
            row = {**json.loads(done.stdout.strip().splitlines()[-1]), "code": pythonpath or "this checkout"}
            results.append(row)
            print(
                f"{row['code']:>20} {row['store']:>20} interval {row['flush_interval_s']!s:>5}: "
                f"writer {row['writer_us_per_row']:5.0f} us CPU/row, record() {row['record_us_per_row']:4.1f} us/row",
                flush=True,
            )
    out = {
        "rate": args.rate,
        "results": results,
        "loadavg": [[round(x, 2) for x in load_before], [round(x, 2) for x in os.getloadavg()]],
    }
    print(f"load average before/after: {out['loadavg'][0]} / {out['loadavg'][1]}")
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
