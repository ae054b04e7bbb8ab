"""Faults and resumes: kill -9 mid-run, 429 storms, 5xx bursts, hangs, a dead upstream, the rate limit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from r2router_core.store import OutcomeStore
from r2router_integrations.collect import EXIT_CELLS_FAILED
from tests.integrations.collect.support import REPO, cli_env, run_cli, stub_pool, write_prompts, write_upstreams

JITTER = 0.15  # seconds of send-to-arrival jitter tolerated when counting requests per window


def _run_args(tmp: Path, url: str, store: Path, *extra: str, n: int = 6) -> list[str]:
    upstreams = write_upstreams(tmp / "upstreams.yaml", url, timeout=2.0)
    prompts = write_prompts(tmp / "prompts.jsonl", n, n)
    return ["collect", "run", str(prompts), "--upstreams", str(upstreams), "--budgets", "64,256,uncapped",
            "--store", str(store), "--grader", "exact", "--yes", "--no-progress", *extra]  # fmt: skip


def _cell(req: dict) -> tuple[str, str, int | None]:
    body = req["body"]
    cap = body.get("max_tokens", body.get("max_completion_tokens"))
    return (body["messages"][-1]["content"], req["model"], cap)


def test_kill_9_then_rerun_calls_no_finished_cell_twice(tmp_path: Path) -> None:
    store_path = tmp_path / "runs.db"
    with stub_pool(tmp_path, delay=0.05) as pool:
        args = _run_args(tmp_path, pool.url, store_path, "--concurrency", "2", n=10)
        proc = subprocess.Popen([sys.executable, "-m", "r2router_integrations", *args], cwd=REPO, env=cli_env())
        deadline = time.monotonic() + 60
        try:
            while len(pool.requests()) < 25:
                assert time.monotonic() < deadline and proc.poll() is None, "the run ended before it could be killed"
                time.sleep(0.02)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        with OutcomeStore(store_path) as store:
            done = {(c.prompt.text, c.call.model, c.call.budget) for c in store.calls("prompts", status="ok")}
        seen_before = len(pool.requests())
        assert 0 < len(done) < 120
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        after = [_cell(r) for r in pool.requests()[seen_before:]]
    assert not done & set(after), "a cell finished before the kill was called again"
    with OutcomeStore(store_path) as store:
        calls = store.calls("prompts")
        assert len(calls) == 120 and all(c.call.status == "ok" for c in calls)
        assert not store.ungraded_calls("exact")


def test_429_storms_5xx_bursts_and_hangs_all_complete_within_the_rate_limit(tmp_path: Path) -> None:
    store_path = tmp_path / "runs.db"
    faults = {
        "rate_limited": {"small": 3, "big": 2},
        "retry_after": 0.3,
        "server_errors": {"small": 2, "big": 3},
        "hang_every": {"big": 7},
        "hang_seconds": 20,
    }
    rps = 8
    with stub_pool(tmp_path, **faults) as pool:
        args = _run_args(tmp_path, pool.url, store_path, "--rps", str(rps), "--call-timeout", "0.5", n=4)
        result = run_cli(*args, "--max-attempts", "8", timeout=180)
        assert result.returncode == 0, result.stderr
        requests = pool.requests(preflight=True)  # the preflight's calls take their share of the faults
    with OutcomeStore(store_path) as store:
        calls = store.calls("prompts")
        assert len(calls) == 48 and all(c.call.status == "ok" for c in calls)
        assert max(c.call.attempts for c in calls) > 1
    assert sum(r["status"] == 429 for r in requests) == 5 and sum(r["status"] == "hang" for r in requests) >= 2
    for model in ("small", "big"):
        times = sorted(r["t"] for r in requests if r["model"] == model)
        # no window of one second holds more than the limit; the collector spaces its sends by exactly
        # 1/rps, so the window is shortened by the arrival jitter the stub adds on a loaded 2-core VM
        worst = max(sum(1 for u in times[i:] if u < t + 1.0 - JITTER) for i, t in enumerate(times))
        assert worst <= rps, f"{model}: {worst} requests within one second, limit {rps}"


def test_an_upstream_that_keeps_failing_is_recorded_per_call_and_the_rest_finishes(tmp_path: Path) -> None:
    store_path = tmp_path / "runs.db"
    with stub_pool(tmp_path, always_fail=["big"]) as pool:
        args = _run_args(tmp_path, pool.url, store_path, "--max-attempts", "2", n=2)
        refused = run_cli(*args)  # the preflight names the failing upstream and its URL; no cell is called
        assert refused.returncode == 1 and not pool.requests()
        assert f"big ({pool.url}/big/v1/chat/completions): HTTPStatusError: big: HTTP 500" in refused.stderr
        assert "small (" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
        args.append("--no-preflight")
        result = run_cli(*args)
        assert result.returncode == EXIT_CELLS_FAILED, result.stderr  # the exit code says cells failed
        assert "24 calls made (12 failed)" in result.stdout
        with OutcomeStore(store_path) as store:
            failed = store.calls("prompts", status="error")
            assert {c.call.model for c in failed} == {"big"} and len(failed) == 12
            assert all(c.call.attempts == 2 and "HTTP 500" in (c.call.error or "") for c in failed)
            assert len(store.calls("prompts", status="ok")) == 12
        # a rerun tries the failed cells again and only those
        before = len(pool.requests())
        assert run_cli(*args).returncode == EXIT_CELLS_FAILED
        again = pool.requests()[before:]
        assert {r["model"] for r in again} == {"big"} and len({_cell(r) for r in again}) == 12
