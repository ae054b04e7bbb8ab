"""How long ``r2router report`` takes on a large decision log (target: 100,000 decisions in under 5 s).

Builds a SQLite store of N shadow-mode decisions through the store API (``record_decisions``,
``record_feedback``), then times, each ``--repeats`` times:

* ``raw read``: the report's one SQL statement alone, rows fetched, nothing computed (the floor);
* ``row objects``: ``OutcomeStore.decisions()`` (a ``DecisionRecord`` per row), the naive reader;
* ``report``: ``read_decisions`` + ``savings_report`` + writing ``index.html`` and ``report.json``
  (what ``r2router report`` does after opening the store).

Prints p50/p90/p99 seconds of each, the report's ratio to the raw read, and the load average
(the machine is shared: numbers taken under load say so)::

    python benchmarks/bench_report.py --n 100000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from r2router_core import ModelSpec
from r2router_core.evaluation import read_decisions, savings_report
from r2router_core.store import DecisionRecord, OutcomeStore
from r2router_integrations.report import write_report

POOL = (ModelSpec("small", 0.6, 0.15), ModelSpec("medium", 4.0, 1.0), ModelSpec("gpt-4o", 10.0, 2.5))


def build(path: Path, n: int, feedback: int, seed: int = 0) -> None:
    """``n`` shadow rows (the router answers 20%), ``feedback`` of them with a score."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with OutcomeStore(path) as store:
        store.set_models(POOL)
        batch: list[DecisionRecord] = []
        for i in range(n):
            by_router = rng.random() < 0.2
            arm = "small" if rng.random() < 0.6 else "medium"
            tokens_in, tokens_out = int(rng.integers(50, 400)), int(rng.integers(50, 800))
            shadow = {
                "baseline": "gpt-4o",
                "answered_by": "router" if by_router else "baseline",
                "baseline_predicted_quality": 0.8,
                "baseline_predicted_cost": (tokens_in * 2.5 + tokens_out * 10.0) / 1e6,
            }
            spec = POOL[0] if arm == "small" else POOL[1]
            answering = spec if by_router else POOL[2]
            batch.append(
                DecisionRecord(
                    id=f"b{i:07d}",
                    source="gateway",
                    model=arm,
                    budget=512,
                    options={"lambda": 0.5, "shadow": shadow},
                    predicted_quality=0.6 if arm == "small" else 0.75,
                    predicted_cost=(tokens_in * spec.input_price + tokens_out * spec.output_price) / 1e6,
                    lambda_=0.5,
                    propensity=0.2 if by_router else 0.8,
                    input_tokens=tokens_in,
                    output_tokens=tokens_out,
                    finish_reason="stop",
                    latency_s=float(rng.uniform(0.2, 3.0)),
                    cost_usd=(tokens_in * answering.input_price + tokens_out * answering.output_price) / 1e6,
                    created_at=(start + timedelta(seconds=20 * i)).isoformat(timespec="milliseconds"),
                )
            )
            if len(batch) == 5000:
                store.record_decisions(batch)
                batch = []
        store.record_decisions(batch)
        for i in rng.choice(n, size=feedback, replace=False):
            store.record_feedback(f"b{int(i):07d}", float(rng.random() < 0.7), source="api")


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="decisions in the store (default 100000)")
    parser.add_argument("--feedback", type=int, default=5_000, help="decisions with feedback (default 5000)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--db", type=Path, help="reuse (or build once) this store file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-report-"))
    db = args.db or work / "log.db"
    if not db.exists():
        t0 = time.perf_counter()
        build(db, args.n, args.feedback)
        print(f"built {args.n} decisions + {args.feedback} feedback in {time.perf_counter() - t0:.1f} s ({db})")
    store = OutcomeStore(db)
    pool = store.models()
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} ({os.cpu_count()} cores)")

    def raw() -> None:
        with store._engine.connect() as conn:
            conn.exec_driver_sql(
                "SELECT id, created_at, model, options, predicted_quality, predicted_cost, propensity, status, "
                "input_tokens, output_tokens, latency_s, cost_usd, failed_attempts, escalated_from FROM decisions"
            ).all()

    def report() -> None:
        result = savings_report(read_decisions(store), pool)
        write_report(result, work / "out")
        assert result.requests == store.count_decisions()

    results = {
        "raw read": timed(raw, args.repeats),
        "row objects": timed(lambda: store.decisions(), max(1, args.repeats // 2)),
        "report": timed(report, args.repeats),
    }
    print(f"load average after:  {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    base = float(np.median(results["raw read"]))
    print(f"{'step':<12} {'p50 s':>8} {'p90 s':>8} {'p99 s':>8} {'x raw read':>11}")
    for name, times in results.items():
        p50, p90, p99 = np.percentile(times, [50, 90, 99])
        print(f"{name:<12} {p50:8.3f} {p90:8.3f} {p99:8.3f} {p50 / base:11.1f}")
    store.close()
    if args.db is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
