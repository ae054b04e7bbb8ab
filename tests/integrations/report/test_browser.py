"""A real browser (Debian's chromium, driven by Selenium) renders the report and the live dashboard.

The key numbers on the rendered pages must equal the store's. Screenshots are saved to a
temporary folder; run with ``R2ROUTER_UPDATE_SCREENSHOTS=1`` to refresh the docs' copies in
docs/img/ (a reviewer looks at them there). Selenium is pointed at
/usr/bin/chromium and /usr/bin/chromedriver with SE_OFFLINE=true: it never downloads a browser.
.ci/run installs both from Debian.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from r2router_core import R2Router
from r2router_core.evaluation import report_from_store
from r2router_core.store import OutcomeStore
from r2router_integrations.cli import main
from r2router_integrations.report import format_usd
from tests.core.evaluation.savings_data import shadow_log, write_log
from tests.integrations.server.support import Stub

from .support import KEY, logged_gateway, send_traffic

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DOCS_SHOTS = Path(__file__).resolve().parents[3] / "docs" / "img"
SHOTS = DOCS_SHOTS if os.environ.get("R2ROUTER_UPDATE_SCREENSHOTS") else Path(tempfile.gettempdir()) / "r2router-shots"
"""Screenshots go to a temporary folder; ``R2ROUTER_UPDATE_SCREENSHOTS=1`` writes the docs' copies instead."""

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _rendered(driver: webdriver.Chrome, element_id: str, timeout: float = 20) -> None:
    WebDriverWait(driver, timeout).until(lambda d: d.find_elements(By.ID, element_id))


def _value(driver: webdriver.Chrome, element_id: str) -> tuple[float, str]:
    element = driver.find_element(By.ID, element_id)
    return float(element.get_attribute("data-value") or "nan"), element.text


def _screenshot(driver: webdriver.Chrome, name: str) -> Path:
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1100, min(max(height + 160, 600), 4000))
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    assert driver.save_screenshot(str(path))
    return path


def test_the_report_renders_the_stores_numbers(browser: webdriver.Chrome, tmp_path: Path) -> None:
    store_path = tmp_path / "shadow.db"
    truth = shadow_log(1500, 0.2, seed=11)
    failed = ({"model": "large", "token_limit": 512, "kind": "server_error", "error": "HTTP 503", "status": 503},)
    records = [  # some errors and fallbacks, so the rates on the page are not all zero
        replace(r, status="error", cost_usd=0.0, latency_s=None, failed_attempts=failed)
        if i % 97 == 0
        else replace(r, failed_attempts=failed)
        if i % 41 == 0
        else r
        for i, r in enumerate(truth.records)
    ]
    with OutcomeStore(store_path) as store:
        write_log(store, replace(truth, records=records))
        expected = report_from_store(store)
    assert expected.rates["error"].value > 0 and expected.rates["fallback"].value > 0
    assert main(["report", "--store", str(store_path), "--out", str(tmp_path / "report")]) == 0
    browser.get((tmp_path / "report" / "index.html").as_uri())
    _rendered(browser, "chart-counterfactuals")
    assert _value(browser, "requests") == (1500, "1500")
    spend, text = _value(browser, "spend")
    assert spend == pytest.approx(expected.spend_usd) and text == format_usd(expected.spend_usd)
    assert expected.switched is not None
    for kind, est in zip(("measured", "predicted"), expected.switched.cost_change, strict=True):
        value, text = _value(browser, f"switch-cost-{kind}")
        assert value == pytest.approx(est.value) and text == format_usd(est.value)
    baseline = next(c for c in expected.counterfactuals if c.name == "baseline")
    assert baseline.spend is not None and _value(browser, "cf-baseline")[0] == pytest.approx(baseline.spend.value)
    assert _value(browser, "latency-p50")[0] == pytest.approx(expected.latency["p50"])
    for rate in ("error", "fallback", "escalation"):
        value, text = _value(browser, f"rate-{rate}")
        assert value == pytest.approx(expected.rates[rate].value) and text == f"{expected.rates[rate].value:.1%}"
    headline = expected.switched.cost_change[0]
    assert _value(browser, "headline-switch-cost") == (pytest.approx(headline.value), format_usd(headline.value))
    # the charts are drawn (bars with a size), not blank frames
    rects = browser.find_elements(By.CSS_SELECTOR, "#chart-requests rect")
    assert len(rects) > 10 and all(r.size["height"] >= 0 for r in rects)
    assert browser.find_element(By.ID, "chart-quality").size["height"] > 50
    assert _screenshot(browser, "savings-report.png").stat().st_size > 20_000


def test_the_live_dashboard_renders_and_refreshes_itself(
    browser: webdriver.Chrome, router: R2Router, upstreams_file: Path, tmp_path: Path, stub: Stub
) -> None:
    with logged_gateway(router, upstreams_file, tmp_path / "log.db") as (server, log):
        send_traffic(server, log, 12)
        # a browser sends no bearer token by itself: the DevTools protocol adds the header to every request
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {KEY}"}})
        browser.get(f"{server.url}/dashboard")
        _rendered(browser, "requests")
        expected = report_from_store(log.store, pool=router.config.models)
        assert _value(browser, "requests") == (12, "12")
        spend, text = _value(browser, "spend")
        assert spend == pytest.approx(expected.spend_usd) and text == format_usd(expected.spend_usd)
        for arm in expected.arms:
            assert _value(browser, f"arm-{arm.model}-requests")[0] == arm.requests
        _screenshot(browser, "dashboard.png")
        send_traffic(server, log, 4)
        # the page reloads itself (meta refresh, 15 s) and shows the new requests once the cache (30 s) expires
        WebDriverWait(browser, 90, poll_frequency=0.5).until(
            lambda d: d.find_elements(By.ID, "requests") and _value(d, "requests")[0] == 16
        )
    assert os.path.getsize(SHOTS / "dashboard.png") > 10_000
