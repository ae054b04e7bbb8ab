"""examples/langchain_quickstart.py runs offline, and against an OpenAI-compatible server when a key is set."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from .test_openai_wire import FakeOpenAI

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langchain_quickstart.py"


def run_example(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow
def test_quickstart_runs_offline() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    done = run_example(env)
    assert done.returncode == 0, done.stderr
    assert "offline fake pool" in done.stdout
    assert "routed to : small @ 32 tokens (model_name=fake-small" in done.stdout
    assert "routed to : large @ 256 tokens (model_name=fake-large" in done.stdout


@pytest.fixture
def openai_server() -> Iterator[tuple[str, FakeOpenAI]]:
    """A loopback HTTP server speaking OpenAI chat completions (through :class:`FakeOpenAI`)."""
    fake = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            response = fake(httpx.Request("POST", self.path, content=body))
            self.send_response(response.status_code)
            self.send_header("content-type", response.headers["content-type"])
            self.send_header("content-length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", fake
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_quickstart_uses_chatopenai_when_a_key_is_set(openai_server: tuple[str, FakeOpenAI]) -> None:
    url, fake = openai_server
    env = {**os.environ, "OPENAI_API_KEY": "test", "OPENAI_BASE_URL": url}
    done = run_example(env)
    assert done.returncode == 0, done.stderr
    assert "real ChatOpenAI pool" in done.stdout
    assert "routed to : small @ 32 tokens (model_name=gpt-4o-mini" in done.stdout
    sent = {(b["model"], b["max_completion_tokens"]) for b in fake.bodies}
    assert {("gpt-4o-mini", 32), ("gpt-4o", 256)} <= sent
