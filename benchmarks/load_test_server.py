"""Load test of ``r2router serve`` on loopback, every figure a ratio to a bare proxy measured in the same run.

Run by hand (about 2 minutes per embedder on 2 cores)::

    python benchmarks/load_test_server.py --embedder hash --out benchmarks/results/load_test_server_hash.json
    python benchmarks/load_test_server.py --embedder minilm --out benchmarks/results/load_test_server_minilm.json

Processes, all on 127.0.0.1:

* a stub upstream (Starlette on uvicorn) serving every pool model under
  ``/<model>/v1/chat/completions`` with a fixed completion after
  ``--upstream-delay-ms`` (default 0: the worst case for the gateway's share);
* the **bare proxy** (the anchor): the same stack as the gateway (Starlette on
  uvicorn with the same event loop and HTTP parser, httpx clients sharded the
  same way) that reads the body and forwards it to the stub as is: no parsing,
  no routing, no embedding, no metrics. The cheapest proxy this stack allows;
* the gateway, ``python -m r2router_integrations serve`` (default settings: length
  instruction on, 2 fallbacks, micro-batching) with a router saved to a
  temporary directory: the card's 6 models x 4 budgets, ``--train-prompts``
  training prompts embedded by ``HashEmbedder(dim=384)`` (``--embedder hash``,
  the weightless embedder) or by MiniLM (``--embedder minilm``, the packaged
  offline model), loaded back with ``--embedder auto``;
* optionally the same gateway again with ``--store`` (``--store-url NAME=URL``,
  repeatable: ``sqlite=sqlite:///...``, ``postgresql=postgresql+psycopg://...``), each
  logging every routed call; their throughput is also given as a ratio to the
  gateway without a store, in the same round (issue 23: at least 0.9x);
* optionally LiteLLM's proxy (``--litellm PATH`` to its ``litellm`` command) as a
  second anchor, forwarding to the same stub;
* this process, the client: for each ``--concurrency`` level, ``--repeats``
  rounds; each round measures the stub directly, then each proxy, for
  ``--seconds`` each, with that many simulated users (one keep-alive connection
  each, opened in a warm-up, one request in flight each).

Per round: throughput (requests/s) and p50/p99 *added* latency (the path's
percentile minus the direct path's, same round); ratios to the bare proxy are
taken per round, and the table shows the median of the rounds. With MiniLM the
client also times one-at-a-time embedding (median of single-prompt calls) to
state what one-at-a-time embedding allows (1 / that time).

Checks: every response is a 200 whose ``model`` is a pool model (0 errors) and
every request sent got an answer (0 lost). Exits 1 if a check fails. Bounded:
``--deadline`` seconds in all, then everything stops.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
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


# -- the bare proxy (the anchor) --------------------------------------------------------------
def bare_proxy_app(target: str) -> Any:
    """Body in, same body to ``target``, answer back: the gateway's stack with none of its work."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from r2router_integrations.server.proxy import CLIENT_SHARDS

    clients: list[httpx.AsyncClient] = []
    turn = {"i": 0}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        clients.extend(httpx.AsyncClient(limits=limits) for _ in range(CLIENT_SHARDS))
        yield
        for client in clients:
            await client.aclose()

    async def chat(request: Request) -> Response:
        turn["i"] += 1
        client = clients[turn["i"] % len(clients)]
        upstream = await client.post(target, content=await request.body(), headers={"content-type": "application/json"})
        return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan)


def serve(app: Any, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False, backlog=2048)


