"""Collect's money over loopback stub pools: the cap means spend, prices are never silent, dead upstreams are
named before any call and paused during a run, and Ctrl-C then a rerun loses nothing."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r2router_core.store import OutcomeStore
from r2router_integrations.collect import EXIT_CELLS_FAILED
from r2router_integrations.collect.plan import build_plan, parse_budgets
from r2router_integrations.collect.prompts import read_prompts
from r2router_integrations.collect.runner import PREFLIGHT_PROMPT
from tests.integrations.collect.support import (
    PRICES,
    REPO,
    cli_env,
    run_cli,
    stub_pool,
    write_prompts,
    write_upstreams,
)


def _args(tmp: Path, upstreams: Path, store: Path, *extra: str, n: int = 3, budgets: str = "64,256,uncapped") -> list:
    prompts = tmp / "prompts.jsonl"
    if not prompts.exists():
        write_prompts(prompts, n, n)
    return ["collect", "run", str(prompts), "--upstreams", str(upstreams), "--budgets", budgets,
            "--store", str(store), "--grader", "exact", "--yes", "--no-progress", *extra]  # fmt: skip


def _true_cost(store: Path) -> float:
    with OutcomeStore(store) as s:
        return s.spend("prompts")


def test_a_job_under_its_cap_finishes_in_one_run(tmp_path: Path) -> None:
    with stub_pool(tmp_path) as pool:
        upstreams = write_upstreams(tmp_path / "upstreams.yaml", pool.url)
        uncapped = run_cli(*_args(tmp_path, upstreams, tmp_path / "free.db", n=6))  # what the job really costs
        assert uncapped.returncode == 0, uncapped.stderr
        true_cost = _true_cost(tmp_path / "free.db")
        prompts = read_prompts(tmp_path / "prompts.jsonl")
        specs = [m for m in _specs()]
        plan = build_plan("prompts", prompts, specs, parse_budgets("64,256,uncapped"))
        largest = max(plan.worst_case_cell_usd(c) for c in plan.cells)
        cap = true_cost + 1.05 * largest  # enough for the job plus one call's worst case
        assert plan.worst_case_usd > 4 * cap  # reserving every queued cell's worst case at once would stop early
        capped = run_cli(*_args(tmp_path, upstreams, tmp_path / "capped.db", "--max-usd", f"{cap:.6f}"))
        assert capped.returncode == 0, capped.stdout + capped.stderr
        assert "72 of 72 cells done" in capped.stdout and "Stopped" not in capped.stdout
        assert _true_cost(tmp_path / "capped.db") == pytest.approx(true_cost) and true_cost <= cap


def _specs() -> list:
    from r2router_core import ModelSpec

    return [ModelSpec(name, output, input_) for name, (input_, output) in PRICES.items()]


def test_a_missing_price_fails_before_any_call_and_a_stored_price_is_never_replaced(tmp_path: Path) -> None:
    with stub_pool(tmp_path) as pool:
        priced = write_upstreams(tmp_path / "upstreams.yaml", pool.url)
        unpriced = tmp_path / "unpriced.yaml"
        unpriced.write_text(priced.read_text().replace("    input_price: 2.0\n    output_price: 10.0\n", ""))
        store = tmp_path / "runs.db"
        result = run_cli(*_args(tmp_path, unpriced, store))
        assert result.returncode == 1 and pool.requests(preflight=True) == []  # not even the preflight
        assert "pool model(s) without a price: big (no input_price or output_price)" in result.stderr
        assert "0 = free" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert not store.exists() or _true_cost(store) == 0.0
        # priced once, the store keeps the price: a yaml without it uses the stored one and never overwrites it
        assert run_cli(*_args(tmp_path, priced, store, "--models", "big", "--budgets", "64")).returncode == 0
        again = run_cli(*_args(tmp_path, unpriced, store, "--budgets", "64,256"))
        assert again.returncode == 0, again.stderr
        assert "big ($2/$10 per 1M in/out)" in again.stdout and "using the store's" in again.stderr
        with OutcomeStore(store) as s:
            stored = {m.name: (m.input_price, m.output_price) for m in s.models()}
            assert stored["big"] == (2.0, 10.0)
            big_256 = [c.call for c in s.calls("prompts") if c.call.model == "big" and c.call.budget == 256]
            assert big_256 and all(c.cost_usd == pytest.approx((12 * 2.0 + 200 * 10.0) / 1e6) for c in big_256
                                   if c.output_tokens == 200)  # fmt: skip
        free = tmp_path / "free.yaml"  # 0 is a price: free, and said so
        free.write_text(
            priced.read_text()
            .replace("input_price: 0.5", "input_price: 0")
            .replace("output_price: 1.0", "output_price: 0")
        )
        dry = run_cli(*_args(tmp_path, free, tmp_path / "free.db", "--dry-run"))
        assert dry.returncode == 0 and "small (free)" in dry.stdout


def _dead_url() -> str:
    """A loopback URL nobody listens on (a port bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_dead_upstream_is_named_before_any_call(tmp_path: Path) -> None:
    dead, dead_judge = _dead_url(), _dead_url()
    with stub_pool(tmp_path) as pool:
        upstreams = write_upstreams(tmp_path / "upstreams.yaml", pool.url)
        upstreams.write_text(upstreams.read_text().replace(f"{pool.url}/big/v1", f"{dead}/big/v1"))
        judges = tmp_path / "judges.yaml"
        judges.write_text(f"upstreams:\n  referee:\n    base_url: {dead_judge}/v1\n    model: acme/referee\n"
                          "    input_price: 1\n    output_price: 2\n")  # fmt: skip
        started = time.monotonic()
        args = _args(tmp_path, upstreams, tmp_path / "runs.db", "--grader", "judge:referee", "--judge-upstreams",
                     str(judges))  # fmt: skip
        result = run_cli(*args)
        assert result.returncode == 1 and time.monotonic() - started < 30
        assert f"big ({dead}/big/v1/chat/completions): ConnectError" in result.stderr
        assert f"referee ({dead_judge}/v1/chat/completions): ConnectError" in result.stderr  # the judge too
        assert "2 of 3 models cannot be called, nothing was collected" in result.stderr
        assert "--no-preflight" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        requests = pool.requests(preflight=True)
        assert [r["body"]["messages"][-1]["content"] for r in requests] == [PREFLIGHT_PROMPT]  # small's preflight
        assert requests[0]["body"]["max_tokens"] == 1
    with OutcomeStore(tmp_path / "runs.db") as s:
        assert s.calls() == []


def test_an_upstream_that_dies_during_a_run_is_paused_once_and_the_rest_goes_on(tmp_path: Path) -> None:
    with stub_pool(tmp_path, delay=0.05) as pool, stub_pool(tmp_path, delay=0.05) as big_host:
        upstreams = write_upstreams(tmp_path / "upstreams.yaml", pool.url)
        upstreams.write_text(upstreams.read_text().replace(f"{pool.url}/big/v1", f"{big_host.url}/big/v1"))
        args = _args(tmp_path, upstreams, tmp_path / "runs.db", "--concurrency", "2", n=8)
        proc = subprocess.Popen([sys.executable, "-m", "r2router_integrations", *args], cwd=REPO, env=cli_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while len(big_host.requests()) < 6:
                assert time.monotonic() < deadline and proc.poll() is None, "the run ended before big could die"
                time.sleep(0.02)
            big_host.process.terminate()  # big's upstream dies mid-run
            big_host.process.wait(10)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == EXIT_CELLS_FAILED, out + err
    assert err.count("paused for the rest of this run") == 1
    assert f"pool model big at {big_host.url}/big/v1/chat/completions failed 5 times in a row" in err
    assert f"Paused after connection errors in a row: big ({big_host.url}/big/v1/chat/completions)" in out
    with OutcomeStore(tmp_path / "runs.db") as s:
        calls = s.calls("prompts")
        assert sum(c.call.model == "small" and c.call.status == "ok" for c in calls) == 48  # the rest went on
        big = [c for c in calls if c.call.model == "big"]
        assert 0 < len(big) < 48


def _cells(store: Path) -> dict:
    with OutcomeStore(store) as s:
        grades = s.grades("exact", "prompts")
        return {
            (c.call.prompt_id, c.call.model, c.call.budget): (
                c.call.status, c.call.answer, c.call.finish_reason, c.call.output_tokens, round(c.call.cost_usd, 12),
                grades[c.id].score if c.id in grades else "ungraded",
            )
            for c in s.calls("prompts")
        }  # fmt: skip


def test_ctrl_c_then_rerun_loses_nothing(tmp_path: Path) -> None:
    with stub_pool(tmp_path, delay=0.05) as pool:
        upstreams = write_upstreams(tmp_path / "upstreams.yaml", pool.url)
        whole = run_cli(*_args(tmp_path, upstreams, tmp_path / "whole.db", n=8))
        assert whole.returncode == 0, whole.stderr
        before = len(pool.requests())
        args = _args(tmp_path, upstreams, tmp_path / "cut.db", "--concurrency", "2")
        proc = subprocess.Popen([sys.executable, "-m", "r2router_integrations", *args], cwd=REPO, env=cli_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while len(pool.requests()) < before + 20:
                assert time.monotonic() < deadline and proc.poll() is None, "the run ended before Ctrl-C"
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert proc.returncode == 130, out + err
        assert "Traceback" not in err
        cut = _cells(tmp_path / "cut.db")
        assert 0 < len(cut) < 96 and all(v[-1] != "ungraded" for v in cut.values())  # graded as calls finished
        assert f"interrupted: {len(cut)} of 96 cells are stored" in err and "run the same command again" in err
        again = run_cli(*args)
        assert again.returncode == 0, again.stderr
        assert f"{96 - len(cut)} calls made (0 failed)" in again.stdout
    assert _cells(tmp_path / "cut.db") == _cells(tmp_path / "whole.db")


def _not_given(spec):
    """``spec`` with both prices marked not given (as ModelSpec(name, None) does once the core tracks it)."""
    object.__setattr__(spec, "missing_prices", ("input_price", "output_price"))
    return spec


def test_the_store_never_replaces_a_price_with_a_missing_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from r2router_core import ModelSpec
    from r2router_core.errors import ConfigError

    with OutcomeStore(tmp_path / "s.db") as store:
        store.set_models([ModelSpec("big", 10.0, 2.0, "acme/big-1")])
        store.set_models([_not_given(ModelSpec("big", 0.0, 0.0, "acme/big-2"))])  # a yaml without the price
        (big,) = store.models()
        assert (big.input_price, big.output_price, big.full_name) == (2.0, 10.0, "acme/big-2")
        with pytest.raises(ConfigError, match=r"no prices for model\(s\) \['new'\]; give input_price and output"):
            store.set_models([_not_given(ModelSpec("new", 0.0, 0.0))])
        assert [m.name for m in store.models()] == ["big"]
        store.set_models([ModelSpec("big", 12.0, 2.5)])  # a given price replaces it, and the change is said
        assert (store.models()[0].input_price, store.models()[0].output_price) == (2.5, 12.0)
        assert "prices of big change from $2/$10 to $2.5/$12 per 1M in/out" in caplog.text
        store.set_models([ModelSpec("free", 0.0, 0.0)])  # 0 is a price: free
        assert store.models()[1].output_price == 0.0
