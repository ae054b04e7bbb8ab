"""What the command line shows while it loads an embedder: a quick error for a bad id, no progress bars."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.embedders import MINILM_ID
from r2router_integrations.cli import main

REPO = Path(__file__).resolve().parents[3]


def test_an_embedder_id_that_cannot_load_fails_with_the_valid_ids(
    text_router: R2Router, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sentence_transformers
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loads: list[str] = []
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", lambda name, **kw: loads.append(name))
    ckpt = text_router.save(tmp_path / "ckpt")
    assert main(["route", "hi", "--router", str(ckpt), "--embedder", "hash"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("r2router route: error: could not load 'hash' from the Hugging Face Hub")
    assert "'minilm'" in err and "'r2router-hash-embedder-<dim>'" in err and "Traceback" not in err
    assert loads == []  # failed before any model load (and its Hub retries)


@pytest.mark.slow
def test_a_warning_level_load_prints_nothing_but_the_answer(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    config = RouterConfig(
        models=(ModelSpec("a", output_price=1.0, input_price=0.5), ModelSpec("b", output_price=2.0, input_price=1.0)),
        budgets=(100,),
        k=5,
        embedder=MINILM_ID,
    )
    quality = rng.uniform(size=(10, 2, 1))
    R2Router(config, TrainingData(rng.normal(size=(10, 384)), ("a", "b"), (100,), quality, np.ones((10, 2)))).save(
        tmp_path / "ckpt"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE")}
    env |= {"HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "r2router_integrations", "route", "hello", "--router", str(tmp_path / "ckpt")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no "Loading weights" bar: the default log level is WARNING
    assert done.stdout.startswith("model:") and "token budget:      100" in done.stdout


def test_route_imports_neither_langchain_nor_the_server(text_router: R2Router, tmp_path: Path) -> None:
    ckpt = text_router.save(tmp_path / "ckpt")
    code = (
        "import sys; from r2router_integrations.cli import main; "
        f"assert main(['route', 'hi', '--router', {str(ckpt)!r}]) == 0; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'langchain_core', 'llama_index', 'fastapi', 'uvicorn', 'torch', 'sentence_transformers'}))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
