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


def test_info_says_what_the_router_is_its_prices_and_availability(
    release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(release), "--trust-pickles"]) == 0
    out = capsys.readouterr().out
    assert "no training rows: fitted ridge heads converted from R2-Router research release" in out
    assert "settings:   predictor=ridge alpha=10 lambda=0.99999" in out
    assert "100 tokens when unknown" in out
    for absent in ("k=", "metric=", "weights=", "nan", "mean quality", "skipped"):  # nothing a ridge does not have
        assert absent not in out
    rows = {line.split()[0]: line.split()[2:] for line in out.splitlines() if line.startswith(("big ", "selfhosted "))}
    assert rows == {"big": ["1.25", "10", "yes"], "selfhosted": ["0.02", "0.04", "no"]}


def test_info_shows_free_and_not_given_prices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from r2router_core import ModelSpec, RouterConfig, TrainingData

    pool = (ModelSpec("local", output_price=0, input_price=0), ModelSpec("mystery", output_price=2.0))
    config = RouterConfig(models=pool, budgets=(100,), k=2)
    rng = np.random.default_rng(0)
    data = TrainingData(
        rng.standard_normal((4, 8)).astype(np.float32), ("local", "mystery"), (100,), rng.random((4, 2, 1)),
        np.full((4, 2), 50.0),
    )  # fmt: skip
    saved = R2Router(config, data).save(tmp_path / "r")
    assert main(["info", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "free" in out.split("local", 1)[1].splitlines()[0]
    assert "not given" in out.split("\nmystery", 1)[1].splitlines()[0]
    assert "prices not given for mystery" in out
    assert "k=2 alpha=1 blend_weight=0.5 metric=cosine weights=distance" in out and "mean quality" in out


def test_info_of_the_saved_conversion_needs_no_pickles(
    release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = R2Router.from_pretrained(release, trust_pickles=True).save(tmp_path / "ours")
    assert main(["info", str(saved), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["n_train"], info["observed_fraction"]) == (None, None)
    assert info["selection"]["source"]["format"] == "R2-Router research release"
    assert info["default_input_tokens"] == 100
    assert [m["name"] for m in info["models"] if m.get("available") is False] == ["selfhosted", "remapped"]
