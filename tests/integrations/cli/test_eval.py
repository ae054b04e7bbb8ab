"""``r2router eval`` and ``r2router calibrate`` end to end on the synthetic pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r2router_core import R2Router
from r2router_core.evaluation.datasets import make_synthetic_pool
from r2router_integrations.cli import main


def test_eval_synthetic_prints_the_table_and_writes_png_json_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["eval", "synthetic", "--n-queries", "300", "--folds", "3", "--k", "20", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert "synthetic" in lines[0] and "SYNTHETIC" in lines[0]
    assert all(col in lines[1] for col in ("accuracy", "USD/1K", "arena", "AUDC", "QNC"))
    assert any(line.startswith("R2-Router") for line in lines)
    assert any(line.startswith("point router (uncapped)") for line in lines)
    stem = tmp_path / "eval_synthetic-pool"
    saved = json.loads(stem.with_suffix(".json").read_text())
    assert saved["synthetic"] is True and saved["n_folds"] == 3 and saved["k"] == 20
    assert stem.with_suffix(".csv").read_text().splitlines()[0].startswith("name,kind,accuracy")
    assert stem.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "fold" in err  # the progress bar over folds, on stderr


def test_eval_a_long_format_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, _ = make_synthetic_pool(120, seed=2)
    lines = ["query,model,budget,quality,output_tokens,output_price"]
    for i, prompt in enumerate(data.prompts):
        for m, spec in enumerate(data.models):
            for b, budget in enumerate(data.budgets):
                cells = [
                    prompt,
                    spec.name,
                    "" if budget is None else budget,
                    data.quality[i, m, b],
                    data.tokens[i, m, b],
                ]
                lines.append(",".join(str(x) for x in [*cells, spec.output_price]))
    path = tmp_path / "my_outcomes.csv"
    path.write_text("\n".join(lines) + "\n")
    cache = tmp_path / "emb-cache"
    args = [
        str(path),
        "--embedder",
        "r2router-hash-embedder-32",
        "--cache-dir",
        str(cache),
        "--folds",
        "3",
        "--k",
        "10",
    ]
    code = main(["eval", *args, "--out", str(tmp_path / "out"), "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines()[0].startswith("my_outcomes: 120 queries, 3-fold CV, k=10, r2router-hash-embedder-32")
    assert (tmp_path / "out" / "eval_my_outcomes.png").is_file() and any(cache.rglob("*"))


def test_eval_rejects_an_unknown_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "no-such-dataset", "-q"]) == 1
    assert "routerarena" in capsys.readouterr().err
    assert main(["eval", "synthetic", "--export-routerarena", "arena", "-q"]) == 1
    assert "needs DATASET routerarena" in capsys.readouterr().err


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    data, emb = make_synthetic_pool(1000, seed=0)  # the router learns from the first 500 queries
    R2Router(data.config(k=20, lambda_=0.5), data.subset(range(500)).training_data(emb[:500])).save(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_calibrate_stores_the_lambda_in_the_checkpoint(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = checkpoint.parent / "calibrated"
    code = main(["calibrate", "--router", str(checkpoint), "--target", "cost=1.0", "--out", str(out_dir), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["met"] and result["cost_per_1k"] <= 1.0 and result["target"] == "cost=1"
    assert R2Router.from_pretrained(out_dir).config.lambda_ == result["lambda"] != 0.5
    assert R2Router.from_pretrained(checkpoint).config.lambda_ == 0.5  # --out leaves the source alone


def test_calibrate_on_a_dataset_in_place(
    checkpoint: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    code = main(
        ["calibrate", "--router", str(checkpoint), "synthetic", "--n-queries", "1000", "--target", "quality=0.6"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "target quality=0.6: met" in out
    # half of these queries trained the router: calibration says their predictions are in-sample
    assert "500 of the 1000 queries of synthetic-pool are in the router's training data" in caplog.text
    lam = float(next(line for line in out.splitlines() if line.startswith("lambda:")).split()[1])
    assert R2Router.from_pretrained(checkpoint).config.lambda_ == lam


def test_calibrate_needs_a_local_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--router", str(tmp_path / "nope"), "--target", "arena"]) == 1
    assert "checkpoint directory" in capsys.readouterr().err


def test_eval_ray_options_need_engine_ray(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "synthetic", "--ray-address", "auto", "-q"]) == 1
    assert "--ray-address and --concurrency need --engine ray" in capsys.readouterr().err
    assert main(["eval", "synthetic", "--engine", "ray", "--concurrency", "0", "-q"]) == 2  # a flag out of range
    assert "--concurrency must be at least 1, got 0" in capsys.readouterr().err
