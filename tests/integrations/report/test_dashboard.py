"""``GET /dashboard`` and ``/dashboard.json`` on a live gateway: behind the key, the store's numbers, cached."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from r2router_core import R2Router
from r2router_core.evaluation import report_from_store
from r2router_integrations.server.dashboard import Dashboard
from tests.integrations.server.support import Stub, start_gateway

from .support import headers, logged_gateway, send_traffic


def test_the_dashboard_needs_the_admin_key(router: R2Router, upstreams_file: Path, tmp_path: Path) -> None:
    with logged_gateway(router, upstreams_file, tmp_path / "log.db") as (server, _):
        for path in ("/dashboard", "/dashboard.json"):
            assert httpx.get(f"{server.url}{path}", timeout=10).status_code == 401
            wrong = httpx.get(f"{server.url}{path}", headers=headers("sk-wrong"), timeout=10)
            assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
            assert httpx.get(f"{server.url}{path}", headers=headers(), timeout=10).status_code == 200


def test_the_dashboard_shows_the_stores_numbers(
    router: R2Router, upstreams_file: Path, tmp_path: Path, stub: Stub
) -> None:
    with logged_gateway(router, upstreams_file, tmp_path / "log.db") as (server, log):
        send_traffic(server, log, 12)
        data = httpx.get(f"{server.url}/dashboard.json", headers=headers(), timeout=10).json()
        page = httpx.get(f"{server.url}/dashboard", headers=headers(), timeout=10)
        expected = report_from_store(log.store, pool=router.config.models)
    assert data["requests"] == expected.requests == 12
    assert data["spend_usd"] == pytest.approx(expected.spend_usd) and expected.spend_usd > 0
    assert {a["model"]: a["requests"] for a in data["arms"]} == {a.model: a.requests for a in expected.arms}
    assert page.headers["content-type"].startswith("text/html")
    assert re.search(r'<meta http-equiv="refresh" content="\d+">', page.text)
    assert 'id="requests" data-value="12"' in page.text
    assert "<script" not in page.text


def test_an_empty_window_and_a_gateway_without_a_log_say_so(
    router: R2Router, upstreams_file: Path, tmp_path: Path
) -> None:
    with logged_gateway(router, upstreams_file, tmp_path / "log.db") as (server, _):
        page = httpx.get(f"{server.url}/dashboard", headers=headers(), timeout=10)
        data = httpx.get(f"{server.url}/dashboard.json", headers=headers(), timeout=10).json()
    assert page.status_code == 200 and 'id="message"' in page.text and "no traffic in the last 60 minutes" in page.text
    assert data["requests"] == 0 and "no traffic" in data["message"]
    server = start_gateway(router, upstreams_file)
    try:
        page = httpx.get(f"{server.url}/dashboard", timeout=10)
    finally:
        server.__exit__()
    assert page.status_code == 200 and "logs no decisions: start it with --store" in page.text


@pytest.mark.asyncio
async def test_viewers_share_one_cached_computation(tmp_path: Path) -> None:
    from r2router_core.store import OutcomeStore

    with OutcomeStore(tmp_path / "log.db") as store:
        board = Dashboard(lambda: store, cache_s=60)
        first = await board.current()
        again = await board.current()
        assert first == again and board.computations == 1
        board.cache_s = 0.0
        await board.current()
        assert board.computations == 2
