"""CPU per chat request of the gateway's own work, in process: one code tree against another, same run.

The load test (``load_test_server.py``) measures throughput against a bare proxy, which a busy
machine turns into noise. This benchmark measures what a code change adds to the gateway's
per-request work, and little else: the app is called in process through ``httpx.ASGITransport``
(no sockets, no uvicorn), its upstream is an ``httpx.MockTransport`` answering a fixed completion,
and each request's CPU time (``time.process_time``, which a descheduled process does not accrue)
and wall time are recorded. Every tree given runs in its own subprocess (``PYTHONPATH`` = the tree),
in turn, ``--rounds`` times, so load drifts hit them alike; the table shows each tree's median
over rounds of the per-round p50/p90/p99 and its ratio to the first tree::

    git archive <base> | tar -x -C /tmp/base
    python benchmarks/gateway_cpu_per_request.py --tree /tmp/base --tree .

Variants: ``plain`` (default settings), ``store`` (a SQLite decision log) and ``priced`` (the pool
has input prices, so the new gateway counts the prompt's tokens and routes on them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = ("plain", "store", "priced")


def _router(priced: bool) -> Any:
    import numpy as np

    from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
    from r2router_core.testing import HashEmbedder

    embedder = HashEmbedder(dim=384)
    names = [f"m{i}" for i in range(6)]
    budgets = (100, 400, 1000, None)
    rng = np.random.default_rng(0)
    n = 809
    config = RouterConfig(
        models=tuple(
            ModelSpec(name, output_price=1.0 + i, input_price=(0.5 + i) if priced else 0.0)
            for i, name in enumerate(names)
        ),
        budgets=budgets,
        lambda_=0.9,
        k=10,
        embedder=embedder.id,
    )
    data = TrainingData(
        embedder.embed([f"training prompt {i}" for i in range(n)]),
        tuple(names),
        budgets,
        rng.uniform(0, 1, (n, 6, 4)),
        rng.uniform(50, 500, (n, 6)),
    )
    return R2Router(config, data, embedder=embedder)


def _child(variant: str, requests: int, out: Path) -> None:
    """Run in a subprocess with PYTHONPATH = the tree under test."""
    import httpx

    from r2router_integrations.server import Upstream, create_app

    answer = {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "up",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine, thanks"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }
    body = json.dumps(answer).encode()

    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    router = _router(priced=variant == "priced")
    ups = [Upstream(m, f"http://{m}.invalid/v1", f"up-{m}") for m in router.config.model_names]
    with tempfile.TemporaryDirectory() as tmp:
        options: dict[str, Any] = {"store": str(Path(tmp) / "log.db")} if variant == "store" else {}
        upstream_client = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
        app = create_app(router, ups, http_client=upstream_client, **options)

        async def run() -> tuple[list[float], list[float]]:
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
            cpu, wall = [], []
            for i in range(requests + 200):  # the first 200: warm-up
                payload = {"model": "r2router", "messages": [{"role": "user", "content": f"prompt {i} about the sea"}]}
                c0, w0 = time.process_time(), time.perf_counter()
                response = await client.post("/v1/chat/completions", json=payload)
                c1, w1 = time.process_time(), time.perf_counter()
                assert response.status_code == 200, response.text
                if i >= 200:
                    cpu.append((c1 - c0) * 1e6)
                    wall.append((w1 - w0) * 1e6)
            await client.aclose()
            return cpu, wall

        cpu, wall = asyncio.run(run())
        app.state.gateway.batcher.close()
        log = getattr(app.state.gateway, "feedbacks", None) or getattr(app.state.gateway, "learning", None)
        if log is not None and getattr(log, "log", None) is not None:
            log.log.close()
    out.write_text(json.dumps({"cpu": cpu, "wall": wall}))


def _pcts(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=100)
    return q[49], q[89], q[98]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", type=Path, help="a source tree (repeat; the first is the base)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.requests, args.child_out)
        return 0
    trees = [t.resolve() for t in args.tree or [Path(".")]]
    results: dict[str, dict[str, list[tuple[float, ...]]]] = {}
    load = [os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            for rnd in range(args.rounds):
                for tree in trees:
                    out = Path(tmp) / f"{variant}-{rnd}-{tree.name}.json"
                    env = {**os.environ, "PYTHONPATH": str(tree), "OPENBLAS_NUM_THREADS": "1"}
                    cmd = [sys.executable, __file__, "--child", variant, "--child-out", str(out)]
                    subprocess.run([*cmd, "--requests", str(args.requests)], env=env, check=True, timeout=600)
                    data = json.loads(out.read_text())
                    row = results.setdefault(variant, {}).setdefault(str(tree), [])
                    row.append(_pcts(data["cpu"]) + _pcts(data["wall"]))
    load.append(os.getloadavg())
    print(f"load average before/after: {load[0]} / {load[1]}")
    print("| variant | tree | CPU p50 / p90 / p99 (us) | ratio p50 | wall p50 / p90 / p99 (us) |")
    print("|---|---|---|---|---|")
    summary: dict[str, Any] = {"load": load, "rows": []}
    for variant, by_tree in results.items():
        base = None
        for tree, rounds in by_tree.items():
            med = [statistics.median(r[i] for r in rounds) for i in range(6)]
            base = base or med[0]
            print(
                f"| {variant} | {Path(tree).name} | {med[0]:.0f} / {med[1]:.0f} / {med[2]:.0f} | {med[0] / base:.2f} "
                f"| {med[3]:.0f} / {med[4]:.0f} / {med[5]:.0f} |"
            )
            summary["rows"].append({"variant": variant, "tree": tree, "median_of_rounds": med})
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
