"""Helpers of the collect tests: the stub pool process, its upstreams.yaml and prompts, the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
MODELS = ("small", "big")
PRICES = {"small": (0.5, 1.0), "big": (2.0, 10.0)}  # (input, output) USD per 1M tokens
ENV = {"STUB_KEY_SMALL": "sk-small-0123456789", "STUB_KEY_BIG": "sk-big-0123456789"}


class StubPool:
    """The stub pool's process, URL and request log."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def requests(self, *, preflight: bool = False) -> list[dict[str, Any]]:
        """The requests received, in order (without the preflight's one-token calls unless ``preflight``)."""
        if not self.log.is_file():
            return []
        rows = [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines() if line.strip()]
        return rows if preflight else [r for r in rows if not is_preflight(r)]


def is_preflight(request: dict[str, Any]) -> bool:
    """Whether a logged request is the collector's preflight (one token, its own prompt)."""
    from r2router_integrations.collect.runner import PREFLIGHT_PROMPT

    return request["body"]["messages"][-1]["content"] == PREFLIGHT_PROMPT


@contextmanager
def stub_pool(tmp_path: Path, **config: Any) -> Iterator[StubPool]:
    """Start the stub pool in its own process; stop it on exit."""
    path = tmp_path / f"stub-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integrations.collect.stub_pool", str(path)], cwd=REPO, env=env
    )
    port_file = path.with_suffix(".port")
    try:
        deadline = time.monotonic() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the stub pool did not start")
            time.sleep(0.05)
        yield StubPool(process, f"http://127.0.0.1:{port_file.read_text().strip()}", path.with_suffix(".log.jsonl"))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def write_upstreams(path: Path, base_url: str, *, timeout: float = 5.0, models: tuple[str, ...] = MODELS) -> Path:
    lines = ["defaults:", f"  timeout: {timeout}", "upstreams:"]
    for name in models:
        lines += [
            f"  {name}:",
            f"    base_url: {base_url}/{name}/v1",
            f"    model: acme/{name}-1",
            f"    api_key_env: STUB_KEY_{name.upper()}",
            f"    max_tokens_param: {'max_tokens' if name == 'small' else 'max_completion_tokens'}",
            f"    input_price: {PRICES[name][0]}",
            f"    output_price: {PRICES[name][1]}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def math_prompt(i: int) -> dict[str, str]:
    a, b = 10 + i, 3 * i + 1
    return {"id": f"m{i}", "prompt": f"math: what is {a} plus {b}", "reference": str(a + b), "category": "math"}


WORDS = ("apple", "river", "cloud", "stone", "maple", "otter", "lemon", "piano", "tiger", "amber", "cedar", "delta")


def chat_prompt(i: int) -> dict[str, str]:
    word = WORDS[i % len(WORDS)]
    return {"id": f"c{i}", "prompt": f"chat: say the word {word}", "reference": word, "category": "chat"}


def write_prompts(path: Path, n_math: int, n_chat: int) -> Path:
    rows = [math_prompt(i) for i in range(n_math)] + [chat_prompt(i) for i in range(n_chat)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def cli_env() -> dict[str, str]:
    return {**os.environ, **ENV, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


def run_cli(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``r2router ARGS`` in a subprocess (this checkout's code)."""
    return subprocess.run(
        [sys.executable, "-m", "r2router_integrations", *args],
        cwd=cwd or REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
