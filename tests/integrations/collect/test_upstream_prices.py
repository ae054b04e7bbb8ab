"""upstreams.yaml entries may carry prices, validated like ModelSpec prices; read without a router config."""

from __future__ import annotations

from pathlib import Path

import pytest

from r2router_core.errors import ConfigError
from r2router_integrations.server.upstreams import read_upstreams
from tests.integrations.collect.support import ENV, write_upstreams


def test_prices_are_read_and_validated(tmp_path: Path) -> None:
    path = write_upstreams(tmp_path / "u.yaml", "http://127.0.0.1:9")
    ups = {u.name: u for u in read_upstreams(path, environ=ENV)}
    assert (ups["big"].input_price, ups["big"].output_price) == (2.0, 10.0)
    assert ups["big"].api_key == ENV["STUB_KEY_BIG"] and ups["small"].max_tokens_param == "max_tokens"
    path.write_text(path.read_text().replace("output_price: 10.0", "output_price: -1"))
    with pytest.raises(ConfigError, match="upstream 'big': output_price must be a finite number >= 0"):
        read_upstreams(path, environ=ENV)
    path.write_text(path.read_text().replace("output_price: -1", "output_price: free"))
    with pytest.raises(ConfigError, match="output_price"):
        read_upstreams(path, environ=ENV)


def test_prices_are_optional(tmp_path: Path) -> None:
    path = tmp_path / "u.yaml"
    path.write_text("upstreams:\n  m:\n    base_url: http://127.0.0.1:9/v1\n    model: x\n")
    (up,) = read_upstreams(path, environ={})
    assert up.input_price is None and up.output_price is None
