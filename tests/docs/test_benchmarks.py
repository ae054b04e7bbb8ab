"""The benchmark scripts the README quotes still run end to end (quick settings; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(args: list[str], timeout: float) -> None:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"


@pytest.mark.slow
def test_routing_benchmark_runs_and_agrees_with_the_per_head_way(tmp_path: Path) -> None:
    out = tmp_path / "routing.json"
    _run(
        [
            str(BENCHMARKS / "bench_routing.py"),
            "--batch",
            "300",
            "--repeats",
            "30",
            "--sk-repeats",
            "2",
            "--rounds",
            "2",
            "--batch-repeats",
            "1",
            "--sk-batch-repeats",
            "1",
            "--agreement",
            "40",
            "--no-memory",
            "--out",
            str(out),
        ],
        timeout=600,
    )
    report = json.loads(out.read_text())
    assert report["agreement"]["same_decisions"] == report["agreement"]["n_queries"] == 40
    assert report["agreement"]["max_abs_diff_quality"] < 1e-6
    assert {"single_query", "batch", "environment"} <= set(report)


@pytest.mark.slow
def test_load_test_runs_with_no_errors_and_no_lost_requests(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    _run(
        [
            str(BENCHMARKS / "load_test_server.py"),
            "--concurrency",
            "1,10",
            "--seconds",
            "0.5",
            "--repeats",
            "1",
            "--train-prompts",
            "200",
            "--out",
            str(out),
        ],
        timeout=600,
    )
    report = json.loads(out.read_text())
    assert report["errors"] == 0 and report["lost"] == 0
    for level in ("1", "10"):
        for path in ("direct", "bare", "gateway"):
            numbers = report["levels"][level][path]
            assert numbers["errors"] == 0 and numbers["requests"] > 0, (level, path, numbers)
        assert report["levels"][level]["bare"]["rps_vs_bare"] == 1.0


SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if "__main__" in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_benchmark_script_imports_and_prints_its_help(script: Path) -> None:
    """A moved module breaks a benchmark only when someone runs it; its --help catches the import first."""
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{script.name} --help failed:\n{result.stderr[-3000:]}"
    assert "usage:" in result.stdout
