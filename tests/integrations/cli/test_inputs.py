"""``train``, ``eval`` and ``calibrate`` read the same DATA: a card-layout directory or a long-format file with prices.

Errors speak the command line: they name the flag or file to fix, never a Python call.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from r2router_core import ModelSpec, R2Router
from r2router_core.evaluation.datasets import load_long_format, make_synthetic_pool
from r2router_core.testing import HashEmbedder
from r2router_integrations.cli import main

EMBEDDER = "r2router-hash-embedder-32"
PRICES = {
    "cheap": {"output_price": 0.5, "input_price": 0},
    "strong": {"output_price": 10.0, "input_price": 2.5, "full_name": "acme/x"},
}


def write_outcomes(path: Path, *, n: int = 90, prices: bool = False) -> Path:
    """Long-format outcomes of the synthetic pool renamed to the two models of PRICES (CSV or JSONL by suffix)."""
    data, _ = make_synthetic_pool(n, seed=3)
    records = []
    for i, prompt in enumerate(data.prompts):
        for m, name in enumerate(PRICES):
            for b, budget in enumerate(data.budgets):
                record = {"query": prompt, "model": name, "budget": budget}
                record |= {"quality": float(data.quality[i, m, b]), "output_tokens": float(data.tokens[i, m, b])}
                if prices:
                    record |= {"output_price": PRICES[name]["output_price"], "input_price": PRICES[name]["input_price"]}
                records.append(record)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    else:
        header = list(records[0])
        rows = [",".join("" if r[k] is None else str(r[k]) for k in header) for r in records]
        path.write_text("\n".join([",".join(header), *rows]) + "\n", encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def card_dir(tmp_path: Path, text_router: R2Router) -> Path:
    return text_router.save(tmp_path / "card")


# -- train ------------------------------------------------------------------------------------------------------


def test_train_refuses_a_price_not_given_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_outcomes(tmp_path / "outcomes.csv")
    models = {"cheap": {"output_price": 0.5}, "strong": PRICES["strong"]}  # cheap's input price left out
    (tmp_path / "models.json").write_text(json.dumps(models), encoding="utf-8")
    args = ["train", str(path), "--models", str(tmp_path / "models.json"), "--out", str(tmp_path / "o"), "-q"]
    code, out, err = run(capsys, *args, "--embedder", "no-such-embedder")  # never loaded: prices come first
    assert code != 0 and out == "" and not (tmp_path / "o").exists()
    assert err.strip().count("\n") == 0 and "prices not given (cheap: input_price)" in err and "0 for a free" in err
    models["cheap"]["input_price"] = 0  # free, said so
    (tmp_path / "models.json").write_text(json.dumps(models), encoding="utf-8")
    code, out, err = run(capsys, *args, "--embedder", EMBEDDER)
    assert code == 0, err
    assert "prices:    cheap free/0.5, strong 2.5/10 (USD per 1M tokens, in/out)" in out


@pytest.mark.parametrize(
    ("suffix", "models_file"), [(".csv", None), (".jsonl", "models.json"), (".csv", "models.yaml")]
)
def test_train_on_a_long_format_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str, models_file: str | None
) -> None:
    path = write_outcomes(tmp_path / f"outcomes{suffix}", prices=models_file is None)
    args = ["train", str(path), "--out", str(tmp_path / "ckpt"), "--embedder", EMBEDDER, "--k", "7", "-q"]
    if models_file == "models.json":
        (tmp_path / models_file).write_text(json.dumps(PRICES), encoding="utf-8")
    elif models_file == "models.yaml":
        lines = [f"  {m}: {json.dumps(spec)}" for m, spec in PRICES.items()]  # JSON flow maps are YAML
        (tmp_path / models_file).write_text("models:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    if models_file:
        args += ["--models", str(tmp_path / models_file)]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    want = load_long_format(path, models=None if models_file is None else _specs())
    assert out.startswith(f"trained on 90 queries x 2 models x {len(want.budgets)} budgets (32-dim embeddings)")
    router = R2Router.from_pretrained(tmp_path / "ckpt")
    assert router.config.models == want.models and router.config.budgets == want.budgets
    assert (router.config.k, router.config.embedder) == (7, EMBEDDER)
    np.testing.assert_array_equal(router.training_data.quality, want.quality)
    np.testing.assert_allclose(router.training_data.embeddings, HashEmbedder(32).embed(want.prompts), rtol=1e-6)


def _specs() -> dict[str, ModelSpec]:
    return {name: ModelSpec(name, **spec) for name, spec in PRICES.items()}  # type: ignore[arg-type]


def test_a_trained_long_format_router_routes_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_outcomes(tmp_path / "outcomes.csv", prices=True)
    assert main(["train", str(path), "--out", str(tmp_path / "ckpt"), "--embedder", EMBEDDER, "-q"]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "route", "Arithmetic: what is 2 + 2?", "--router", str(tmp_path / "ckpt"), "--json")
    assert code == 0, err
    assert json.loads(out)["model"] in PRICES


# -- eval and calibrate on the same inputs -------------------------------------------------------------------------


def test_eval_a_card_layout_directory(tmp_path: Path, card_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "eval", str(card_dir), "--folds", "3", "--k", "5", "--out", str(tmp_path), "-q")
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"card: 60 queries, 3-fold CV, k=5, {EMBEDDER}")


def test_eval_a_long_format_file_priced_by_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_outcomes(tmp_path / "outcomes.jsonl")
    (tmp_path / "models.json").write_text(json.dumps(PRICES), encoding="utf-8")
    args = [str(path), "--models", str(tmp_path / "models.json"), "--embedder", EMBEDDER, "--folds", "3", "--k", "10"]
    code, out, err = run(capsys, "eval", *args, "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path), "-q")
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"outcomes: 90 queries, 3-fold CV, k=10, {EMBEDDER}")


def test_calibrate_on_a_card_layout_and_a_long_format_file(
    tmp_path: Path, card_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "calibrate", "--router", str(card_dir), str(card_dir), "--target", "arena", "--json")
    assert code == 0, err
    assert json.loads(out)["calibrated_on"] == "card (60 queries) routed by the checkpoint"
    path = write_outcomes(tmp_path / "outcomes.csv", prices=True)
    ckpt = tmp_path / "ckpt"
    assert main(["train", str(path), "--out", str(ckpt), "--embedder", EMBEDDER, "-q"]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "calibrate", "--router", str(ckpt), str(path), "--target", "arena", "--json", "-q")
    assert code == 0, err
    result = json.loads(out)
    assert result["calibrated_on"] == "outcomes (90 queries) routed by the checkpoint"
    assert R2Router.from_pretrained(ckpt).config.lambda_ == result["lambda"]


# -- errors that speak CLI ---------------------------------------------------------------------------------------


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith(f"r2router {argv[0]}: error: ") and "Traceback" not in err
    assert "models=" not in err and "RouterConfig(" not in err and "config=" not in err  # no Python-API hints
    return err


@pytest.mark.parametrize("command", ["train", "eval", "calibrate"])
def test_missing_prices_name_the_models_flag(
    tmp_path: Path, card_dir: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = write_outcomes(tmp_path / "outcomes.csv")
    extra = {
        "train": ["--out", str(tmp_path / "o")],
        "eval": ["-q"],
        "calibrate": ["--router", str(card_dir), "--target", "arena"],
    }[command]
    err = _error(capsys, command, str(path), *extra)
    assert f"{path}:2: no output_price for 'cheap'" in err
    assert "pass --models FILE" in err and "output_price" in err


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("query,model,budget,quality,output_tokens,output_price\nq,cheap,100,0.5,3,1\nq2,cheap,100,high,3,1\n",
         "{path}:3: quality must be a number, got 'high'"),
        ("query,model,budget,quality,output_tokens\n", "holds no rows"),
    ],
)  # fmt: skip
def test_an_unreadable_csv_names_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needle: str
) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text(content, encoding="utf-8")
    err = _error(capsys, "train", str(path), "--out", str(tmp_path / "o"), "--embedder", EMBEDDER)
    assert needle.format(path=path) in err


def test_an_unreadable_jsonl_names_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_text('{"query": "q", "model": "cheap", "budget": 1, "quality": 1, "output_tokens": 1}\n{oops\n')
    assert f"{path}:2: not valid JSON" in _error(capsys, "eval", str(path), "-q")


@pytest.mark.parametrize(
    ("content", "suffix", "needle"),
    [
        ('{"cheap": {"output_pric": 1}}', ".json", "model 'cheap' has unknown keys ['output_pric']"),
        ('{"cheap": {"input_price": 1}}', ".json", "model 'cheap' has no output_price"),
        ('{"cheap": {"output_price": -1}}', ".json", "output_price of 'cheap'"),
        ('{"cheap": 1.0}', ".json", "model 'cheap' must map to {output_price, input_price, full_name}"),
        ("[1, 2]", ".json", "expected a mapping model -> {output_price, input_price, full_name}"),
        ('{\n"cheap": ', ".json", "{file}:2: not valid JSON"),
        ("cheap: [\n", ".yaml", "{file}:2: not valid YAML"),
    ],
)
def test_a_bad_models_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, suffix: str, needle: str
) -> None:
    path = write_outcomes(tmp_path / "outcomes.csv")
    models = tmp_path / f"models{suffix}"
    models.write_text(content, encoding="utf-8")
    err = _error(capsys, "train", str(path), "--out", str(tmp_path / "o"), "--models", str(models))
    assert f"--models {models}" in err and needle.replace("{file}", str(models)) in err


def test_a_missing_models_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_outcomes(tmp_path / "outcomes.csv")
    err = _error(capsys, "eval", str(path), "--models", str(tmp_path / "nope.json"))
    assert f"--models {tmp_path / 'nope.json'}: cannot read it" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "{tmp}/nope.csv"], "{tmp}/nope.csv does not exist; pass a card-layout directory"),
        (["train", "{card}/training_data"], "without the pool's prices; pass --config FILE"),
        (["train", "{card}", "--models", "{card}/config.json"], "--models does not apply"),
        (["eval", "synthetic", "--config", "{card}/config.json"], "--config does not apply"),
        (["train", "synthetic"], "comes with vectors but no embedder"),
        (["calibrate", "--router", "{card}", "--target", "arena", "--models", "m.json"], "--models describes DATASET"),
    ],
)
def test_input_errors_name_the_argument(
    tmp_path: Path, card_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    argv = [a.format(tmp=tmp_path, card=card_dir) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "o")]
    assert needle.format(tmp=tmp_path, card=card_dir) in _error(capsys, *argv)


def test_train_without_embedder_embeds_with_minilm_in_onnx_runtime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The measured default for new routers: the checkpoint records the ONNX backend, 'auto' loads it back,
    and its vectors are PyTorch MiniLM's (cosine > 0.999: the same weights, another runtime)."""
    from r2router_core.embedders import TRAINING_DEFAULT, default_embedder, load_embedder

    path = write_outcomes(tmp_path / "outcomes.csv", n=40, prices=True)
    code, _, err = run(capsys, "train", str(path), "--out", str(tmp_path / "ckpt"), "--k", "5", "-q")
    assert code == 0, err
    router = R2Router.from_pretrained(tmp_path / "ckpt", embedder="auto")
    assert router.config.embedder == load_embedder(TRAINING_DEFAULT).id == f"{default_embedder().id}@onnx"
    prompts = ["what is 12 times 7", "write a haiku about rain", "explain recursion to a child"]
    via_onnx, via_torch = router.embed(prompts), default_embedder().embed(prompts)
    assert np.min(np.sum(via_onnx * via_torch, axis=1)) > 0.999  # both L2-normalised
    assert len(router.route_texts(prompts)) == 3
