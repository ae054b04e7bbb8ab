"""Every block of docs/train-your-own.md runs in order in a scratch directory, against the stub pool it starts."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.docs.markdown_blocks import code_blocks

PAGE = Path(__file__).resolve().parents[2] / "docs" / "train-your-own.md"
REPO = PAGE.parents[1]


@pytest.mark.slow
def test_every_block_of_the_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "R2ROUTER_REPO": str(REPO),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    ran = 0
    try:
        for block in code_blocks(PAGE):
            if block.not_run is not None:
                assert "test" in block.not_run, f"{PAGE.name}:{block.line}: a not-run marker must name its test"
                continue
            where = f"{PAGE.name}:{block.line}"
            if block.language == "python":
                exec(compile(block.code, where, "exec"), namespace)
            elif block.language == "bash":
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", block.code],
                    cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                )  # fmt: skip
                assert result.returncode == 0, f"{where} failed:\n{block.code}\n{result.stdout}\n{result.stderr}"
                if "r2router route" in block.code:
                    assert "model:             big" in result.stdout  # maths goes to the model the stub makes right
                if "v1/chat/completions" in block.code:
                    assert '"content":"lemon"' in result.stdout.replace(" ", ""), result.stdout  # the stub's answer
            else:
                assert block.language == "yaml" and yaml.safe_load(block.code), where
            ran += 1
    finally:
        pid_file = tmp_path / "stub.pid"
        if pid_file.is_file():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
    assert ran >= 10