# -- the gateway ------------------------------------------------------------------------------
def build_router(embedder_name: str, n_prompts: int, seed: int = 0) -> Any:
    from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
    from r2router_core.testing import HashEmbedder

    if embedder_name == "minilm":
        from r2router_core.embedders import default_embedder

        embedder: Any = default_embedder()
    elif embedder_name == "onnx":
        from r2router_core.embedders import load_embedder

        embedder = load_embedder("minilm@onnx")  # MiniLM in ONNX Runtime, from the packaged weights
    else:
        embedder = HashEmbedder(dim=384)
    rng = np.random.default_rng(seed)
    prompts = [f"{TOPICS[i % len(TOPICS)]} question {i} about item {rng.integers(1000)}" for i in range(n_prompts)]
    models = tuple(ModelSpec(name.lower(), output_price=price, full_name=name) for name, price in CARD_MODELS)
    config = RouterConfig(models=models, budgets=BUDGETS, lambda_=0.999, k=80, embedder=embedder.id)
    quality = rng.integers(0, 2, size=(n_prompts, len(models), len(BUDGETS))).astype(float)
    tokens = rng.uniform(20, 900, size=(n_prompts, len(models)))
    data = TrainingData(embedder.embed(prompts), config.model_names, BUDGETS, quality, tokens)
    return R2Router(config, data, embedder=embedder)


def write_gateway_files(directory: Path, stub_port: int, embedder_name: str, n_prompts: int) -> tuple[Path, Path]:
    """Save the router and an upstreams.yaml pointing every pool model at the stub."""
    router = build_router(embedder_name, n_prompts)
    router_dir = router.save(directory / "router")
    lines = ["upstreams:"]
    for name in router.config.model_names:
        lines += [f"  {name}:", f"    base_url: http://{HOST}:{stub_port}/{name}/v1", f"    model: provider/{name}"]
    upstreams = directory / "upstreams.yaml"
    upstreams.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return router_dir, upstreams


def write_litellm_config(directory: Path, stub_port: int) -> Path:
    first = CARD_MODELS[0][0].lower()
    path = directory / "litellm.yaml"
    path.write_text(
        "model_list:\n  - model_name: stub\n    litellm_params:\n"
        f"      model: openai/provider/{first}\n      api_base: http://{HOST}:{stub_port}/{first}/v1\n"
        "      api_key: unused\nlitellm_settings:\n  telemetry: false\n",
        encoding="utf-8",
    )
    return path


def one_at_a_time_embedding_seconds(embedder_name: str, n: int = 30) -> float | None:
    """Median seconds of one single-prompt embedding call (MiniLM only)."""
    if embedder_name != "minilm":
        return None
    from r2router_core.embedders import default_embedder

    embedder = default_embedder()
    embedder.embed(["warm up"])
    times = []
    for i in range(n):
        start = time.perf_counter()
        embedder.embed([f"a {TOPICS[i % len(TOPICS)]} question number {i}"])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- the client -------------------------------------------------------------------------------
