"""The counters of issue 22 item 4 on /metrics, with one and with two worker processes.

Each counter method of ``GatewayMetrics`` is called in N processes sharing one
``PROMETHEUS_MULTIPROC_DIR`` (what ``serve --workers N`` sets up) and the
exposition sums them; then a real ``r2router serve --workers N --store`` counts
the ones wired outside the execution path (decision log, feedback, reloads).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .support import MATH_PROMPT, Samples, Stub
from .test_workers import _serve, _stop

CALLS = textwrap.dedent(
    """
    import os, sys
    from r2router_integrations.server.metrics import GatewayMetrics

    def calls():
        metrics = GatewayMetrics()
        metrics.spend("small", 100, 0.25)
        metrics.spend("large", None, 1.5)
        metrics.escalation("small")
        metrics.fallback("large")
        metrics.feedback("api")
        metrics.feedback("user:7")
        metrics.reload(0.3)
        metrics.shadow_decision("medium", 400)
        metrics.log_count("written", 3)
        metrics.log_count("rejected", 1)
        metrics.log_pending(2)
        return metrics

    if __name__ == "__main__":
        import multiprocessing
        workers = int(sys.argv[1])
        if workers == 1:
            sys.stdout.buffer.write(calls().render())
        else:
            ctx = multiprocessing.get_context("spawn")
            children = [ctx.Process(target=calls) for _ in range(workers)]
            for child in children:
                child.start()
            for child in children:
                child.join(60)
                assert child.exitcode == 0
            sys.stdout.buffer.write(GatewayMetrics().render())
    """
)


def _parse(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.parametrize("workers", [1, 2])
def test_every_counter_method_is_summed_over_the_workers(tmp_path: Path, workers: int) -> None:
    script = tmp_path / "calls.py"
    script.write_text(CALLS, encoding="utf-8")
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if workers > 1:
        (tmp_path / "metrics").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    done = subprocess.run(
        [sys.executable, str(script), str(workers)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    got = _parse(done.stdout)
    n = workers
    want = {
        ("r2router_spend_usd_total", (("budget", "100"), ("model", "small"))): 0.25 * n,
        ("r2router_spend_usd_total", (("budget", "uncapped"), ("model", "large"))): 1.5 * n,
        ("r2router_escalations_total", (("model", "small"),)): n,
        ("r2router_fallbacks_total", (("model", "large"),)): n,
        ("r2router_feedback_total", (("source", "api"),)): n,
        ("r2router_feedback_total", (("source", "user:7"),)): n,
        ("r2router_reloads_total", ()): n,
        ("r2router_reload_duration_seconds_count", ()): n,
        ("r2router_reload_duration_seconds_sum", ()): 0.3 * n,
        ("r2router_shadow_decisions_total", (("budget", "400"), ("model", "medium"))): n,
        ("r2router_decision_log_total", (("outcome", "written"),)): 3 * n,
        ("r2router_decision_log_total", (("outcome", "rejected"),)): n,
    }
    for key, value in want.items():
        assert got.get(key) == pytest.approx(value), key
    if workers == 1:  # a live gauge: summed over live processes only, so only a running one shows it
        assert got[("r2router_decision_log_pending", ())] == 2


def test_feedback_sources_past_the_limit_count_as_other() -> None:
    from r2router_integrations.server.metrics import MAX_FEEDBACK_SOURCES, GatewayMetrics

    metrics = GatewayMetrics()
    for i in range(MAX_FEEDBACK_SOURCES + 5):
        metrics.feedback(f"user:{i}")
    got = _parse(metrics.render().decode())
    sources = {dict(labels)["source"] for name, labels in got if name == "r2router_feedback_total"}
    assert len(sources) == MAX_FEEDBACK_SOURCES + 1 and "other" in sources
    assert got[("r2router_feedback_total", (("source", "other"),))] == 5


def _fresh(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_served_gateway_counts_its_log_feedback_and_reloads(
    tmp_path: Path, upstreams_file: Path, stub: Stub, workers: int
) -> None:
    proc, url = _serve(tmp_path, upstreams_file, workers, f"sqlite:///{tmp_path / 'log.db'}")
    try:
        ids, pids = [], set()
        body = {"model": "r2router", "messages": [{"role": "user", "content": MATH_PROMPT}]}

        def chat(_: int) -> tuple[str, str | None]:
            with _fresh(url) as client:
                answer = client.post("/v1/chat/completions", json=body)
            assert answer.status_code == 200
            return answer.headers["x-r2router-decision-id"], answer.headers.get("x-r2router-worker")

        with ThreadPoolExecutor(6) as pool:
            for _ in range(10):  # in rounds of 12 concurrent requests until both workers answered (bounded)
                for decision_id, pid in pool.map(chat, range(12)):
                    ids.append(decision_id)
                    pids.add(pid)
                if len(pids) == workers:
                    break
        for decision_id in ids:
            with _fresh(url) as client:
                sent = client.post("/v1/feedback", json={"id": decision_id, "quality": 0.5, "source": "user:a"})
            assert sent.status_code == 204
        with _fresh(url) as client:
            assert (
                client.post("/v1/feedback", json={"id": ids[0], "quality": 1, "source": "grader:x"}).status_code == 400
            )
            assert client.post("/admin/reload", json={}).status_code == 200
        deadline = time.monotonic() + 10
        while True:  # the other worker follows the reload within a second
            with _fresh(url) as client:
                got = _parse(client.get("/metrics").text)
            if got.get(("r2router_reloads_total", ()), 0) >= workers or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        _stop(proc)
    if workers == 2:
        assert len(pids) == 2  # both workers answered (their counters are summed below)
    n = len(ids)
    assert got[("r2router_decision_log_total", (("outcome", "queued"),))] == n
    assert got[("r2router_decision_log_total", (("outcome", "written"),))] == n
    assert got[("r2router_decision_log_total", (("outcome", "rejected"),))] == 0
    assert got[("r2router_decision_log_pending", ())] == 0
    assert got[("r2router_feedback_total", (("source", "user:a"),))] == n
    assert ("r2router_feedback_total", (("source", "grader:x"),)) not in got  # refused: not counted
    assert got[("r2router_reloads_total", ())] == workers  # one on demand, the other worker following it
    assert got[("r2router_reload_duration_seconds_count", ())] == workers
    assert got[("r2router_decisions_total", (("budget", "400"), ("model", "large")))] == n
