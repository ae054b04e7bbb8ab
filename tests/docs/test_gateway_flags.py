"""docs/gateway.md cannot drift from the gateway: every ``serve`` flag with its default, every
endpoint and every ``x-r2router-*`` response header is documented.

The checks read the argparse parser, the app's routes and the server's source, so a flag, an
endpoint or a header added later fails here until the page names it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from r2router_core import R2Router
from r2router_integrations import server as server_package
from r2router_integrations.cli import build_parser
from r2router_integrations.server import Upstream, create_app

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"
SWITCHES = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction)


def _serve_parser(monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    monkeypatch.delenv("R2ROUTER_ROUTER", raising=False)  # --router's default comes from it
    parser = build_parser(["serve"])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    serve: argparse.ArgumentParser = sub.choices["serve"]
    return serve


def _flag_rows() -> dict[str, str]:
    """The options table: ``--flag`` -> its default cell (backticks kept)."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `(--[a-z0-9-]+)[^`]*` \| ([^|]*) \|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip()
    return rows


def _default_documented(action: argparse.Action, cell: str) -> bool:
    if action.required:
        return cell == "required"
    if isinstance(action, SWITCHES):
        return cell == "off"
    if action.default is None:
        return cell == "none" or cell.startswith("`$")  # none, or the environment variable it reads
    if isinstance(action.default, int | float):
        number = re.search(r"`(-?[0-9.e+]+)`", cell)
        return number is not None and float(number.group(1)) == float(action.default)
    return cell == f"`{action.default}`"


def test_every_serve_flag_is_in_the_table_with_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _flag_rows()
    flags = set()
    for action in _serve_parser(monkeypatch)._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        long = [o for o in action.option_strings if o.startswith("--")]
        assert long, f"{action.dest} has no long option"
        flags.add(long[0])
        assert long[0] in rows, f"docs/gateway.md's options table lacks {long[0]}"
        assert _default_documented(action, rows[long[0]]), (
            f"{long[0]}: the table says {rows[long[0]]!r}, the parser's default is {action.default!r}"
        )
    assert set(rows) - flags == set(), "the table documents flags the parser does not have"


def test_every_endpoint_is_documented(text_router: R2Router) -> None:
    upstreams = [Upstream(name, "http://127.0.0.1:9/v1", name) for name in text_router.config.model_names]
    app = create_app(text_router, upstreams)
    doc = DOC.read_text(encoding="utf-8")
    paths = {route.path for route in app.routes}
    assert {"/v1/chat/completions", "/v1/feedback", "/admin/reload"} <= paths
    for route in app.routes:
        for method in sorted(route.methods - {"HEAD"}):
            assert f"{route.path}" in doc, f"docs/gateway.md never mentions {method} {route.path}"
            if route.path != "/v1/chat/completions":  # the page's subject, shown by example
                assert f"`{method} {route.path}`" in doc, f"docs/gateway.md lists no `{method} {route.path}`"


def test_every_response_header_is_in_the_headers_table() -> None:
    source = "".join(p.read_text(encoding="utf-8") for p in Path(server_package.__file__).parent.glob("*.py"))
    headers = set(re.findall(r"[\"'](x-r2router-[a-z-]+)[\"']", source))
    assert {"x-r2router-model", "x-r2router-decision-id", "x-r2router-cost-usd"} <= headers
    table = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `x-r2router-")]
    for header in sorted(headers):
        assert any(f"`{header}`" in line for line in table), f"docs/gateway.md's headers table lacks {header}"
