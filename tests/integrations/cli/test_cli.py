"""The ``r2router`` command: train, info, route (text, --verbose, --json, options), errors and exit codes.

Commands run in-process through ``r2router_integrations.cli.main``; one test runs the installed console script.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.engine.config import format_budget
from r2router_core.testing import HashEmbedder
from r2router_integrations import cli as cli_module
from r2router_integrations.cli import main

CONSOLE_SCRIPT = Path(sys.executable).with_name("r2router")


@pytest.fixture
def data_dir(tmp_path: Path, text_router: R2Router) -> Path:
    """A card-layout directory (config.json + training_data/) over HashEmbedder embeddings."""
    return text_router.save(tmp_path / "data")


@pytest.fixture
def ckpt(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A checkpoint written by ``r2router train``."""
    assert main(["train", str(data_dir), "--out", str(tmp_path / "ckpt")]) == 0
    capsys.readouterr()
    return tmp_path / "ckpt"


@pytest.fixture(autouse=True)
def _no_router_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("R2ROUTER_ROUTER", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def api_router(ckpt: Path) -> R2Router:
    return R2Router.from_pretrained(ckpt, embedder=HashEmbedder(dim=32))


# -- train / info ------------------------------------------------------------------------------------


def test_train_prints_a_summary_and_writes_a_loadable_checkpoint(
    tmp_path: Path, data_dir: Path, text_router: R2Router, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "trained"
    code, out, err = run(capsys, "train", str(data_dir), "--out", str(out_dir), "--k", "3", "--lambda", "0.5")
    assert code == 0 and err == ""
    assert out.startswith("trained on 60 queries x 2 models x 2 budgets (32-dim embeddings) in ")
    assert out.splitlines()[0].endswith(f"saved to {out_dir.resolve()}")
    loaded = R2Router.from_pretrained(out_dir)
    assert (loaded.config.k, loaded.config.lambda_) == (3, 0.5)
    assert loaded.config.embedder == text_router.config.embedder
    assert loaded.config.models == text_router.config.models
    np.testing.assert_array_equal(loaded.training_data.quality, text_router.training_data.quality)


def test_train_a_bare_training_directory_with_config(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "train", str(data_dir / "training_data"), "--config", str(data_dir / "config.json"),
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert code == 0 and "trained on 60 queries" in out
    assert (tmp_path / "o" / "config.json").is_file()


def test_info_text(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "info", str(ckpt))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"router:     {ckpt}"
    assert lines[1] == "embedder:   r2router-hash-embedder-32 (32-dim)"
    assert lines[2] == "training:   60 queries, 100.0% of (query, model, budget) cells observed"
    lam = R2Router.from_pretrained(ckpt).config.lambda_  # calibrated by CV in train (the data dir says 0.9)
    assert lam != 0.9
    settings = "predictor=knn k=5 alpha=1 blend_weight=0.5 metric=cosine weights=distance"
    assert lines[3] == f"settings:   {settings} lambda={lam}"
    assert lines[4] == "budgets:    100, 400"
    assert lines[6].split()[:5] == ["small", "small", "free", "0.5", "yes"]  # input price 0, stated so
    assert lines[7].split()[:5] == ["big", "big", "free", "10", "yes"]
    # mean quality per model, recomputed here: small (0.2..0.9 by topic), big
    quality = R2Router.from_pretrained(ckpt).training_data.quality
    assert float(lines[6].split()[-1]) == pytest.approx(quality[:, 0].mean(), abs=5e-4)
    assert float(lines[7].split()[-1]) == pytest.approx(quality[:, 1].mean(), abs=5e-4)


def test_info_json(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", str(ckpt), "--json")
    assert code == 0
    info = json.loads(out)
    config = RouterConfig.load(ckpt / "config.json")
    assert {k: v for k, v in info.items() if k not in ("n_train", "observed_fraction")} == config.to_dict()
    assert (info["n_train"], info["observed_fraction"]) == (60, 1.0)


def test_info_reads_the_router_option_and_env(
    ckpt: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "info", "--router", str(ckpt))[0] == 0
    monkeypatch.setenv("R2ROUTER_ROUTER", str(ckpt))
    code, out, _ = run(capsys, "info")
    assert code == 0 and out.startswith(f"router:     {ckpt}")


# -- route ---------------------------------------------------------------------------------------------


def test_route_prints_the_apis_decision(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "route", "math question number 4", "--router", str(ckpt))
    assert code == 0 and err == ""
    d = api_router(ckpt).route_text("math question number 4")
    assert out.splitlines() == [
        f"model:             {d.model} ({d.model_full_name})",
        f"token budget:      {format_budget(d.token_limit)}",
        f"predicted quality: {d.predicted_quality:.3f}",
        f"predicted tokens:  {d.predicted_tokens:.0f}",
        f"predicted cost:    ${d.predicted_cost:.6f} per query",
        f"lambda:            {d.lambda_}",
    ]


def test_route_verbose_ranks_every_candidate(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "route", "code question 2", "--router", str(ckpt), "-v", "--max-budget", "100")
    assert code == 0
    d = api_router(ckpt).route_text("code question 2", max_budget=100)
    table = out.split("\n\n", 1)[1].splitlines()
    assert table[0].split() == ["rank", "model", "budget", "quality", "tokens", "cost", "$", "utility"]
    rows = table[1:]
    assert len(rows) == len(d.candidates) == 4
    for rank, (row, cand) in enumerate(zip(rows, d.candidates, strict=True), 1):
        cells = row.split()
        assert cells[:3] == [str(rank), cand.model, format_budget(cand.token_limit)]
        assert float(cells[3]) == pytest.approx(cand.predicted_quality, abs=5e-4)
        assert row.endswith("(excluded)") == (not cand.eligible)
    assert sum(row.endswith("(excluded)") for row in rows) == 2  # the 400-token arms


def test_route_json_has_the_decision_fields(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "route", "poem question 1", "--router", str(ckpt), "--json")
    assert code == 0
    got = json.loads(out)
    d = api_router(ckpt).route_text("poem question 1")
    assert got == {"prompt": "poem question 1", **d.to_dict()}
    code, out, _ = run(capsys, "route", "poem question 1", "math question 2", "--router", str(ckpt), "--json", "-v")
    both = json.loads(out)
    assert [x["prompt"] for x in both] == ["poem question 1", "math question 2"]
    assert len(both[1]["candidates"]) == 4


def test_route_several_prompts_text(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "route", "a math question", "a poem", "--router", str(ckpt))
    assert code == 0
    assert out.count("model:") == 2 and "prompt: a math question" in out and "prompt: a poem" in out


@pytest.mark.parametrize(
    ("argv", "options"),
    [
        (["--lambda", "0"], {"lambda_": 0.0}),
        (["--lambda", "1"], {"lambda_": 1.0}),
        (["--models", "small"], {"allowed_models": ["small"]}),
        (["--models", "big, small", "--lambda", "0"], {"allowed_models": ["big", "small"], "lambda_": 0.0}),
        (["--max-budget", "100", "--lambda", "0"], {"max_budget": 100, "lambda_": 0.0}),
        (["--max-cost", "0.0006", "--lambda", "0"], {"max_cost": 0.0006, "lambda_": 0.0}),
    ],
)
def test_routing_options_act_as_in_the_api(
    ckpt: Path, capsys: pytest.CaptureFixture[str], argv: list[str], options: dict[str, Any]
) -> None:
    prompt = "math question number 9"
    code, out, _ = run(capsys, "route", prompt, "--router", str(ckpt), "--json", *argv)
    assert code == 0
    got = json.loads(out)
    want = api_router(ckpt).route_text(prompt, **options)
    assert (got["model"], got["token_limit"], got["lambda"]) == (want.model, want.token_limit, want.lambda_)


def test_options_change_the_decision(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompt = "math question number 9"

    def decide(*argv: str) -> tuple[str, int | None]:
        code, out, _ = run(capsys, "route", prompt, "--router", str(ckpt), "--json", *argv)
        assert code == 0
        got = json.loads(out)
        return got["model"], got["token_limit"]

    assert decide("--lambda", "0") == ("big", 400)  # best quality
    assert decide("--lambda", "1") == ("small", 100)  # cheapest (equal tokens: the first budget)
    assert decide("--lambda", "0", "--models", "small") == ("small", 400)
    assert decide("--lambda", "0", "--max-budget", "100") == ("big", 100)
    assert decide("--lambda", "0", "--max-cost", "0.0006")[0] == "small"  # big costs 10 $/M x 300 tokens


def test_route_json_is_strict_json_with_unpredictable_arms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    embedder = HashEmbedder(dim=16)
    prompts = [f"topic {i}" for i in range(8)]
    quality = np.full((8, 2, 1), 0.5)
    quality[:, 1, 0] = np.nan  # model b was never run: its arm has no prediction
    config = RouterConfig(
        models=(ModelSpec("a", output_price=1.0), ModelSpec("b", output_price=1.0)), budgets=(100,), k=2,
        embedder=embedder.id,
    )  # fmt: skip
    data = TrainingData(embedder.embed(prompts), ("a", "b"), (100,), quality, np.full((8, 2), 50.0))
    R2Router(config, data).save(tmp_path)
    code, out, _ = run(capsys, "route", "topic 3", "--router", str(tmp_path), "--json", "-v")
    assert code == 0
    got = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    b_arm = next(c for c in got["candidates"] if c["model"] == "b")
    assert b_arm["predicted_quality"] is None and b_arm["eligible"] is False


def test_log_level_before_the_command(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--log-level", "info", "route", "a poem", "--router", str(ckpt))
    assert code == 0 and out.startswith("model:")


# -- errors and exit codes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["route", "hello"], "no router given: pass --router DIR"),
        (["route", "hello", "--router", "{ckpt}", "--lambda", "1.5"], "lambda must be a number in [0, 1]"),
        (["route", "hello", "--router", "{ckpt}", "--models", "gpt-9"], "unknown model 'gpt-9'; the pool is"),
        (["route", "hello", "--router", "{ckpt}", "--max-cost", "0"], "no (model, budget) candidate is left"),
        (["route", "hello", "--router", "{ckpt}", "--max-budget", "0"], "max_budget must be a positive int"),
        (["route", " ", "--router", "{ckpt}"], "prompt 0 is empty or whitespace only"),
        (["route", "hello", "--router", "{missing}"], "is not a checkpoint directory"),
        (["info", "{missing}"], "is not a checkpoint directory"),
        (["info"], "no router given"),
        (["train", "{missing}", "--out", "{ckpt}-2"], "does not exist"),
        (["train", "{ckpt}", "--out", "{ckpt}-2", "--k", "0"], "k must be an int >= 1"),
        (["route", "hello", "--router", "{ckpt}", "--embedder", "r2router-hash-embedder-8"], "trained with embedder"),
    ],
)
def test_errors_go_to_stderr_with_exit_1(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    argv = [a.format(ckpt=ckpt, missing=tmp_path / "missing" / "dir") for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert out == ""
    assert err.startswith(f"r2router {argv[0]}: error: ") and needle in err
    assert "Traceback" not in err


def test_embedder_mismatch_names_the_needed_embedder(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "route", "x", "--router", str(ckpt), "--embedder", "r2router-hash-embedder-8")
    assert code == 1 and "Attach 'r2router-hash-embedder-32'" in err


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 2 and out == ""
    assert "usage: r2router" in err and "route" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["route", "x", "--lambda", "high"],
        ["bogus-command"],
        ["--log-level", "chatty", "info"],
        ["route"],
        ["--log-level"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["route", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--router", "--lambda", "--models", "--max-budget", "--max-cost", "--verbose", "--json"):
        assert option in out


def test_a_command_whose_extra_is_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli_module.COMMANDS, "fancy", "r2router_no_such_module.cli")
    monkeypatch.setitem(cli_module.EXTRAS, "fancy", "fancy-extra")
    code, out, err = run(capsys, "fancy", "--now")
    assert code == 1 and out == ""
    assert "'r2router fancy' needs the optional package 'r2router_no_such_module'" in err
    assert "pip install 'r2router[fancy-extra]'" in err
    with pytest.raises(SystemExit) as info:  # the other commands still work
        main(["--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert "route" in help_text and "fancy" not in help_text


def test_console_script_help() -> None:
    assert CONSOLE_SCRIPT.is_file(), f"{CONSOLE_SCRIPT} is not installed"
    done = subprocess.run([str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: r2router")
    for command in ("route", "train", "info"):
        assert command in done.stdout


def test_train_auto_records_the_cv_choices_and_info_shows_them(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "auto"
    code, out, _ = run(capsys, "train", str(data_dir), "--out", str(out_dir), "--predictor", "auto", "--folds", "3")
    assert code == 0
    config = R2Router.from_pretrained(out_dir).config
    record = config.selection or {}
    assert config.predictor in ("knn", "ridge", "logistic", "blend")
    assert f"lambda:    {config.lambda_:.6g} (calibrated by CV for arena)" in out
    assert record["predictor"]["chosen"] in out and record["lambda"]["lambda"] == config.lambda_
    code, info, _ = run(capsys, "info", str(out_dir))
    assert code == 0
    assert f"predictor chosen by 3-fold CV (arena score): {record['predictor']['chosen']}" in info
    assert f"lambda {config.lambda_:.6g} chosen by 3-fold CV for arena" in info


def test_train_with_a_lambda_keeps_it_and_skips_calibration(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "train", str(data_dir), "--out", str(tmp_path / "c"), "--lambda", "0.3")
    assert code == 0 and "lambda:    0.3 (as given)" in out
    assert R2Router.from_pretrained(tmp_path / "c").config.selection is None
