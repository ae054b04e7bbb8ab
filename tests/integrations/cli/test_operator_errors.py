"""Operator errors at the terminal: one line on stderr, a documented exit code, no traceback.

Each failure runs the real ``r2router`` in a subprocess (as an operator would); the numeric
flags and the failure classifier are also checked in-process.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from r2router_core import R2Router
from r2router_core.execute.records import decision_record
from r2router_core.store import OutcomeStore, PromptRecord
from r2router_integrations.cli import main
from r2router_integrations.cli.common import (
    EXIT_CLOSED_PIPE,
    EXIT_ERROR,
    EXIT_NETWORK,
    EXIT_PERMISSION,
    EXIT_PORT,
    EXIT_STORE,
    EXIT_USAGE,
    describe_failure,
    hide_password,
)

DOWN_POSTGRES = "postgresql+psycopg://r2user:s3cret-pw@127.0.0.1:1/nothing"  # port 1: connection refused


def _r2router(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "r2router_integrations", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def _one_line_error(done: subprocess.CompletedProcess[str], command: str, code: int, *words: str) -> str:
    err = done.stderr
    assert done.returncode == code, (done.returncode, err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-3000:]  # one line: no traceback, no banner
    assert lines[0].startswith(f"r2router {command}: error: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def workdir(tmp_path: Path, text_router: R2Router) -> Path:
    text_router.save(tmp_path / "router")
    (tmp_path / "upstreams.yaml").write_text(
        "upstreams:\n"
        "  small: {base_url: 'http://127.0.0.1:9/v1', model: s}\n"
        "  big: {base_url: 'http://127.0.0.1:9/v1', model: b}\n"
    )
    (tmp_path / "garbage.db").write_bytes(np.random.default_rng(0).bytes(4096))
    return tmp_path


SERVE = ("serve", "--router", "router", "--upstreams", "upstreams.yaml")
BAD_STORES = {  # store -> words the line must hold
    "sqlite:////nonexistent-r2router-dir/sub/log.db": ("nonexistent-r2router-dir", "create its directory"),
    "garbage.db": ("garbage.db", "not a SQLite database"),
    DOWN_POSTGRES: ("127.0.0.1:1", "start the database server"),
}


@pytest.mark.parametrize("store", list(BAD_STORES))
def test_serve_with_a_bad_store_says_so_in_one_line(workdir: Path, store: str) -> None:
    done = _r2router(*SERVE, "--port", str(_free_port()), "--store", store, cwd=workdir)
    line = _one_line_error(done, "serve", EXIT_STORE, *BAD_STORES[store])
    assert "s3cret-pw" not in line and done.stdout == ""  # no password, no banner


@pytest.mark.parametrize("store", ["garbage.db", DOWN_POSTGRES])
def test_collect_with_a_bad_store_says_so_in_one_line(workdir: Path, store: str) -> None:
    done = _r2router("collect", "status", "--store", store, cwd=workdir)
    _one_line_error(done, "collect", EXIT_STORE, *BAD_STORES[store])


@pytest.mark.parametrize("store", list(BAD_STORES))
def test_train_with_a_bad_store_says_so_in_one_line(workdir: Path, store: str) -> None:
    done = _r2router("train", "--store", store, "--out", "out", cwd=workdir)
    _one_line_error(done, "train", EXIT_STORE, *BAD_STORES[store])


def test_a_port_in_use_is_one_line_before_any_banner(workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _r2router(*SERVE, "--port", str(port), cwd=workdir)
    _one_line_error(done, "serve", EXIT_PORT, f"port {port}", "already in use", "--port")
    assert done.stdout == ""


@pytest.mark.parametrize(
    "argv",
    [
        ("info", "router"),
        ("info", "router", "--json"),
        ("route", "code question number 3", "--router", "router"),
        ("collect", "status", "--store", "store.db"),
    ],
)
def test_a_closed_pipe_ends_the_command_quietly(workdir: Path, argv: tuple[str, ...]) -> None:
    with OutcomeStore(f"sqlite:///{workdir / 'store.db'}") as store:
        store.add_prompts("p", [PromptRecord(f"q{i}", f"question {i}") for i in range(3)])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "r2router_integrations", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the command prints (as `| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == EXIT_CLOSED_PIPE, err
    assert err == ""


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--reload-every", "-5"], "--reload-every must be at least 1 seconds, got -5"),
        (["--reload-every", "1e-9"], "--reload-every must be at least 1 seconds, got 1e-09"),
        (["--reload-every", "nan"], "--reload-every must be a finite number"),
        (["--port", "0"], "--port must be at least 1, got 0"),
        (["--port", "70000"], "--port must be at most 65535, got 70000"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--body-timeout", "1e-9"], "--body-timeout must be at least 0.1 seconds"),
        (["--header-timeout", "-1"], "--header-timeout must be at least 0.1 seconds"),
        (["--drain-seconds", "inf"], "--drain-seconds must be at most 86400 seconds"),
        (["--batch-window-ms", "-1"], "--batch-window-ms must be at least 0 ms"),
        (["--max-batch", "0"], "--max-batch must be at least 1"),
        (["--max-body-bytes", "0"], "--max-body-bytes must be at least 1 bytes"),
        (["--fallbacks", "-1"], "--fallbacks must be at least 0"),
        (["--explore", "1.5"], "--explore must be at most 1"),
    ],
)
def test_serve_refuses_numeric_flags_out_of_range(
    workdir: Path, flags: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*SERVE, "--port", str(_free_port())]
    argv = [a if a not in ("router", "upstreams.yaml") else str(workdir / a) for a in argv]
    assert main([*argv, *flags]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("r2router serve: error: ") and words in err, err


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [  # the routing options are the router's to check (one line, exit 1); the engine's sizes the CLI's (exit 2)
        (["route", "hi", "--lambda", "1.5"], EXIT_ERROR, "lambda must be a number in [0, 1]"),
        (["route", "hi", "--max-budget", "0"], EXIT_ERROR, "max_budget must be a positive int"),
        (["route-batch", "in.csv", "--out", "o.parquet", "--batch-size", "0"], EXIT_USAGE, "--batch-size must be"),
    ],
)
def test_routing_commands_refuse_numeric_flags_out_of_range(
    workdir: Path, argv: list[str], code: int, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--router", str(workdir / "router")]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def _log_decisions(router: R2Router, url: str, n: int) -> None:
    texts = [f"logged code question {i}" for i in range(n)]
    with OutcomeStore(url) as store:
        records = []
        for i, e in enumerate(router.embed(texts)):
            d = router.route(e)
            records.append(
                decision_record(d, d.chosen, decision_id=f"id{i}", source="python", embedding=e, output_tokens=7)
            )
        store.record_decisions(records)
        for i in range(n):
            store.record_feedback(f"id{i}", 1.0)


def test_train_on_a_gateway_log_alone_names_the_fix_and_the_fix_works(
    workdir: Path, text_router: R2Router, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{workdir / 'log.db'}"
    _log_decisions(text_router, url, 4)
    done = _r2router("train", "--store", url, "--out", "new", cwd=workdir)
    fix = f"r2router train --router ROUTER_DIR --store {url}"
    _one_line_error(done, "train", EXIT_ERROR, "4 logged decisions", fix)
    # the fix it names: the served router's data plus the log
    assert main(["train", "--router", str(workdir / "router"), "--store", url, "--out", str(workdir / "new")]) == 0
    assert "trained on 64 queries (4 from the decision log)" in capsys.readouterr().out


def test_train_on_an_empty_store_says_what_to_collect(workdir: Path) -> None:
    done = _r2router("train", "--store", "empty.db", "--out", "new", cwd=workdir)
    _one_line_error(done, "train", EXIT_ERROR, "holds no graded calls", "r2router collect run")


@pytest.mark.parametrize(
    ("exc", "code", "words"),
    [
        (PermissionError(13, "Permission denied", "/srv/r2/out"), EXIT_PERMISSION, "permission denied: /srv/r2/out"),
        (httpx.ConnectError("[Errno 111] Connection refused"), EXIT_NETWORK, "cannot reach the server"),
        (ConnectionRefusedError(111, "Connection refused"), EXIT_NETWORK, "check the URL"),
        (FileNotFoundError(2, "No such file or directory", "prompts.csv"), EXIT_ERROR, "prompts.csv; check the path"),
    ],
)
def test_world_failures_are_classified(exc: BaseException, code: int, words: str) -> None:
    failure = describe_failure(exc, argparse.Namespace(command="x"))
    assert failure is not None and failure.code == code and words in str(failure)
    assert "\n" not in str(failure)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://app:p@ss/w0rd@db:5432/r2", "postgresql+psycopg://app:***@db:5432/r2"),
        ("postgresql://app@db/r2", "postgresql://app@db/r2"),
        ("sqlite:////srv/log.db", "sqlite:////srv/log.db"),
    ],
)
def test_store_urls_in_messages_hide_the_password(url: str, shown: str) -> None:
    assert hide_password(url) == shown


def test_a_bug_keeps_its_traceback() -> None:
    assert describe_failure(TypeError("unsupported operand"), argparse.Namespace()) is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
