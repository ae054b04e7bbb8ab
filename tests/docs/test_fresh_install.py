"""A newcomer's first minutes: a fresh virtual environment, the README's install command, the demo, an example."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.docs.markdown_blocks import code_blocks

REPO = Path(__file__).resolve().parents[2]


def _install_command() -> list[str]:
    """The README's install command (first code block), as arguments after ``python -m``."""
    first = code_blocks(REPO / "README.md")[0].code
    line = next(x for x in first.splitlines() if x.strip().startswith("pip install"))
    return ["-m", *shlex.split(line.split("#")[0])]


def _run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"{' '.join(args[:4])} ...: {time.perf_counter() - start:.1f} s")
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_fresh_venv_installs_as_the_readme_says_then_demo_and_example_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VIRTUAL_ENV", "R2ROUTER_"))}
    env["HF_HUB_OFFLINE"] = "1"
    env["R2ROUTER_CACHE_DIR"] = str(tmp_path / "cache")  # a newcomer has no embedding cache
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    _run([str(python), *_install_command()], cwd=REPO, env=env, timeout=1800)

    demo = _run([str(venv / "bin" / "r2router"), "demo"], cwd=tmp_path, env=env, timeout=900)
    assert "SYNTHETIC" in demo.stdout  # no data configured: it says the pool is synthetic
    assert "R2RouterChatModel" in demo.stdout
    assert demo.stdout.count("-> ") >= 6  # six prompts routed

    example = _run(
        [str(python), str(REPO / "examples" / "langchain_quickstart.py")], cwd=tmp_path, env=env, timeout=600
    )
    assert "r2router" in example.stdout.lower()
