"""The example runs offline and prints the chosen engine, budget and answer."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llamaindex_router_query_engine.py"


def test_example_runs_offline(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "engine big@400: model=big budget=400" in out
    assert "engine small@100: model=small budget=100" in out
    assert out.count("answer (400 words)") == 2 and out.count("answer (100 words)") == 2
    assert "max_tokens seen by the big model's calls: [400]" in out
