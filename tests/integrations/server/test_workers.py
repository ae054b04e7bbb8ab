"""``r2router serve --workers 2``: one port, /metrics summed over the workers, a drain with 0 lost requests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .support import ENV, MATH_PROMPT, Stub, build_router, metric_delta, metric_samples
from .test_cli import _free_port, _wait_healthy

CHAT = "/v1/chat/completions"


def _chat(url: str) -> int:
    body = {"model": "r2router", "messages": [{"role": "user", "content": MATH_PROMPT}]}
    # a fresh connection per request, so the kernel spreads them over the workers
    with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        return client.post(f"{url}{CHAT}", json=body).status_code


@pytest.mark.slow
def test_two_workers_serve_count_together_and_drain(tmp_path: Path, upstreams_file: Path, stub: Stub) -> None:
    saved = build_router().save(tmp_path / "router")
    port = _free_port()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    args = [
        sys.executable,
        "-m",
        "r2router_integrations",
        "serve",
        "--router",
        str(saved),
        "--upstreams",
        str(upstreams_file),
    ]
    args += ["--port", str(port), "--workers", "2", "--drain-seconds", "20"]
    env = {**os.environ, **ENV, "TMPDIR": str(scratch)}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, timeout=60)
        before = metric_samples(url)
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(_chat, [url] * 40))
        assert statuses == [200] * 40
        after = metric_samples(url)
        assert metric_delta(before, after, "r2router_requests_total", route=CHAT, status="200") == 40
        assert metric_delta(before, after, "r2router_decisions_total", model="large", budget="400") == 40

        stub.behaviour["large"].delay = 1.5  # requests in flight when the signal comes
        stub.requests.clear()
        with ThreadPoolExecutor(10) as pool:
            in_flight = [pool.submit(_chat, url) for _ in range(10)]
            deadline = time.monotonic() + 20
            while len(stub.calls("large")) < 10 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(stub.calls("large")) == 10
            proc.send_signal(signal.SIGTERM)
            drained = [f.result() for f in in_flight]
        assert drained == [200] * 10  # 0 lost: every accepted request finished
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert list(scratch.glob("r2router-metrics-*")) == []  # the multiprocess metrics are cleaned up
