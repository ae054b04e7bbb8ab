"""The scale benchmark of docs/scale.md still runs end to end (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_scale_benchmark_runs_and_ann_agrees_with_exact(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    args = ["--sizes", "3000", "--queries", "100", "--single", "10", "--out", str(out)]
    args += ["--datasets", "routerarena", "--embedder", "r2router-hash-embedder-64"]  # the real-data path, no weights
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_scale.py"), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["n"] == 3000 and row["decision_agreement"] >= 0.95
    assert row["open_rss_anon_mb"] < row["embeddings_mb"]  # the checkpoint's matrix is mapped, not copied
    assert row["open_single_ms"] > 0 and row["open_inline_labels_s"] > 0
    (real,) = result["datasets"]
    assert real["dataset"] == "routerarena" and real["n"] + real["queries"] == 809
    assert real["auto_index"] == "exact" and 0 <= real["decision_agreement"] <= 1
