"""``r2router info`` on the R2-Router research release and on a router converted from it (no training rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r2router_core import R2Router
from r2router_integrations.cli import main
from tests.core.interop.test_research_release import write_release


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return write_release(tmp_path / "r2_router")


def test_info_refuses_the_pickles_unless_trusted(release: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(release)]) == 1
    assert "--trust-pickles" in capsys.readouterr().err


def test_info_says_the_router_has_no_training_rows(release: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(release), "--trust-pickles"]) == 0
    out = capsys.readouterr().out
    assert "no training rows (converted from R2-Router research release" in out
    assert "skipped:    selfhosted" in out
    assert "vendor/big" in out and "predictor=ridge" in out


def test_info_of_the_saved_conversion_needs_no_pickles(
    release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = R2Router.from_pretrained(release, trust_pickles=True).save(tmp_path / "ours")
    assert main(["info", str(saved), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["n_train"], info["observed_fraction"]) == (None, None)
    assert info["selection"]["source"]["format"] == "R2-Router research release"
