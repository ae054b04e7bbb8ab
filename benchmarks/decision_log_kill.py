"""What ``kill -9`` of a gateway under load loses from its decision log, over several runs.

Run by hand (about 10 s a run)::

    python benchmarks/decision_log_kill.py --runs 6 --store sqlite
    python benchmarks/decision_log_kill.py --runs 6 --store postgresql+psycopg://user@host/db   # an empty database

Each run, all on 127.0.0.1: the load test's stub upstream and a fresh
``r2router serve --store URL`` (the weightless embedder, 809 training prompts);
``--clients`` users send distinct prompts for ``--seconds`` and remember the
decision id of every answer they got (a 200); then the gateway gets SIGKILL
mid-load. Afterwards the store is opened and every answered id looked up: the
ones missing are answered rows the kill lost. Bounded in count and time; stops
every process it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load_test_server as lt


async def _load(url: str, clients: int, seconds: float) -> tuple[list[str], int]:
    """Requests until ``seconds`` pass or the gateway dies; ``(decision ids answered, requests sent)``."""
    answered: list[str] = []
    sent = 0
    stop = time.perf_counter() + seconds

    async def user(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.perf_counter() < stop:
            sent += 1
            body = {"model": "r2router", "messages": [{"role": "user", "content": f"question {next(lt.PROMPT_IDS)}"}]}
            try:
                resp = await client.post(url, json=body)
            except httpx.HTTPError:
                return  # the gateway is gone
            if resp.status_code == 200:
                answered.append(resp.headers["x-r2router-decision-id"])

    users = [httpx.AsyncClient(timeout=10) for _ in range(clients)]
    try:
        await asyncio.gather(*(user(c) for c in users))
    finally:
        for c in users:
            await c.aclose()
    return answered, sent


def one_run(store_url: str, clients: int, seconds: float, kill_after: float, workdir: Path) -> dict[str, Any]:
    from r2router_core.store import OutcomeStore

    stub_port, port = lt._free_port(), lt._free_port()
    router_dir, upstreams = lt.write_gateway_files(workdir, stub_port, "hash", 809)
    stub = subprocess.Popen([sys.executable, lt.__file__, "--stub-port", str(stub_port)])
    cmd = [sys.executable, "-m", "r2router_integrations", "serve", "--router", str(router_dir)]
    cmd += ["--upstreams", str(upstreams), "--port", str(port), "--store", store_url]
    gateway = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        lt._wait_up(f"http://{lt.HOST}:{stub_port}/count", stub, deadline)
        lt._wait_up(f"http://{lt.HOST}:{port}/health", gateway, deadline)

        async def run() -> tuple[list[str], int]:
            load = asyncio.create_task(_load(f"http://{lt.HOST}:{port}/v1/chat/completions", clients, seconds))
            await asyncio.sleep(kill_after)
            os.kill(gateway.pid, signal.SIGKILL)
            return await load

        answered, sent = asyncio.run(run())
    finally:
        for proc in (gateway, stub):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    store = OutcomeStore(store_url)
    try:
        missing = [i for i in answered if store.decision(i) is None]
    finally:
        store.close()
    return {"answered": len(answered), "sent": sent, "lost": len(missing), "kill_after_s": round(kill_after, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=4.0, help="longest a run's load lasts")
    parser.add_argument("--store", default="sqlite", help="'sqlite' (a fresh file per run) or an empty store URL")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    load_before = os.getloadavg()
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="r2router-kill-") as tmp:
            url = f"sqlite:///{tmp}/log.db" if args.store == "sqlite" else args.store
            result = one_run(url, args.clients, args.seconds, rng.uniform(1.0, args.seconds - 0.5), Path(tmp))
        runs.append(result)
        print(f"run {i}: {result}", flush=True)
    out = {
        "store": "sqlite" if args.store == "sqlite" else args.store.split(":", 1)[0],
        "clients": args.clients,
        "runs": runs,
        "lost": [r["lost"] for r in runs],
        "answered": [r["answered"] for r in runs],
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(
        f"lost {out['lost']} of {out['answered']} answered rows; "
        f"load average {out['loadavg_before']} / {out['loadavg_after']}"
    )
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
