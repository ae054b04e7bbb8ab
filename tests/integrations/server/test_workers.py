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


def _serve(tmp_path: Path, upstreams_file: Path, workers: int, store: str, *extra: str) -> tuple[subprocess.Popen, str]:
    """``r2router serve --workers N --store URL`` on a free loopback port; ``(process, base URL)``."""
    saved = build_router().save(tmp_path / "router")
    port = _free_port()
    args = [sys.executable, "-m", "r2router_integrations", "serve", "--router", str(saved)]
    args += ["--upstreams", str(upstreams_file), "--port", str(port), "--workers", str(workers)]
    args += ["--store", store, "--drain-seconds", "2", *extra]
    proc = subprocess.Popen(args, env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(url, proc, timeout=60)
    return proc, url


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _route(url: str, prompt: str) -> tuple[str, str]:
    """``(worker pid, chosen "model@budget")`` of one /v1/route on a fresh connection (the kernel picks a worker)."""
    with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        answer = client.post(f"{url}/v1/route", json={"prompt": prompt})
    assert answer.status_code == 200, answer.text
    chosen = answer.json()
    return answer.headers["x-r2router-worker"], f"{chosen['model']}@{chosen['max_tokens']}"


def _routes_by_worker(url: str, prompts: list[str], rounds: int = 40) -> dict[str, dict[str, str]]:
    """Each worker's decision for each prompt, asking until both workers answered every prompt (bounded)."""
    seen: dict[str, dict[str, str]] = {}
    for _ in range(rounds):
        for prompt in prompts:
            worker, chosen = _route(url, prompt)
            previous = seen.setdefault(worker, {}).setdefault(prompt, chosen)
            assert previous == chosen  # one worker routes one prompt alike every time
        if len(seen) == 2 and all(len(d) == len(prompts) for d in seen.values()):
            break
    return seen


def _teach_medium(store_url: str) -> None:
    """Logged math answers with feedback: the large model turned bad (0), the medium one good (1)."""
    from r2router_core.execute.records import decision_record
    from r2router_core.store import OutcomeStore

    router = build_router()
    store = OutcomeStore(store_url)
    records, scores = [], []
    for i in range(40):
        embedding = router.embed([f"math question number {100 + i}"])[0]
        decision = router.route(embedding)
        for model, quality in (("large", 0.0), ("medium", 1.0)):
            arm = next(c for c in decision.candidates if c.model == model and c.token_limit == 400)
            records.append(
                decision_record(
                    decision,
                    arm,
                    decision_id=f"{model}{i}",
                    source="gateway",
                    embedding=embedding,
                    output_tokens=200,
                    finish_reason="stop",
                )
            )
            scores.append((f"{model}{i}", quality))
    store.record_decisions(records)
    for decision_id, quality in scores:
        store.record_feedback(decision_id, quality, source="api")
    store.close()


@pytest.mark.slow
def test_a_reload_on_one_worker_reaches_every_worker(tmp_path: Path, upstreams_file: Path, stub: Stub) -> None:
    store = f"sqlite:///{tmp_path / 'log.db'}"
    proc, url = _serve(tmp_path, upstreams_file, 2, store)
    prompts = [f"math question number {i}" for i in (103, 107, 112)]  # where the feedback is
    try:
        before = _routes_by_worker(url, prompts)
        assert len(before) == 2  # both workers answered
        assert {c for d in before.values() for c in d.values()} == {"large@400"}  # as trained
        _teach_medium(store)
        with httpx.Client(timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            reloaded = client.post(f"{url}/admin/reload", json={})
        assert reloaded.status_code == 200 and reloaded.json()["logged_rows"] == 80
        assert reloaded.headers["x-r2router-reload-generation"] == "1"
        time.sleep(3)  # the other worker reads the generation every second
        after = _routes_by_worker(url, prompts)
        assert len(after) == 2
        first, second = after.values()
        assert first == second  # every worker routes alike
        assert all(not c.startswith("large") for c in first.values()), first  # and learned from the feedback
        samples = metric_samples(url)
        assert samples[("r2router_reloads_total", ())] == 2  # one on demand, one followed: summed over the workers
    finally:
        _stop(proc)
    assert proc.returncode == 0
