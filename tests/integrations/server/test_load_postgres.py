"""Several gateway processes, one PostgreSQL decision log: every request answered and logged exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from r2router_core.store import OutcomeStore

from .support import ENV, ServerThread, Stub, build_router, write_upstreams
from .test_cli import _free_port, _wait_healthy

N_GATEWAYS = 4
N_REQUESTS = 200


@pytest.mark.slow
def test_four_gateways_share_one_postgres_log_and_a_reload_drops_nothing(
    postgres_url: str, stub_server: tuple[Stub, ServerThread], stub: Stub, tmp_path: Path
) -> None:
    ckpt = build_router().save(tmp_path / "router")
    # a generous upstream timeout: the stub shares this process with 16 client threads
    upstreams_file = write_upstreams(tmp_path / "upstreams.yaml", stub_server[1].url, timeout=60.0)
    procs, urls = [], []
    try:
        for _ in range(N_GATEWAYS):
            port = _free_port()
            args = [sys.executable, "-m", "r2router_integrations", "serve", "--router", str(ckpt)]
            args += ["--upstreams", str(upstreams_file), "--port", str(port), "--store", postgres_url]
            log = (tmp_path / f"gateway-{port}.log").open("w")
            procs.append(subprocess.Popen(args, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=log))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            _wait_healthy(url, proc, timeout=120.0)  # 4 processes importing at once on a busy CI machine

        def one(i: int) -> tuple[int, str]:
            if i == N_REQUESTS // 2:  # a reload in the middle of the load
                assert httpx.post(f"{urls[0]}/admin/reload", json={}, timeout=60).status_code == 200
            body = {"model": "r2router", "messages": [{"role": "user", "content": f"math question number {i}"}]}
            answer = httpx.post(f"{urls[i % N_GATEWAYS]}/v1/chat/completions", json=body, timeout=60)
            return answer.status_code, answer.headers.get("x-r2router-decision-id", "")

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(N_REQUESTS)))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)  # the lifespan writes what is queued
        for proc in procs:
            proc.communicate(timeout=60)
    assert [status for status, _ in results] == [200] * N_REQUESTS
    ids = {decision_id for _, decision_id in results}
    assert len(ids) == N_REQUESTS
    with OutcomeStore(postgres_url) as store:
        logged = [d.id for d in store.decisions()]
    assert len(logged) == N_REQUESTS and set(logged) == ids  # 0 lost, 0 duplicated
    assert all(p.returncode == 0 for p in procs)
