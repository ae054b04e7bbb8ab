"""``r2router serve`` end to end: a real subprocess, a saved router, the openai client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from r2router_core import R2Router
from r2router_core.store import OutcomeStore
from r2router_integrations.cli import main

from .support import ENV, KEYS, MATH_PROMPT, PARAMS, Stub, build_router

TOKEN = "cli-token-7d3e9b"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def saved_router(tmp_path: Path) -> Path:
    return build_router().save(tmp_path / "router")


def _wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"r2router serve exited early: {proc.communicate()[1]}")
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("r2router serve did not come up")


@pytest.mark.slow
def test_r2router_serve_runs_as_a_process(saved_router: Path, upstreams_file: Path, stub: Stub, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, **ENV, "GATEWAY_TOKEN": TOKEN}
    # the checkpoint names its embedder (HashEmbedder's id), which --embedder auto (the default) loads
    args = [sys.executable, "-m", "r2router_integrations", "--log-level", "DEBUG", "serve"]
    args += ["--router", str(saved_router), "--upstreams", str(upstreams_file), "--port", str(port)]
    args += ["--api-key-env", "GATEWAY_TOKEN", "--store", f"sqlite:///{tmp_path / 'log.db'}"]
    args += ["--header-timeout", "0.5"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc)
        client = OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0, timeout=10)
        raw = client.chat.completions.with_raw_response.create(
            model="r2router", messages=[{"role": "user", "content": MATH_PROMPT}]
        )
        assert raw.headers["x-r2router-model"] == "large" and raw.parse().model == "acme/large-1"
        assert stub.requests[0].body[PARAMS["large"]] == int(raw.headers["x-r2router-budget"])
        assert httpx.get(f"{url}/v1/models").status_code == 401  # the token is required
        decision_id = raw.headers["x-r2router-decision-id"]
        feedback = {"id": decision_id, "quality": 1.0}
        auth = {"authorization": f"Bearer {TOKEN}"}
        assert httpx.post(f"{url}/v1/feedback", json=feedback, headers=auth).status_code == 204
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # --header-timeout is wired
            sock.sendall(b"GET /health HTTP/1.1\r\nHo")
            assert sock.recv(4096).startswith(b"HTTP/1.1 408")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    with OutcomeStore(tmp_path / "log.db") as store:  # --store logged the call and its feedback
        assert [f.quality for f in store.feedback(decision_id)] == [1.0]
    assert f"http://127.0.0.1:{port}/v1" in out
    assert "routed to large" in err  # DEBUG logging reached the server's log
    for secret in (*KEYS.values(), TOKEN):
        assert secret not in out + err


def test_a_pool_model_missing_from_upstreams_stops_startup(
    saved_router: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "u.yaml"
    path.write_text('upstreams:\n  small: {base_url: "http://h/v1", model: s}\n', encoding="utf-8")
    assert main(["serve", "--router", str(saved_router), "--upstreams", str(path)]) == 1
    err = capsys.readouterr().err
    assert "r2router serve: error:" in err and "['medium', 'large']" in err


def test_an_unset_api_key_variable_stops_startup(
    saved_router: Path, upstreams_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--router", str(saved_router), "--upstreams", str(upstreams_file)]
    assert main([*argv, "--api-key-env", "R2R_TEST_UNSET_VARIABLE"]) == 1
    assert "R2R_TEST_UNSET_VARIABLE" in capsys.readouterr().err


def test_serve_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    options = ("--router", "--upstreams", "--host", "--port", "--api-key-env", "--max-body-bytes", "--fallbacks")
    for option in (*options, "--store", "--keep-text", "--reload-every", "--no-escalation", "--explore"):
        assert option in out
    assert "--no-length-instruction" in out


def test_embed_threads_must_be_positive(
    saved_router: Path, upstreams_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--router", str(saved_router), "--upstreams", str(upstreams_file), "--embed-threads", "0"]
    assert main(argv) == 2  # a flag out of range is a usage error
    assert "--embed-threads must be at least 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("torch_first", [True, False])
def test_embed_threads_reach_torch_whether_or_not_it_was_imported(torch_first: bool) -> None:
    """Set on torch if it is loaded, else through OMP_NUM_THREADS, which torch reads when imported."""
    code = (
        ("import torch; " if torch_first else "")
        + "from r2router_integrations.cli.serve import _limit_torch_threads; _limit_torch_threads(1); "
        + "import torch; print(torch.get_num_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=True)
    assert out.stdout.strip() == "1"


def test_the_serving_flags_are_the_serving_settings() -> None:
    """Every serving setting is a flag (its name, default and docstring) or listed as not one, with why."""
    import argparse
    import dataclasses

    from r2router_core.execute import SERVING_FIELDS, ServingSettings, field_doc
    from r2router_integrations.cli.serve import NOT_FLAGS, SERVING_FLAGS, add_serving_arguments, serving_settings

    assert sorted([*SERVING_FLAGS, *NOT_FLAGS]) == sorted(SERVING_FIELDS)
    parser = argparse.ArgumentParser()
    add_serving_arguments(parser)
    defaults = ServingSettings()
    for field, (flag, _) in SERVING_FLAGS.items():
        (action,) = [a for a in parser._actions if flag in a.option_strings]
        assert action.dest == field and action.default == getattr(defaults, field), flag
        assert field_doc(field).replace("``", "")[:50] in (action.help or ""), flag
    assert serving_settings(parser.parse_args([])) == defaults
    argv = ["--fallbacks", "0", "--no-escalation", "--explore", "0.1", "--no-length-instruction", "--keep-text"]
    argv += ["--store", "log.db", "--seed", "3", "--length-instruction-template", "At most {budget}."]
    given = serving_settings(parser.parse_args(argv))
    want = dataclasses.replace(
        defaults,
        fallbacks=0,
        escalation=False,
        explore=0.1,
        length_instruction=False,
        keep_text=True,
        store="log.db",
        seed=3,
        length_instruction_template="At most {budget}.",
    )
    assert given == want and given.escalation_policy.max_escalations == 0


def test_create_app_takes_one_serving_settings_or_its_fields_by_name(router: R2Router, upstreams_file: Path) -> None:
    from r2router_core import ConfigError
    from r2router_core.execute import ServingSettings
    from r2router_integrations.server import create_app, load_upstreams

    from .support import ENV

    upstreams = load_upstreams(upstreams_file, router.config, environ=ENV)
    one = create_app(router, upstreams, serving=ServingSettings(fallbacks=1, explore=0.1))
    assert one.state.gateway.serving == ServingSettings(fallbacks=1, explore=0.1)
    older = create_app(router, upstreams, max_fallbacks=1, explore=0.1)  # the older keywords
    assert older.state.gateway.serving == ServingSettings(fallbacks=1, explore=0.1)
    assert create_app(router, upstreams).state.gateway.serving == ServingSettings()
    with pytest.raises(ConfigError, match="either as serving=ServingSettings"):
        create_app(router, upstreams, serving=ServingSettings(explore=0.1), max_fallbacks=1)
    with pytest.raises(ConfigError, match=r"unknown keywords \['fallback'\]"):
        create_app(router, upstreams, fallback=1)
    assert create_app(router, upstreams, shadow="small").state.gateway.serving.shadow == "small"
    with pytest.raises(ConfigError, match="not a pool model"):
        create_app(router, upstreams, shadow="gpt-4o")
