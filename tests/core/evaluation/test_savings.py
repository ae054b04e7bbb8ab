"""The savings report's numbers: hand-computed sums from the log, agreement with a known truth, bad input."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from r2router_core import ConfigError, DataError
from r2router_core.evaluation import (
    open_report_store,
    parse_time,
    report_from_store,
)
from r2router_core.evaluation.savings import MEASURED, PREDICTED
from r2router_core.store import DecisionRecord, OutcomeStore
from tests.core.evaluation.savings_data import BASELINE, POOL, START, shadow_log, write_log


@pytest.fixture
def store(store_url: str) -> Iterator[OutcomeStore]:
    """A fresh store on SQLite and on PostgreSQL (the report's SQL reads the JSON options on both)."""
    with OutcomeStore(store_url) as s:
        yield s


def _routed(i: int, model: str, cost: float, **fields: object) -> DecisionRecord:
    values: dict = {
        "id": f"r{i}",
        "source": "gateway",
        "model": model,
        "budget": 256,
        "options": {"lambda": 1.0},
        "predicted_quality": 0.7,
        "predicted_cost": cost,
        "status": "ok",
        "input_tokens": 100,
        "output_tokens": 200,
        "latency_s": 0.1 * (i + 1),
        "cost_usd": cost,
        "created_at": (START + timedelta(minutes=i)).isoformat(timespec="milliseconds"),
    }
    values.update(fields)
    return DecisionRecord(**values)


def _one(estimates: list, basis: str):
    return next(e for e in estimates if e.basis == basis)


def test_pure_shadow_had_you_switched_cost_equals_the_hand_computed_sum(store: OutcomeStore) -> None:
    truth = shadow_log(300, 0.0, seed=3)
    write_log(store, truth)
    report = report_from_store(store)
    switched = report.switched
    assert switched is not None and switched.baseline == BASELINE and switched.sample == 0.0
    rows = truth.records
    router = sum(r.predicted_cost for r in rows)
    baseline_logged = sum(r.cost_usd for r in rows)
    baseline_predicted = sum(r.options["shadow"]["baseline_predicted_cost"] for r in rows)
    assert _one(switched.router_spend, PREDICTED).value == pytest.approx(router, rel=1e-12)
    assert [e.basis for e in switched.router_spend] == [PREDICTED]  # nothing sampled: no measured router spend
    exact = _one(switched.baseline_spend, MEASURED)
    assert exact.value == pytest.approx(baseline_logged, rel=1e-12) and exact.low == exact.high == exact.value
    assert _one(switched.cost_change, PREDICTED).value == pytest.approx(router - baseline_predicted, rel=1e-12)
    assert report.spend_usd == pytest.approx(baseline_logged, rel=1e-12)
    baseline_cf = next(c for c in report.counterfactuals if c.name == "baseline")
    assert baseline_cf.spend is not None and baseline_cf.spend.basis == MEASURED
    assert baseline_cf.spend.value == pytest.approx(baseline_logged, rel=1e-12)
    assert [a.model for a in report.arms] == [BASELINE]  # the baseline answered everything


def test_sampled_shadow_measured_and_predicted_agree_with_the_truth(store: OutcomeStore) -> None:
    truth = shadow_log(2000, 0.2, seed=7)
    write_log(store, truth)
    sw = report_from_store(store).switched
    assert sw is not None and sw.sample == pytest.approx(0.2)
    cost_truth = truth.router_cost - truth.baseline_cost
    quality_truth = truth.router_quality - truth.baseline_quality
    for basis in (MEASURED, PREDICTED):
        cost, quality = _one(sw.cost_change, basis), _one(sw.quality_change, basis)
        assert cost.covers(cost_truth), (basis, cost, cost_truth)
        assert quality.covers(quality_truth), (basis, quality, quality_truth)
        assert _one(sw.router_spend, basis).covers(truth.router_cost)
        assert _one(sw.baseline_spend, basis).covers(truth.baseline_cost)
        assert _one(sw.router_quality, basis).covers(truth.router_quality)
    # informative, not vacuous: the measured intervals are narrow enough to tell the sides apart
    measured = _one(sw.cost_change, MEASURED)
    assert measured.high < 0 and measured.high - measured.low < 0.2 * abs(cost_truth)
    assert _one(sw.quality_change, MEASURED).high < 0


def test_an_escalated_request_counts_once_and_rates_are_shares_of_requests(store: OutcomeStore) -> None:
    store.set_models(POOL)
    cut = _routed(0, "small", 0.001, id="cut", finish_reason="length")
    final = _routed(1, "medium", 0.005, id="final", escalated_from="cut")  # its cost sums both attempts
    fallback = _routed(2, "medium", 0.002, failed_attempts=({"model": "small", "kind": "server_error"},))
    error = _routed(3, "small", 0.0, status="error", latency_s=None)
    plain = [_routed(i, "small", 0.001) for i in range(4, 10)]
    store.record_decisions([cut, final, fallback, error, *plain])
    report = report_from_store(store)
    assert report.requests == 9
    assert report.spend_usd == pytest.approx(0.005 + 0.002 + 0.0 + 6 * 0.001)
    assert report.rates["escalation"].value == pytest.approx(1 / 9)
    assert report.rates["fallback"].value == pytest.approx(1 / 9)
    assert report.rates["error"].value == pytest.approx(1 / 9)
    assert 0 < report.rates["error"].low < 1 / 9 < report.rates["error"].high < 1
    zero = report.rates["abandoned"]
    assert zero.value == zero.low == 0 and 0.2 < zero.high < 0.4  # Wilson: 0 of 9 is not "surely 0"
    ok_latency = [0.2, 0.3] + [0.1 * (i + 1) for i in range(4, 10)]
    assert report.latency["p50"] == pytest.approx(float(np.percentile(ok_latency, 50)))
    assert report.latency["p99"] == pytest.approx(float(np.percentile(ok_latency, 99)))
    assert report.switched is None and not report.shadow
    assert sum(a.requests for a in report.arms) == 9
    assert sum(sum(v) for v in report.over_time["requests"].values()) == 9


def test_counterfactuals_price_the_logged_tokens_and_name_the_best_model_by_feedback(store: OutcomeStore) -> None:
    store.set_models(POOL)
    rows = [_routed(i, "small" if i % 2 else "medium", 0.001) for i in range(20)]
    store.record_decisions(rows)
    for r in rows:
        store.record_feedback(r.id, 0.9 if r.model == "medium" else 0.4, source="api")
        store.record_feedback(r.id, 0.5, source="grader:exact")
    report = report_from_store(store)
    by_name = {c.name: c for c in report.counterfactuals}
    priciest = by_name["most expensive model"]
    assert priciest.model == "large" and priciest.spend is not None and priciest.spend.basis == PREDICTED
    assert priciest.spend.value == pytest.approx(20 * (100 * 2.5 + 200 * 10.0) / 1e6)
    assert by_name["best single model by feedback"].model == "medium"
    medium = next(a for a in report.arms if a.model == "medium")
    assert medium.feedback is not None and medium.feedback.value == pytest.approx(0.9)
    assert medium.graded is not None and medium.graded.value == pytest.approx(0.5)


def test_the_window_keeps_only_its_requests(store: OutcomeStore) -> None:
    store.set_models(POOL)
    store.record_decisions([_routed(i, "small", 0.001) for i in range(10)])  # one a minute from START
    since = parse_time((START + timedelta(minutes=3)).isoformat())
    until = parse_time((START + timedelta(minutes=7)).isoformat())
    report = report_from_store(store, since=since, until=until)
    assert report.requests == 4 and report.since == since
    with pytest.raises(DataError, match="no logged decisions between"):
        report_from_store(store, since=parse_time("2030-01-01"))


def test_an_empty_store_is_a_clear_error(store: OutcomeStore) -> None:
    with pytest.raises(DataError, match="no logged decisions: nothing to report"):
        report_from_store(store)


def test_a_log_from_another_pool_is_reported_with_a_warning(store: OutcomeStore) -> None:
    store.set_models(POOL)
    store.record_decisions([_routed(i, "gpt-9-turbo", 0.01) for i in range(5)])
    report = report_from_store(store)
    assert report.requests == 5 and report.spend_usd == pytest.approx(0.05)
    assert any("another router or pool" in w and "gpt-9-turbo" in w for w in report.warnings)


def test_a_store_without_prices_says_counterfactuals_cannot_be_priced(store: OutcomeStore) -> None:
    store.record_decisions([_routed(i, "small", 0.001) for i in range(5)])
    report = report_from_store(store)
    assert any("no prices for the logged models" in w for w in report.warnings)
    priciest = next(c for c in report.counterfactuals if c.name == "most expensive model")
    assert priciest.spend is None and "no prices" in priciest.note


def test_a_report_reads_one_consistent_snapshot_while_the_store_is_written(store: OutcomeStore) -> None:
    store.set_models(POOL)
    store.record_decisions([_routed(i, "small", 0.001) for i in range(200)])
    stop, writing = threading.Event(), threading.Event()

    def write() -> None:
        with OutcomeStore(store.url) as writer:
            i = 1000
            while not stop.is_set():
                writer.record_decisions([_routed(i, "medium", 0.002, id=f"w{i}")])
                writing.set()
                i += 1

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert writing.wait(20)
        counts = []
        for _ in range(5):
            report = report_from_store(store)
            counts.append(report.requests)
            assert sum(a.requests for a in report.arms) == report.requests  # one snapshot: parts add up
            assert report.spend_usd == pytest.approx(sum(a.spend_usd for a in report.arms))
    finally:
        stop.set()
        thread.join(10)
    assert counts == sorted(counts) and counts[-1] > 200


def test_the_report_is_json_ready(store: OutcomeStore) -> None:
    write_log(store, shadow_log(100, 0.3, seed=1))
    data = json.loads(json.dumps(report_from_store(store).to_dict(), allow_nan=False))
    assert data["requests"] == 100 and data["switched"]["baseline"] == BASELINE


def test_open_report_store_refuses_what_is_not_a_decision_log(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no store at"):
        open_report_store(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()  # never created
    import sqlite3

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE spans (id INTEGER)").connection.commit()
    with pytest.raises(ConfigError, match=r"no r2router decision log .*spans"):
        open_report_store(other)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="cannot read"):
        open_report_store(garbage)


def test_parse_time_reads_dates_and_offsets() -> None:
    assert parse_time("2026-12-01") == "2026-12-01T00:00:00.000+00:00"
    assert parse_time("2026-12-01T12:00+02:00") == "2026-12-01T10:00:00.000+00:00"
    with pytest.raises(ConfigError, match="ISO 8601"):
        parse_time("yesterday")
