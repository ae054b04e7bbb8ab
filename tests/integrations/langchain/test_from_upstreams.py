"""R2RouterChatModel.from_upstreams: the pool from the gateway's upstreams.yaml, over a loopback stub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from r2router_core import ConfigError
from r2router_integrations.langchain import R2RouterChatModel
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


def test_each_pool_model_is_called_on_its_upstream_with_its_cap_field(upstreams_file: Path, stub: Stub) -> None:
    llm = R2RouterChatModel.from_upstreams(ROUTER, upstreams_file, environ=ENV)
    math = llm.invoke(MATH_PROMPT).response_metadata["r2router"]  # large@400, cap as max_completion_tokens
    poem = llm.invoke(POEM_PROMPT).response_metadata["r2router"]  # small@100, cap as max_tokens
    medium = llm.invoke(MATH_PROMPT, allowed_models=["medium"], max_budget=400).response_metadata["r2router"]
    assert [(m["model"], m["token_limit"]) for m in (math, poem, medium)] == [
        ("large", 400),
        ("small", 100),
        ("medium", 400),
    ]
    (large,) = stub.calls("large")
    assert large.body["model"] == "upstream-large-id" and large.body["max_completion_tokens"] == 400
    assert large.headers["authorization"] == f"Bearer {KEYS['large']}" and large.headers["x-stub"] == "stub-1"
    assert stub.calls("small")[0].body["max_tokens"] == 100
    body = stub.calls("medium")[0].body
    assert body["max_output_tokens"] == 400 and "max_tokens" not in body and "max_completion_tokens" not in body
    assert math["cost_usd"] == pytest.approx(3 * 10.0 / 1e6)  # the stub reports 3 completion tokens


def test_a_failing_upstream_falls_back_and_streams_work(upstreams_file: Path, stub: Stub) -> None:
    llm = R2RouterChatModel.from_upstreams(ROUTER, upstreams_file, environ=ENV, fallbacks=1)
    assert llm.fallbacks == 1
    stub.behaviour["large"].status = 503
    info = llm.invoke(MATH_PROMPT).response_metadata["r2router"]
    assert info["model"] == "medium" and [f["kind"] for f in info["fallbacks"]] == ["http_5xx"]
    assert len(stub.calls("large")) == 1  # max_retries=0: the plan, not the client, decides what comes next
    text = "".join(chunk.text for chunk in llm.stream(POEM_PROMPT))
    assert text == "tok0 tok1 tok2 "


def test_every_pool_model_needs_an_upstream_and_the_routers_price(
    upstream: tuple[ServerThread, Stub], tmp_path: Path
) -> None:
    url = upstream[0].url
    unpriced = write_priced_upstreams(tmp_path / "a.yaml", url, ROUTER, drop="medium")
    with pytest.raises(ConfigError, match=r"upstream 'medium' has no input_price/output_price; give both"):
        R2RouterChatModel.from_upstreams(ROUTER, unpriced, environ=ENV)
    wrong = write_priced_upstreams(tmp_path / "b.yaml", url, ROUTER)
    wrong.write_text(wrong.read_text().replace("output_price: 10.0", "output_price: 12.0"))
    with pytest.raises(ConfigError, match=r"'large' is priced \$0/\$12 .* but the router routes on \$0/\$10"):
        R2RouterChatModel.from_upstreams(ROUTER, wrong, environ=ENV)
    missing = write_priced_upstreams(tmp_path / "c.yaml", url, ROUTER)
    text = missing.read_text()
    missing.write_text(text[: text.index("  small:")] + text[text.index("  medium:") :])
    with pytest.raises(ConfigError, match=r"no upstream for pool model\(s\) \['small'\]"):
        R2RouterChatModel.from_upstreams(ROUTER, missing, environ=ENV)
