"""Load test of ``r2router serve`` on loopback: the gateway's added latency against the upstream alone.

Run by hand (about a minute on 2 cores)::

    python benchmarks/load_test_server.py --requests 2000 --concurrency 50 \\
        --out benchmarks/results/load_test_server.json

Three processes, all on 127.0.0.1:

* a stub upstream (Starlette on uvicorn) serving every pool model under
  ``/<model>/v1/chat/completions`` with a fixed completion after
  ``--upstream-delay-ms`` (default 0: the worst case for the gateway's share);
* the gateway, ``python -m r2router_integrations serve`` (uvicorn, one worker, default
  settings: length instruction on, 2 fallbacks) with a router saved to a
  temporary directory: the card's 6 models x 4 budgets, N = 809 training
  prompts embedded by ``HashEmbedder(dim=384)``, loaded back with
  ``--embedder auto`` (a real embedder adds its own time per request; see
  ``bench_routing.py``);
* this process, the client: ``--concurrency`` simulated users, each an
  ``httpx.AsyncClient`` with one keep-alive connection (opened during a
  warm-up, so connection setup is not measured), one request in flight each.
  It sends ``--requests`` chat requests straight to the stub (the baseline),
  then the same number through the gateway, then ``--sequential`` of each one
  at a time; prompts are drawn from a fixed list of topics.

Checks: every response is a 200 whose ``model`` is a pool model (0 errors);
the responses received, the stub's own request count and the gateway's
``r2router_requests_total`` all equal the requests sent (0 lost). Exits 1 if
a check fails. Bounded: ``--deadline`` seconds in all, then everything stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

CARD_MODELS = (
    ("Qwen3-235B-A22B", 0.463),
    ("Qwen3-Next-80B-A3B", 1.10),
    ("Qwen3-30B-A3B", 0.33),
    ("Qwen3-Coder-Next", 0.30),
    ("Gemini-2.5-Flash", 2.50),
    ("Claude-3-Haiku", 1.25),
)
BUDGETS = (100, 200, 400, 800)
TOPICS = ("math", "code", "poem", "history", "physics", "cooking", "law", "travel")
HOST = "127.0.0.1"


# -- the stub upstream ------------------------------------------------------------------------
def stub_app(delay: float) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    count = {"n": 0}

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        count["n"] += 1
        if delay:
            await asyncio.sleep(delay)
        message = {"role": "assistant", "content": "stub answer"}
        return JSONResponse(
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": 1,
                "model": body.get("model", "?"),
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
            }
        )

    async def counted(request: Request) -> JSONResponse:
        return JSONResponse(count)

    return Starlette(routes=[Route("/{model}/v1/chat/completions", chat, methods=["POST"]), Route("/count", counted)])


# -- the gateway ------------------------------------------------------------------------------
def build_router(seed: int = 0) -> Any:
    from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
    from r2router_core.testing import HashEmbedder

    rng = np.random.default_rng(seed)
    embedder = HashEmbedder(dim=384)
    prompts = [f"{TOPICS[i % len(TOPICS)]} question {i} about item {rng.integers(1000)}" for i in range(809)]
    models = tuple(ModelSpec(name.lower(), output_price=price, full_name=name) for name, price in CARD_MODELS)
    config = RouterConfig(models=models, budgets=BUDGETS, lambda_=0.999, k=80, embedder=embedder.id)
    quality = rng.integers(0, 2, size=(809, len(models), len(BUDGETS))).astype(float)
    tokens = rng.uniform(20, 900, size=(809, len(models)))
    data = TrainingData(embedder.embed(prompts), config.model_names, BUDGETS, quality, tokens)
    return R2Router(config, data, embedder=embedder)


def write_gateway_files(directory: Path, stub_port: int) -> tuple[Path, Path]:
    """Save the router and an upstreams.yaml pointing every pool model at the stub."""
    router = build_router()
    router_dir = router.save(directory / "router")
    lines = ["upstreams:"]
    for name in router.config.model_names:
        lines += [f"  {name}:", f"    base_url: http://{HOST}:{stub_port}/{name}/v1", f"    model: provider/{name}"]
    upstreams = directory / "upstreams.yaml"
    upstreams.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return router_dir, upstreams


def serve_stub(port: int, delay: float) -> None:
    import uvicorn

    uvicorn.run(stub_app(delay), host=HOST, port=port, log_level="warning", access_log=False, backlog=2048)


# -- the client -------------------------------------------------------------------------------
@dataclass
class Run:
    latencies: list[float]
    errors: int
    sent: int
    received: int
    seconds: float


async def fire(clients: list[httpx.AsyncClient], url: str, pool: set[str], n: int, model: str) -> Run:
    """Send ``n`` chat requests, one worker per client; an error is anything but a 200 naming a pool model."""
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            topic = TOPICS[i % len(TOPICS)]
            body = {"model": model, "messages": [{"role": "user", "content": f"a {topic} question number {i}"}]}
            start = time.perf_counter()
            try:
                resp = await client.post(url, json=body)
                ok = resp.status_code == 200 and resp.json().get("model") in pool
            except (httpx.HTTPError, ValueError):
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in clients))
    return Run(latencies, errors, n, len(latencies), time.perf_counter() - start)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a server process exited early with code {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up in time")


def _ms(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values), q) * 1000)


async def client_main(args: argparse.Namespace, stub_port: int, gw_port: int) -> dict[str, Any]:
    first = CARD_MODELS[0][0].lower()
    stub = (f"http://{HOST}:{stub_port}/{first}/v1/chat/completions", {f"provider/{first}"}, f"provider/{first}")
    gateway = (f"http://{HOST}:{gw_port}/v1/chat/completions", {name for name, _ in CARD_MODELS}, "r2router")
    # one client (one keep-alive connection) per simulated user; connections are opened in the warm-up
    users = {path: [httpx.AsyncClient(timeout=30.0) for _ in range(args.concurrency)] for path in ("stub", "gw")}
    warm = max(args.concurrency, min(200, args.requests))
    loaded: dict[str, Run] = {}
    single: dict[str, Run] = {}
    warmups: list[Run] = []
    try:
        for key, (url, pool, model), clients in (("baseline", stub, users["stub"]), ("gateway", gateway, users["gw"])):
            # each target back to back, so no keep-alive connection idles out (uvicorn closes them after 5 s)
            warmups.append(await fire(clients, url, pool, warm, model))
            loaded[key] = await fire(clients, url, pool, args.requests, model)
            warmups.append(await fire(clients[:1], url, pool, 5, model))
            before = await _timings(gw_port)
            single[key] = await fire(clients[:1], url, pool, args.sequential, model)  # one at a time: no queueing
            after = await _timings(gw_port)
        inside = {
            name: (after[name][0] - before[name][0]) / (after[name][1] - before[name][1]) * 1000 for name in after
        }
    finally:
        for client in (*users["stub"], *users["gw"]):
            await client.aclose()
    async with httpx.AsyncClient() as client:
        stub_count = (await client.get(f"http://{HOST}:{stub_port}/count")).json()["n"]
        metrics = (await client.get(f"http://{HOST}:{gw_port}/metrics")).text
    wanted = ("r2router_requests_total{", 'route="/v1/chat/completions"', 'status="200"')
    gw_ok = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if all(w in line for w in wanted))
    runs = [*loaded.values(), *single.values(), *warmups]  # warm-up requests are checked too
    per_path = warm + args.requests + 5 + args.sequential
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "sequential": args.sequential,
        "upstream_delay_ms": args.upstream_delay_ms,
        "loaded": _compare(loaded),
        "sequential_run": {**_compare(single), "inside_gateway_mean_ms": inside},
        "errors": sum(r.errors for r in runs),
        "lost": sum(r.sent - r.received for r in runs) + (2 * per_path - stub_count),
        "stub_requests_seen": stub_count,
        "gateway_200s": gw_ok,
        "gateway_200s_expected": per_path,
    }


async def _timings(gw_port: int) -> dict[str, tuple[float, float]]:
    """(sum, count) of the gateway's routing and upstream latency histograms, all models together."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://{HOST}:{gw_port}/metrics")).text
    out = {"routing": [0.0, 0.0], "upstream": [0.0, 0.0]}
    for line in text.splitlines():
        for key, name in (
            ("routing", "r2router_routing_latency_seconds"),
            ("upstream", "r2router_upstream_latency_seconds"),
        ):
            for i, suffix in enumerate(("_sum", "_count")):
                if line.startswith(name + suffix):
                    out[key][i] += float(line.rsplit(" ", 1)[1])
    return {key: (total, count) for key, (total, count) in out.items()}


