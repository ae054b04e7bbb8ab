"""What shadow mode adds to the baseline's latency: the gateway with ``--shadow`` against itself forwarding.

Processes on 127.0.0.1 (the load test's stub upstream and router files, benchmarks/load_test_server.py):

* the stub upstream, answering after ``--upstream-delay-ms`` (an LLM's time to answer);
* ``r2router serve --shadow MODEL --store sqlite:///...`` (the baseline answers every request; the router
  embeds and decides beside it and the row is logged);
* the same gateway without shadow, sent requests that name the baseline model (routing bypassed: the
  gateway's forwarding path alone, nothing decided or logged): the anchor.

The client sends ``--requests`` requests one at a time to each, alternating in ``--rounds`` rounds,
every prompt distinct (the gateway's embedding cache never hits), and prints p50/p90/p99 of each
path's latency and the shadow path's added latency (its percentile minus the anchor's, same round),
with the load average. ``--embedder onnx`` uses MiniLM in ONNX Runtime (the CLI's default for new
routers) instead of the weightless hash embedder::

    python benchmarks/bench_shadow_latency.py --embedder hash --out benchmarks/results/shadow_latency_hash.json
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

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test_server import HOST, _free_port, _wait_up, write_gateway_files


def _percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1000
    return {f"p{q}": float(np.percentile(arr, q)) for q in (50, 90, 99)}


def _run(url: str, model: str, prompts: list[str]) -> list[float]:
    out = []
    with httpx.Client(timeout=30) as client:
        for prompt in prompts:
            body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
            started = time.perf_counter()
            resp = client.post(url, json=body)
            out.append(time.perf_counter() - started)
            if resp.status_code != 200:
                raise SystemExit(f"{url} answered {resp.status_code}: {resp.text[:200]}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedder", choices=["hash", "onnx"], default="hash")
    parser.add_argument("--requests", type=int, default=200, help="requests per path per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--upstream-delay-ms", type=float, default=20.0)
    parser.add_argument("--train-prompts", type=int, default=2000)
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds in all, then everything stops")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="r2router-shadow-"))
    ports = {name: _free_port() for name in ("stub", "shadow", "plain")}
    router_dir, upstreams = write_gateway_files(workdir, ports["stub"], args.embedder, args.train_prompts)
    baseline = json.loads((router_dir / "config.json").read_text())["models"][0]["name"]
    load = str(Path(__file__).resolve().parent / "load_test_server.py")
    serve = [sys.executable, "-m", "r2router_integrations", "serve", "--router", str(router_dir)]
    serve += ["--upstreams", str(upstreams), "--host", HOST]
    delay, store = str(args.upstream_delay_ms), f"sqlite:///{workdir / 'log.db'}"
    commands = {
        "stub": [sys.executable, load, "--stub-port", str(ports["stub"]), "--upstream-delay-ms", delay],
        "shadow": [*serve, "--port", str(ports["shadow"]), "--shadow", baseline, "--store", store],
        "plain": [*serve, "--port", str(ports["plain"])],
    }
    procs = {name: subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for name, cmd in commands.items()}
    try:
        deadline = started + args.deadline
        for name in ("shadow", "plain"):
            _wait_up(f"http://{HOST}:{ports[name]}/health", procs[name], deadline)
        load_before = os.getloadavg()
        urls = {name: f"http://{HOST}:{ports[name]}/v1/chat/completions" for name in ("shadow", "plain")}
        models = {"shadow": "r2router", "plain": baseline}
        n = 0
        rounds: list[dict[str, Any]] = []
        _run(urls["shadow"], "r2router", [f"warm-up {i}" for i in range(20)])
        _run(urls["plain"], baseline, [f"warm-up {i}" for i in range(20)])
        for r in range(args.rounds):
            one: dict[str, Any] = {}
            for name in ("plain", "shadow") if r % 2 else ("shadow", "plain"):
                prompts = [f"question {n + i} about topic {(n + i) % 97} in round {r}" for i in range(args.requests)]
                n += args.requests
                one[name] = _percentiles(_run(urls[name], models[name], prompts))
                if time.monotonic() > deadline:
                    raise SystemExit("deadline passed")
            one["added"] = {q: one["shadow"][q] - one["plain"][q] for q in one["plain"]}
            rounds.append(one)
        load_after = os.getloadavg()
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    result = {
        "embedder": args.embedder,
        "upstream_delay_ms": args.upstream_delay_ms,
        "requests_per_round": args.requests,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "rounds": rounds,
        "median_added_ms": {q: float(np.median([r["added"][q] for r in rounds])) for q in ("p50", "p90", "p99")},
    }
    print(f"load average {load_before[0]:.2f} -> {load_after[0]:.2f}; upstream answers after {delay} ms")
    for i, r in enumerate(rounds):
        cells = "  ".join(f"{name} " + "/".join(f"{r[name][q]:.1f}" for q in ("p50", "p90", "p99")) for name in r)
        print(f"round {i}: {cells} (ms, p50/p90/p99)")
    print("median added by shadow mode (ms):", {q: round(v, 2) for q, v in result["median_added_ms"].items()})
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