@dataclass
class Run:
    latencies: list[float]
    errors: int
    sent: int
    seconds: float
    kinds: Counter[str] = field(default_factory=Counter)  # each error: its HTTP status or exception name
    cpu_s: float | None = None  # CPU seconds the serving process used meanwhile (all its threads)

    @property
    def cpu_ms_per_request(self) -> float | None:
        return None if self.cpu_s is None or not self.latencies else self.cpu_s / len(self.latencies) * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    model: str
    pool: frozenset[str]
    headers: tuple[tuple[str, str], ...] = ()
    pid: int | None = None  # the serving process, whose CPU time is read around each run


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process and all its threads (Linux ``/proc``), or ``None``.

    CPU per request is what a loaded, shared machine disturbs least: throughput
    moves with the other jobs' load, the work one request costs the process far less.
    """
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PROMPT_IDS = itertools.count()
"""Numbers the prompts of the whole run, so none repeats (see :func:`fire`)."""


async def fire(clients: list[httpx.AsyncClient], target: Target, seconds: float, limit: int | None = None) -> Run:
    """One request in flight per client until ``seconds`` pass (or ``limit`` are sent)."""
    latencies: list[float] = []
    counter = {"sent": 0, "errors": 0}
    kinds: Counter[str] = Counter()
    stop = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < stop and (limit is None or counter["sent"] < limit):
            i = counter["sent"]
            counter["sent"] += 1
            topic = TOPICS[i % len(TOPICS)]
            # unique across rounds and paths: a repeated prompt would hit the gateway's embedding cache
            content = f"a {topic} question number {next(PROMPT_IDS)}"
            body = {"model": target.model, "messages": [{"role": "user", "content": content}]}
            start = time.perf_counter()
            try:
                resp = await client.post(target.url, json=body, headers=dict(target.headers))
                ok = resp.status_code == 200 and (not target.pool or resp.json().get("model") in target.pool)
                kind = f"HTTP {resp.status_code}" if resp.status_code != 200 else "a model outside the pool"
            except (httpx.HTTPError, ValueError) as exc:
                ok, kind = False, type(exc).__name__
            latencies.append(time.perf_counter() - start)
            if not ok:
                counter["errors"] += 1
                kinds[kind] += 1

    start = time.perf_counter()
    cpu = process_cpu_seconds(target.pid)
    await asyncio.gather(*(worker(client) for client in clients))
    used = process_cpu_seconds(target.pid)
    cpu_s = None if cpu is None or used is None else used - cpu
    return Run(latencies, counter["errors"], counter["sent"], time.perf_counter() - start, kinds, cpu_s)


def _ms(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values), q) * 1000)


async def measure(targets: list[Target], levels: list[int], repeats: int, seconds: float) -> dict[str, Any]:
    """For each level and round: every target in turn; returns per-level medians of the rounds."""
    out: dict[str, Any] = {}
    errors = lost = 0
    failures: list[dict[str, Any]] = []  # where every error happened: level, round, target, phase, kinds
    for level in levels:
        users = {t.name: [httpx.AsyncClient(timeout=60.0) for _ in range(level)] for t in targets}
        rounds: list[dict[str, Run]] = []
        try:
            for round_ in range(repeats):
                runs = {}
                for t in targets:  # warm-up opens the connections; each target back to back (keep-alive)
                    warm = await fire(users[t.name], t, 0.3)
                    runs[t.name] = await fire(users[t.name], t, seconds)
                    for phase, r in (("warm-up", warm), ("measured", runs[t.name])):
                        errors += r.errors
                        lost += r.sent - len(r.latencies)
                        if r.errors:
                            where = {"level": level, "round": round_, "target": t.name, "phase": phase}
                            failures.append({**where, "kinds": dict(r.kinds)})
                rounds.append(runs)
        finally:
            for clients in users.values():
                for client in clients:
                    await client.aclose()
        out[str(level)] = _summarise(rounds, [t.name for t in targets])
    return {"levels": out, "errors": errors, "lost": lost, "failures": failures}


def _summarise(rounds: list[dict[str, Run]], names: list[str]) -> dict[str, Any]:
    med = statistics.median
    summary: dict[str, Any] = {}
    for name in names:
        per = [r[name] for r in rounds]
        direct = [r["direct"] for r in rounds]
        summary[name] = {
            "rps": med(r.rps for r in per),
            "p50_ms": med(_ms(r.latencies, 0.5) for r in per),
            "p99_ms": med(_ms(r.latencies, 0.99) for r in per),
            "added_p50_ms": med(
                _ms(r.latencies, 0.5) - _ms(d.latencies, 0.5) for r, d in zip(per, direct, strict=True)
            ),
            "added_p99_ms": med(
                _ms(r.latencies, 0.99) - _ms(d.latencies, 0.99) for r, d in zip(per, direct, strict=True)
            ),
            "rps_vs_bare": med(r[name].rps / r["bare"].rps for r in rounds),
            "rps_vs_gateway": med(r[name].rps / r["gateway"].rps for r in rounds) if "gateway" in rounds[0] else None,
            "cpu_ms_per_request": _median_or_none([r.cpu_ms_per_request for r in per]),
            "cpu_vs_gateway": _median_or_none(
                [_ratio(r[name].cpu_ms_per_request, r["gateway"].cpu_ms_per_request) for r in rounds]
            )
            if "gateway" in rounds[0]
            else None,
            "requests": sum(len(r.latencies) for r in per),
            "errors": sum(r.errors for r in per),
        }
    return summary


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def table(result: dict[str, Any]) -> str:
    rows = [
        "| clients | path | requests/s | x bare proxy | x gateway | CPU ms/request | CPU x gateway "
        "| p50 added ms | p99 added ms | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level, summary in result["levels"].items():
        labels = {
            **LABELS,
            **{n: f"r2router gateway --store {n[len('store-') :]}" for n in summary if n.startswith("store-")},
        }
        for name, label in labels.items():
            if name not in summary:
                continue
            r = summary[name]
            added = "" if name == "direct" else f"{r['added_p50_ms']:+.2f} | {r['added_p99_ms']:+.2f}"
            rows.append(
                f"| {level} | {label} | {r['rps']:.0f} | {r['rps_vs_bare']:.2f} | "
                + ("" if r.get("rps_vs_gateway") is None else f"{r['rps_vs_gateway']:.2f}")
                + " | "
                + ("" if r.get("cpu_ms_per_request") is None else f"{r['cpu_ms_per_request']:.2f}")
                + " | "
                + ("" if r.get("cpu_vs_gateway") is None else f"{r['cpu_vs_gateway']:.2f}")
                + " | "
                + (added or f"({r['p50_ms']:.2f}) | ({r['p99_ms']:.2f})")
                + f" | {r['errors']} |"
            )
    one = result.get("one_at_a_time_embed_ms")
    if one:
        top = result["levels"].get("50", {}).get("gateway", {}).get("rps")
        rows.append(
            f"\nOne-at-a-time embedding takes {one:.2f} ms (median), so it allows {1000 / one:.0f} requests/s"
            + (f"; the gateway served {top:.0f}/s at 50 clients = {top * one / 1000:.2f}x that." if top else ".")
        )
    return "\n".join(rows)


LABELS = {
    "direct": "client -> stub (latency in brackets: the base)",
    "bare": "bare proxy (anchor)",
    "gateway": "r2router gateway",
    "litellm": "LiteLLM proxy",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[bytes], deadline: float, method: str = "GET") -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a server process exited early with code {proc.returncode}")
        try:
            httpx.request(method, url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up in time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedder", choices=("hash", "minilm", "onnx"), default="hash")
    parser.add_argument("--concurrency", default="1,10,50", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per path, level and round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per level (the table shows their median)")
    parser.add_argument("--train-prompts", type=int, default=809)
    parser.add_argument("--upstream-delay-ms", type=float, default=0.0)
    parser.add_argument("--litellm", help="path of LiteLLM's 'litellm' command, to add its proxy as an anchor")
    parser.add_argument("--gateway-arg", action="append", default=[], help="extra 'r2router serve' argument")
    parser.add_argument(
        "--store-url",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="also measure the gateway with --store URL (repeatable; a fresh, empty store each)",
    )
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds before everything is stopped")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument("--stub-port", type=int, help=argparse.SUPPRESS)  # internal: run as the stub
    parser.add_argument("--bare-port", type=int, help=argparse.SUPPRESS)  # internal: run as the bare proxy
    parser.add_argument("--bare-target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub_port is not None:
        serve(stub_app(args.upstream_delay_ms / 1000), args.stub_port)
        return 0
    if args.bare_port is not None:
        serve(bare_proxy_app(args.bare_target), args.bare_port)
        return 0

    stores = dict(item.split("=", 1) for item in args.store_url)
    ports = {name: _free_port() for name in ("stub", "bare", "gateway", "litellm", *(f"store-{n}" for n in stores))}
    first = CARD_MODELS[0][0].lower()
    stub_chat = f"http://{HOST}:{ports['stub']}/{first}/v1/chat/completions"
    workdir = Path(tempfile.mkdtemp(prefix="r2router-load-"))
    one_embed = one_at_a_time_embedding_seconds(args.embedder)
    router_dir, upstreams = write_gateway_files(workdir, ports["stub"], args.embedder, args.train_prompts)
    me = [sys.executable, str(Path(__file__).resolve())]
    serve_cmd = [sys.executable, "-m", "r2router_integrations", "serve", "--router", str(router_dir)]
    serve_cmd += ["--upstreams", str(upstreams), "--host", HOST, *args.gateway_arg]
    commands = {
        "stub": [*me, "--stub-port", str(ports["stub"]), "--upstream-delay-ms", str(args.upstream_delay_ms)],
        "bare": [*me, "--bare-port", str(ports["bare"]), "--bare-target", stub_chat],
        "gateway": [*serve_cmd, "--port", str(ports["gateway"])],
    }
    for name, url in stores.items():
        commands[f"store-{name}"] = [*serve_cmd, "--port", str(ports[f"store-{name}"]), "--store", url]
    if args.litellm:
        config = write_litellm_config(workdir, ports["stub"])
        commands["litellm"] = [args.litellm, "--config", str(config), "--host", HOST, "--port", str(ports["litellm"])]
    master_key = "sk-" + secrets.token_hex(32)  # LiteLLM refuses to start without one
    env = {**os.environ, "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": master_key}
    procs = {
        name: subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if name == "litellm" else None, env=env
        )
        for name, cmd in commands.items()
    }
    load_before = os.getloadavg()
    pool = frozenset(name for name, _ in CARD_MODELS)
    pids = {name: proc.pid for name, proc in procs.items()}
    targets = [
        Target("direct", stub_chat, f"provider/{first}", frozenset({f"provider/{first}"})),
        Target(
            "bare",
            f"http://{HOST}:{ports['bare']}/v1/chat/completions",
            f"provider/{first}",
            frozenset({f"provider/{first}"}),
            pid=pids["bare"],
        ),
        Target(
            "gateway", f"http://{HOST}:{ports['gateway']}/v1/chat/completions", "r2router", pool, pid=pids["gateway"]
        ),
        *(
            Target(
                f"store-{n}",
                f"http://{HOST}:{ports[f'store-{n}']}/v1/chat/completions",
                "r2router",
                pool,
                pid=pids[f"store-{n}"],
            )
            for n in stores
        ),
    ]
    if args.litellm:
        targets.append(
            Target(
                "litellm",
                f"http://{HOST}:{ports['litellm']}/v1/chat/completions",
                "stub",
                frozenset(),  # LiteLLM names the model its own way: any 200 counts
                (("authorization", f"Bearer {master_key}"),),
            )
        )
    try:
        deadline = time.monotonic() + args.deadline
        _wait_up(f"http://{HOST}:{ports['stub']}/count", procs["stub"], deadline)
        _wait_up(f"http://{HOST}:{ports['bare']}/v1/chat/completions", procs["bare"], deadline)
        for name in ("gateway", *(f"store-{n}" for n in stores)):
            _wait_up(f"http://{HOST}:{ports[name]}/health", procs[name], deadline)
        if args.litellm:
            _wait_up(f"http://{HOST}:{ports['litellm']}/health/liveliness", procs["litellm"], deadline)
        levels = [int(x) for x in args.concurrency.split(",")]
        result = asyncio.run(
            asyncio.wait_for(measure(targets, levels, args.repeats, args.seconds), deadline - time.monotonic())
        )
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    result.update(
        embedder=args.embedder,
        seconds=args.seconds,
        repeats=args.repeats,
        upstream_delay_ms=args.upstream_delay_ms,
        gateway_args=args.gateway_arg,
        one_at_a_time_embed_ms=None if one_embed is None else one_embed * 1000,
        machine={
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
    )
    print(table(result))
    print(f"\nerrors: {result['errors']}, lost: {result['lost']}")
    for failure in result["failures"]:
        print(f"  errors {failure}")
    print(f"load average before/after: {result['machine']['loadavg_before']} / {result['machine']['loadavg_after']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if result["errors"] == 0 and result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
