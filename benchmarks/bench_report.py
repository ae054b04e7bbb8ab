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

``--dashboard``: the gateway's speed while someone watches ``/dashboard``. Starts the load test's
stub upstream and ``r2router serve --store`` (benchmarks/load_test_server.py's router and files)
on a store holding ``--n`` decisions of the last hour, then alternates rounds of chat traffic
(``--users`` clients, one request in flight each) *without* and *with* a viewer polling
``/dashboard`` every 0.5 s (the page is recomputed at most every 30 s, its cache time); prints the
chats' throughput and p50/p99 latency of each, and their ratio (with / without)::

    python benchmarks/bench_report.py --dashboard --n 20000 --users 10 --rounds 3 --seconds 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


def dashboard_load(args: argparse.Namespace) -> None:
    """Chat latency and throughput of a gateway with and without a viewer polling its dashboard."""
    import asyncio
    import subprocess

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import load_test_server as lt

    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    stub_port, port = lt._free_port(), lt._free_port()
    router_dir, upstreams = lt.write_gateway_files(work, stub_port, "hash", 400)
    models = [name.lower() for name, _ in lt.CARD_MODELS]
    now = datetime.now(UTC)
    with OutcomeStore(work / "log.db") as store:
        rng = np.random.default_rng(0)
        for start in range(0, args.n, 5000):
            store.record_decisions(
                [
                    DecisionRecord(
                        id=f"old{i}",
                        source="gateway",
                        model=models[i % len(models)],
                        budget=512,
                        options={},
                        predicted_quality=0.7,
                        predicted_cost=1e-4,
                        input_tokens=100,
                        output_tokens=200,
                        latency_s=float(rng.uniform(0.1, 2)),
                        cost_usd=1e-4,
                        created_at=(now - timedelta(seconds=float(rng.uniform(0, 3000)))).isoformat(),
                    )
                    for i in range(start, min(start + 5000, args.n))
                ]
            )
    key = "sk-bench-dashboard"
    env = {**os.environ, "BENCH_KEY": key}
    me = [sys.executable, str(Path(lt.__file__).resolve())]
    procs = [
        subprocess.Popen([*me, "--stub-port", str(stub_port)], env=env),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "r2router_integrations",
                "serve",
                "--router",
                str(router_dir),
                "--upstreams",
                str(upstreams),
                "--host",
                lt.HOST,
                "--port",
                str(port),
                "--store",
                f"sqlite:///{work / 'log.db'}",
                "--api-key-env",
                "BENCH_KEY",
            ],
            env=env,
        ),
    ]
    base = f"http://{lt.HOST}:{port}"
    auth = (("authorization", f"Bearer {key}"),)
    pool = frozenset(name for name, _ in lt.CARD_MODELS)  # the answer names the provider model
    target = lt.Target("gateway", f"{base}/v1/chat/completions", "r2router", pool, auth)
    try:
        deadline = time.monotonic() + 120
        lt._wait_up(f"http://{lt.HOST}:{stub_port}/count", procs[0], deadline)
        lt._wait_up(f"{base}/health", procs[1], deadline)
        print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); {args.n} decisions shown")
        runs = asyncio.run(_rounds(target, base, dict(auth), args))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        shutil.rmtree(work)
    print(f"load average after:  {os.getloadavg()[0]:.2f}")
    print(f"{'viewer':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  (median of {args.rounds} rounds)")
    table = {}
    for name in ("without", "with"):
        rps = float(np.median([r.rps for r in runs[name]]))
        p50 = float(np.median([lt._ms(r.latencies, 0.5) for r in runs[name]]))
        p99 = float(np.median([lt._ms(r.latencies, 0.99) for r in runs[name]]))
        table[name] = (rps, p50, p99)
        print(f"{name:<9} {rps:8.1f} {p50:8.1f} {p99:8.1f}")
    (r0, a0, b0), (r1, a1, b1) = table["without"], table["with"]
    print(f"ratio     {r1 / r0:8.2f} {a1 / a0:8.2f} {b1 / b0:8.2f}  (with / without); {runs['polls']} dashboard loads")


async def _rounds(target: Any, base: str, auth: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    import httpx

    sys_lt = sys.modules["load_test_server"]
    out: dict[str, Any] = {"without": [], "with": [], "polls": 0}
    clients = [httpx.AsyncClient(timeout=60.0) for _ in range(args.users)]
    viewer = httpx.AsyncClient(timeout=60.0, headers=auth)

    async def watch(stop: asyncio.Event) -> None:
        while not stop.is_set():
            page = await viewer.get(f"{base}/dashboard")
            assert page.status_code == 200 and 'id="requests"' in page.text, page.text[:200]
            out["polls"] += 1
            await asyncio.sleep(0.5)

    try:
        await sys_lt.fire(clients, target, 0.5)  # warm-up: connections open
        for _ in range(args.rounds):
            out["without"].append(await sys_lt.fire(clients, target, args.seconds))
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch(stop))
            out["with"].append(await sys_lt.fire(clients, target, args.seconds))
            stop.set()
            await watcher
        for name in ("without", "with"):
            errors = sum(r.errors for r in out[name])
            assert errors == 0, f"{errors} failed chats {name} the viewer"
    finally:
        for client in [*clients, viewer]:
            await client.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="decisions in the store (default 100000)")
    parser.add_argument("--feedback", type=int, default=5_000, help="decisions with feedback (default 5000)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--db", type=Path, help="reuse (or build once) this store file")
    parser.add_argument("--dashboard", action="store_true", help="measure the gateway while /dashboard is watched")
    parser.add_argument("--users", type=int, default=10, help="--dashboard: concurrent chat clients")
    parser.add_argument("--rounds", type=int, default=3, help="--dashboard: rounds without and with the viewer")
    parser.add_argument("--seconds", type=float, default=5.0, help="--dashboard: seconds per round and side")
    args = parser.parse_args()
    if args.dashboard:
        dashboard_load(args)
        return
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
