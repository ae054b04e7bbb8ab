"""Every code block of README.md runs, in document order, offline, so the docs cannot rot.

Python blocks share one namespace (a README reads top to bottom); shell blocks run
with this environment's ``r2router`` on PATH, in the same scratch directory.
Blocks that cannot run inside the suite (the install command, the test command,
a long-running server) carry ``<!-- not-run: ... -->`` naming the test that covers them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.docs.markdown_blocks import Block, code_blocks

README = Path(__file__).resolve().parents[2] / "README.md"
RUNNABLE = {"python", "bash", "yaml"}


def _run_shell(block: Block, cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (
        f"README.md:{block.line} shell block failed ({result.returncode}):\n{block.code}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )


@pytest.mark.slow
def test_every_readme_block_runs(tmp_path: Path, shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = code_blocks(README)
    assert sum(b.language == "python" for b in blocks) >= 3, "the README should show Python usage"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "R2ROUTER_DATA_DIR": str(shared_data_dir),
        "HF_HUB_OFFLINE": "1",
        "R2ROUTER_REPO": str(README.parent),
    }
    env.pop("OPENAI_API_KEY", None)
    monkeypatch.chdir(tmp_path)
    for key in ("R2ROUTER_DATA_DIR", "HF_HUB_OFFLINE", "R2ROUTER_REPO"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    ran = 0
    for block in blocks:
        if block.not_run is not None or block.language not in RUNNABLE:
            continue
        if block.language == "python":
            exec(compile(block.code, f"README.md:{block.line}", "exec"), namespace)
        elif block.language == "bash":
            _run_shell(block, tmp_path, env)
        else:
            assert yaml.safe_load(block.code) is not None, f"README.md:{block.line} YAML block is empty"
        ran += 1
    assert ran >= 8


def test_every_block_runs_or_names_the_test_that_covers_it() -> None:
    for block in code_blocks(README):
        if block.language in RUNNABLE and block.not_run is not None:
            assert "test" in block.not_run, f"README.md:{block.line}: a not-run marker must name the covering test"
        assert block.language in RUNNABLE | {"text", "console", ""}, (
            f"README.md:{block.line}: unknown block language {block.language!r}"
        )


def test_setup_commands_open_the_readme() -> None:
    """The README's first code block installs everything, the second runs the suite; CI runs the same."""
    first, second = code_blocks(README)[:2]
    assert 'pip install -e ".[all,dev]"' in first.code
    assert second.code.split("#")[0].strip() == "python -m pytest"
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install --quiet -e ".[all,dev]"' in ci
    assert "python -m pytest\n" in ci
