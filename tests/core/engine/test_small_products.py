"""BLAS threads of the exact search's small products (r2router_core.engine.index.SmallProducts).

The oracle: one BLAS thread (what a busy host gets) routes exactly as BLAS's own threads do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_limits

from r2router_core import ConfigError, ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.engine import index as index_module
from r2router_core.engine.index import SMALL_PRODUCT_MADDS, SmallProducts, set_small_product_threads

_BLAS = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]


def _blas_threads() -> int:
    """BLAS's thread count now (cheap: the controllers are found once, a fresh search takes milliseconds)."""
    return max(c.num_threads for c in _BLAS)


@pytest.fixture
def two_blas_threads() -> Iterator[None]:
    """BLAS with two threads for the test (CI may pin one), restored after."""
    with threadpool_limits(2, user_api="blas"):
        if _blas_threads() < 2:
            pytest.fail("could not give BLAS two threads; the test needs a multi-threaded BLAS")
        yield


@pytest.fixture
def router() -> R2Router:
    rng = np.random.default_rng(3)
    n, dim = 600, 512  # 600 x 512 float32: a product well inside SMALL_PRODUCT_MADDS
    config = RouterConfig(
        models=(ModelSpec("a", output_price=0.3), ModelSpec("b", output_price=2.0), ModelSpec("c", output_price=9.0)),
        budgets=(100, 400, None),
        k=40,
    )
    data = TrainingData(
        rng.standard_normal((n, dim), dtype=np.float32),
        config.model_names,
        config.budgets,
        rng.uniform(size=(n, 3, 3)),
        rng.uniform(10, 900, size=(n, 3)),
    )
    return R2Router(config, data)


def _decisions(router: R2Router, queries: np.ndarray) -> list[tuple[str, object, float, float]]:
    out = [router.route(q) for q in queries] + router.route_batch(queries[:8])
    return [(d.model, d.token_limit, d.predicted_quality, d.predicted_cost) for d in out]


def test_one_blas_thread_routes_exactly_as_blas_threads(router: R2Router, two_blas_threads: None) -> None:
    queries = np.random.default_rng(4).standard_normal((64, 512), dtype=np.float32)
    previous = set_small_product_threads("off")
    try:
        threaded = _decisions(router, queries)
        set_small_product_threads("one")
        single = _decisions(router, queries)
        set_small_product_threads("auto")
        auto = _decisions(router, queries)
    finally:
        set_small_product_threads(previous)
    assert [d[:2] for d in single] == [d[:2] for d in threaded] == [d[:2] for d in auto]
    np.testing.assert_allclose([d[2:] for d in single], [d[2:] for d in threaded], rtol=1e-6)
    assert len({d[:2] for d in threaded}) > 1  # the queries exercise more than one arm


def test_policy_one_lowers_blas_threads_during_the_product_only(two_blas_threads: None) -> None:
    guard = SmallProducts()
    guard.policy = "one"
    seen = guard.run(lambda: np.array([_blas_threads()]), madds=1000)
    assert seen[0] == 1
    assert _blas_threads() == 2  # restored
    big = guard.run(lambda: np.array([_blas_threads()]), madds=SMALL_PRODUCT_MADDS + 1)
    assert big[0] == 2  # large products keep BLAS's threads


def test_auto_switches_to_one_thread_after_a_stall_and_back_after_the_backoff(
    two_blas_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "_host_busy", lambda: False)  # as on a quiet host, whatever this one is
    guard = SmallProducts()
    fast = guard.run(lambda: np.array([_blas_threads()]), madds=1000)
    assert fast[0] == 2

    def stalled() -> np.ndarray:
        time.sleep(0.01)  # 10 ms: far beyond 4x the best time plus 0.5 ms
        return np.zeros(1)

    guard.run(stalled, madds=1000)
    assert guard._one_until > time.monotonic()
    assert guard.run(lambda: np.array([_blas_threads()]), madds=1000)[0] == 1
    assert _blas_threads() == 2

    guard._one_until = 0.0  # the backoff elapsed: the threads are tried again, and a new stall doubles it
    guard.run(stalled, madds=1000)
    assert guard._backoff >= 20.0  # 5 s, then x4 (a hiccup of this busy machine may have grown it once more)
    guard._one_until = 0.0
    assert guard.run(lambda: np.array([_blas_threads()]), madds=1000)[0] == 2


def test_a_first_product_that_stalls_is_not_taken_as_the_normal_time(two_blas_threads: None) -> None:
    guard = SmallProducts()

    def stalled() -> np.ndarray:
        time.sleep(0.02)  # 20 ms for 1e6 multiply-adds: 20 ns each, far slower than any core
        return np.zeros(1)

    guard.run(stalled, madds=1_000_000)  # the very first product, on a host already busy
    assert guard._one_until > time.monotonic()


def test_a_backoff_ending_on_a_busy_host_keeps_one_thread(
    two_blas_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = SmallProducts()
    guard._stalled(0.05)
    guard._one_until = 0.0  # the backoff ended
    monkeypatch.setattr(index_module, "_host_busy", lambda: True)
    assert guard.run(lambda: np.array([_blas_threads()]), madds=1000)[0] == 1  # no probe of the threads
    assert guard._one_until > time.monotonic()
    monkeypatch.setattr(index_module, "_host_busy", lambda: False)
    guard._one_until = 0.0
    assert guard.run(lambda: np.array([_blas_threads()]), madds=1000)[0] == 2  # a quiet host: threads again


def test_the_host_busy_probe_reads_the_runnable_tasks() -> None:
    assert isinstance(index_module._host_busy(), bool)
    runnable = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    assert runnable >= 1  # this process at least: the field read is the runnable count


def test_off_leaves_blas_alone_even_after_stalls(two_blas_threads: None) -> None:
    guard = SmallProducts()
    guard.policy = "off"
    guard._one_until = time.monotonic() + 60
    assert guard.run(lambda: np.array([_blas_threads()]), madds=1000)[0] == 2


def test_concurrent_one_thread_sections_restore_the_count_once(two_blas_threads: None) -> None:
    guard = SmallProducts()
    guard.policy = "one"
    inside = threading.Barrier(2, timeout=10)
    seen: list[int] = []

    def product() -> np.ndarray:
        inside.wait()  # both threads inside their section at once
        seen.append(_blas_threads())
        inside.wait()
        return np.zeros(1)

    workers = [threading.Thread(target=guard.run, args=(product, 1000)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=10)
    assert seen == [1, 1]
    assert _blas_threads() == 2 and guard._active == 0


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ConfigError, match="policy must be one of"):
        set_small_product_threads("two")
    assert index_module.small_products.policy in ("auto", "one", "off")


@pytest.mark.slow
def test_the_tail_latency_benchmark_runs_and_finds_the_same_decisions(tmp_path: Path) -> None:
    """benchmarks/bench_tail_latency.py with quick settings (a few seconds of burnt cores; no timing asserted)."""
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_tail_latency.py"
    out = tmp_path / "tail.json"
    argv = [sys.executable, str(script), "--calls", "20", "--rounds", "1", "--n-train", "200", "--dim", "64"]
    done = subprocess.run([*argv, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["same_decisions"] == {"n_queries": 256, "identical": True}
    assert set(report["busy"]["results"]) == {"paced", "back_to_back"}
    assert set(report["busy"]["results"]["paced"]) == {"off", "one", "auto"}
