"""``r2router eval --router DIR TEST``: a trained checkpoint scored on a held-out file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r2router_core.evaluation import RoutingDataset
from r2router_core.evaluation.datasets import make_synthetic_pool
from r2router_integrations.cli import main

EMBEDDER = "r2router-hash-embedder-32"


def write_long(data: RoutingDataset, rows: range, path: Path) -> Path:
    lines = ["query_id,query,model,budget,quality,output_tokens,output_price,input_price"]
    for i in rows:
        for m, spec in enumerate(data.models):
            for b, budget in enumerate(data.budgets):
                cells = [data.query_ids[i], data.prompts[i], spec.name, "" if budget is None else budget]
                cells += [data.quality[i, m, b], data.tokens[i, m, b], spec.output_price, spec.input_price]
                lines.append(",".join(str(x) for x in cells))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("heldout")
    data, _ = make_synthetic_pool(200, seed=4)
    train = write_long(data, range(140), tmp / "train.csv")
    test = write_long(data, range(140, 200), tmp / "test.csv")
    ckpt = tmp / "router"
    common = ["--embedder", EMBEDDER, "--cache-dir", str(tmp / "cache"), "-q"]
    assert main(["train", str(train), "--out", str(ckpt), "--k", "10", "--folds", "3", *common]) == 0
    return ckpt, test, tmp


def test_eval_router_scores_the_held_out_file(split: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, test, tmp = split
    capsys.readouterr()
    code = main(["eval", "--router", str(ckpt), str(test), "--cache-dir", str(tmp / "cache"), "--out", str(tmp / "o")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "60 held-out queries" in out.splitlines()[0]
    for row in ("R2-Router", "best single (chosen on train)", "best single on test (hindsight)", "cheapest", "random"):
        assert row in out
    assert "router vs best single (chosen on train:" in out and "TRUE outcomes" in out
    saved = json.loads((tmp / "o" / "heldout_test.json").read_text())
    assert saved["kind"] == "held_out" and saved["arena_scale"] == 100 and saved["n_queries"] == 60
    assert 0 < saved["methods"][0]["arena_score"] <= 100
    assert (tmp / "o" / "heldout_test.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_router_without_test_or_store_is_refused(split: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, _, _ = split
    assert main(["eval", "--router", str(ckpt)]) == 1
    err = capsys.readouterr().err
    assert "needs TEST" in err and len(err.strip().splitlines()) == 1


def test_eval_takes_a_predictor(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["eval", "synthetic", "--n-queries", "120", "--folds", "2", "--k", "10", "-q", "--out", str(tmp_path)]
    assert main([*args, "--predictor", "ridge"]) == 0
    out = capsys.readouterr().out
    assert "router vs best single (chosen on train)" in out
    with pytest.raises(SystemExit):  # argparse refuses an unknown predictor
        main(["eval", "synthetic", "--predictor", "nope"])


def test_train_into_an_existing_router_needs_force_and_replaces_it_whole(
    split: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    _, test, tmp = split
    common = ["--embedder", EMBEDDER, "--cache-dir", str(tmp / "cache"), "-q", "--k", "10", "--lambda", "0.5"]
    other = tmp / "other"
    assert main(["train", str(test), "--out", str(other), "--predictor", "ridge", *common]) == 0
    assert (other / "predictor").is_dir()
    capsys.readouterr()
    assert main(["train", str(test), "--out", str(other), *common]) == 1
    err = capsys.readouterr().err
    assert "already exists; pass --force" in err and len(err.strip().splitlines()) == 1
    assert main(["train", str(test), "--out", str(other), "--force", *common]) == 0
    assert not (other / "predictor").exists()  # the ridge weights went with the old checkpoint
    assert main(["info", str(other)]) == 0


def test_info_stars_the_chosen_lambda_and_shows_arena_on_0_to_100() -> None:
    from r2router_integrations.cli.info import selection_lines

    curve = {"lambda": [0.0, 0.1, 0.2, 0.9], "quality": [0.8, 0.8, 0.8, 0.5], "cost_per_1k": [2.0, 2.0, 2.0, 0.1]}
    lam = {"lambda": 0.1, "target": "arena", "n_folds": 5, "accuracy": 0.8, "cost_per_1k": 2.0, "curve": curve}
    lines = selection_lines({"lambda": {**lam, "arena_score": 70.5, "arena_scale": 100}})
    starred = [line for line in lines if line.startswith("*")]
    assert len(starred) == 1 and starred[0].split()[1] == "0.1"  # the chosen lambda, not the first of its tie
    assert "(arena 70.50 of 100)" in lines[1]
    old = selection_lines({"lambda": {**lam, "arena_score": 0.705}})  # checkpoints before the one scale
    assert "(arena 70.50 of 100)" in old[1]


def test_train_summary_and_info_say_whether_routing_beats_the_best_single_arm(
    split: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    _, test, tmp = split
    out_dir = tmp / "guarded"
    args = ["train", str(test), "--out", str(out_dir), "--embedder", EMBEDDER, "--cache-dir", str(tmp / "cache")]
    assert main([*args, "--k", "10", "--folds", "3", "-q"]) == 0
    out = capsys.readouterr().out
    guard_line = next(line for line in out.splitlines() if line.startswith("vs best:"))
    assert "best single arm" in guard_line and "3-fold CV" in guard_line
    assert main(["info", str(out_dir)]) == 0
    assert "vs best single (CV): routing" in capsys.readouterr().out


def test_calibrate_on_another_file_says_it_is_not_the_training_data(
    split: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, test, tmp = split
    out = tmp / "calibrated"
    args = ["calibrate", "--router", str(ckpt), str(test), "--target", "arena", "--out", str(out), "--json"]
    assert main([*args, "--cache-dir", str(tmp / "cache")]) == 0
    captured = capsys.readouterr()
    assert "not on the router's training data" in captured.err
    assert json.loads(captured.out)["arena_scale"] == 100
