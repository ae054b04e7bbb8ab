"""R2RouterLLM.from_upstreams: the pool from the gateway's upstreams.yaml, over a loopback stub."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from r2router_core import ConfigError
from r2router_integrations.llamaindex import R2RouterLLM
from tests.integrations.server.support import (
    ENV,
    KEYS,
    MATH_PROMPT,
    POEM_PROMPT,
    ServerThread,
    Stub,
    build_router,
    stub_app,
)
from tests.integrations.shared_cases import write_priced_upstreams

ROUTER = build_router()


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[ServerThread, Stub]]:
    stub = Stub()
    stub.reset()
    with ServerThread(stub_app(stub)) as server:
        yield server, stub


@pytest.fixture
def stub(upstream: tuple[ServerThread, Stub]) -> Stub:
    upstream[1].reset()
    return upstream[1]


@pytest.fixture
def upstreams_file(upstream: tuple[ServerThread, Stub], tmp_path: Path) -> Path:
    return write_priced_upstreams(tmp_path / "upstreams.yaml", upstream[0].url, ROUTER)


def _user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def test_each_pool_model_is_called_on_its_upstream_with_its_cap_field(upstreams_file: Path, stub: Stub) -> None:
    llm = R2RouterLLM.from_upstreams(ROUTER, upstreams_file, environ=ENV, llm_options={"context_window": 32000})
    assert llm.metadata.context_window == 32000  # an id OpenAI does not know needs no lookup
    math = llm.chat(_user(MATH_PROMPT)).additional_kwargs["r2router"]  # large@400, cap as max_completion_tokens
    poem = asyncio.run(llm.achat(_user(POEM_PROMPT))).additional_kwargs["r2router"]  # small@100, as max_tokens
    assert [(m["model"], m["token_limit"]) for m in (math, poem)] == [("large", 400), ("small", 100)]
    (large,) = stub.calls("large")
    assert large.body["model"] == "upstream-large-id" and large.body["max_completion_tokens"] == 400
    assert "max_tokens" not in large.body
    assert large.headers["authorization"] == f"Bearer {KEYS['large']}" and large.headers["x-stub"] == "stub-1"
    assert stub.calls("small")[0].body["max_tokens"] == 100
    assert math["cost_usd"] == pytest.approx(3 * 10.0 / 1e6)  # the stub reports 3 completion tokens
    R2RouterLLM(ROUTER, {"medium": llm.pool["medium"]}, max_budget=400).chat(_user(MATH_PROMPT))  # medium@400
    body = stub.calls("medium")[0].body
    assert body["max_output_tokens"] == 400 and "max_tokens" not in body and "max_completion_tokens" not in body


def test_a_failing_upstream_falls_back_and_streams_work(upstreams_file: Path, stub: Stub) -> None:
    llm = R2RouterLLM.from_upstreams(ROUTER, upstreams_file, environ=ENV, fallbacks=1)
    assert llm.fallbacks == 1
    stub.behaviour["large"].status = 503
    info = llm.chat(_user(MATH_PROMPT)).additional_kwargs["r2router"]
    assert info["model"] == "medium" and [f["kind"] for f in info["fallbacks"]] == ["http_5xx"]
    assert len(stub.calls("large")) == 1  # max_retries=0: the plan, not the client, decides what comes next
    chunks = list(llm.stream_chat(_user(POEM_PROMPT)))
    assert chunks[-1].message.content == "tok0 tok1 tok2 "


def test_every_pool_model_needs_an_upstream_and_the_routers_price(
    upstream: tuple[ServerThread, Stub], tmp_path: Path
) -> None:
    unpriced = write_priced_upstreams(tmp_path / "a.yaml", upstream[0].url, ROUTER, drop="small")
    with pytest.raises(ConfigError, match=r"upstream 'small' has no input_price/output_price; give both"):
        R2RouterLLM.from_upstreams(ROUTER, unpriced, environ=ENV)