def _compare(runs: dict[str, Run]) -> dict[str, Any]:
    base, via = runs["baseline"], runs["gateway"]
    return {
        "baseline": _summary(base),
        "gateway": _summary(via),
        "added_ms": {
            "p50": _ms(via.latencies, 0.5) - _ms(base.latencies, 0.5),
            "p99": _ms(via.latencies, 0.99) - _ms(base.latencies, 0.99),
            "mean": 1000 * (statistics.fmean(via.latencies) - statistics.fmean(base.latencies)),
        },
    }


def _summary(run: Run) -> dict[str, float]:
    return {
        "p50_ms": _ms(run.latencies, 0.5),
        "p99_ms": _ms(run.latencies, 0.99),
        "mean_ms": 1000 * statistics.fmean(run.latencies),
        "rps": run.received / run.seconds,
        "errors": run.errors,
        "sent": run.sent,
        "received": run.received,
    }


def table(result: dict[str, Any]) -> str:
    rows = [
        "| run | path | p50 ms | p99 ms | mean ms | requests/s | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in (
        ("loaded", f"{result['requests']} requests, {result['concurrency']} concurrent"),
        ("sequential_run", f"{result['sequential']} requests, one at a time"),
    ):
        part = result[key]
        for path, name in (("baseline", "client -> stub (baseline)"), ("gateway", "client -> gateway -> stub")):
            r = part[path]
            rows.append(
                f"| {label} | {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['mean_ms']:.2f} "
                f"| {r['rps']:.0f} | {r['errors']} |"
            )
        a = part["added_ms"]
        rows.append(
            f"| {label} | **added by the gateway** | {a['p50']:+.2f} | {a['p99']:+.2f} | {a['mean']:+.2f} | | |"
        )
    inside = result["sequential_run"]["inside_gateway_mean_ms"]
    rows.append(
        f"\nInside the gateway, one at a time (mean, from its /metrics): routing {inside['routing']:.2f} ms "
        f"(embed + kNN + decision), upstream call {inside['upstream']:.2f} ms."
    )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--sequential", type=int, default=200, help="requests sent one at a time after the load")
    parser.add_argument("--upstream-delay-ms", type=float, default=0.0)
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds before everything is stopped")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument("--stub-port", type=int, help=argparse.SUPPRESS)  # internal: run as the stub
    args = parser.parse_args()
    if args.stub_port is not None:
        serve_stub(args.stub_port, args.upstream_delay_ms / 1000)
        return 0

    stub_port, gw_port = _free_port(), _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="r2router-load-"))
    router_dir, upstreams = write_gateway_files(workdir, stub_port)
    stub = [sys.executable, str(Path(__file__).resolve()), "--stub-port", str(stub_port)]
    gateway = [sys.executable, "-m", "r2router_integrations", "serve", "--router", str(router_dir)]
    gateway += ["--upstreams", str(upstreams), "--host", HOST, "--port", str(gw_port)]
    procs = [
        subprocess.Popen([*stub, "--upstream-delay-ms", str(args.upstream_delay_ms)]),
        subprocess.Popen(gateway, stdout=subprocess.DEVNULL),
    ]
    load_before = os.getloadavg()
    try:
        deadline = time.monotonic() + args.deadline
        _wait_up(f"http://{HOST}:{stub_port}/count", procs[0], deadline)
        _wait_up(f"http://{HOST}:{gw_port}/health", procs[1], deadline)
        remaining = deadline - time.monotonic()
        result = asyncio.run(asyncio.wait_for(client_main(args, stub_port, gw_port), remaining))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    result["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(table(result))
    print(
        f"\nerrors: {result['errors']}, lost: {result['lost']} "
        f"(stub saw {result['stub_requests_seen']}, gateway answered {result['gateway_200s']:.0f} x 200 "
        f"of {result['gateway_200s_expected']} sent to it)"
    )
    print(f"load average before/after: {result['machine']['loadavg_before']} / {result['machine']['loadavg_after']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    ok = result["errors"] == 0 and result["lost"] == 0 and result["gateway_200s"] == result["gateway_200s_expected"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
