"""Fixtures of the gateway tests (the helpers live in ``support.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from r2router_core import R2Router

from .support import ServerThread, Stub, build_router, start_gateway, stub_app, write_upstreams


@pytest.fixture(scope="session")
def router() -> R2Router:
    return build_router()


@pytest.fixture(scope="session")
def stub_server() -> Iterator[tuple[Stub, ServerThread]]:
    stub = Stub()
    stub.reset()
    with ServerThread(stub_app(stub)) as server:
        yield stub, server


@pytest.fixture
def stub(stub_server: tuple[Stub, ServerThread]) -> Stub:
    stub_server[0].reset()
    return stub_server[0]


@pytest.fixture(scope="session")
def upstreams_file(stub_server: tuple[Stub, ServerThread], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_upstreams(tmp_path_factory.mktemp("gateway") / "upstreams.yaml", stub_server[1].url)


@pytest.fixture(scope="session")
def gateway(router: R2Router, upstreams_file: Path) -> Iterator[ServerThread]:
    """The default gateway: no API key, 2 fallbacks, length instruction on, 20 kB body limit."""
    server = start_gateway(router, upstreams_file, max_body_bytes=20_000)
    yield server
    server.__exit__()


@pytest.fixture
def client(gateway: ServerThread) -> OpenAI:
    return OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=10)
