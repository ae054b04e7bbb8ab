"""``r2router report``: the page and the JSON hold the store's numbers; bad input is one line and a non-zero exit."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r2router_core.evaluation import report_from_store
from r2router_core.store import OutcomeStore
from r2router_integrations.cli import main
from tests.core.evaluation.savings_data import BASELINE, shadow_log, write_log


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["report", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code: int, err: str, pattern: str) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("r2router report: error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in err


@pytest.fixture
def shadow_store(tmp_path: Path) -> Path:
    path = tmp_path / "shadow.db"
    with OutcomeStore(path) as store:
        write_log(store, shadow_log(400, 0.2, seed=5))
    return path


def _value(html: str, element_id: str) -> float:
    match = re.search(rf'id="{re.escape(element_id)}" data-value="([^"]+)"', html)
    assert match, element_id
    return float(match.group(1))


def test_the_page_and_the_json_hold_the_stores_numbers(
    shadow_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    code, stdout, _ = _run(capsys, "--store", str(shadow_store), "--out", str(out))
    assert code == 0 and "400 requests" in stdout
    with OutcomeStore(shadow_store) as store:
        expected = report_from_store(store)
    data = json.loads((out / "report.json").read_text())
    html = (out / "index.html").read_text()
    assert data["requests"] == expected.requests == 400
    assert data["spend_usd"] == pytest.approx(expected.spend_usd)
    assert _value(html, "requests") == 400 and _value(html, "spend") == pytest.approx(expected.spend_usd)
    switched = data["switched"]
    for kind, est in (("measured", switched["cost_change"][0]), ("predicted", switched["cost_change"][1])):
        assert _value(html, f"switch-cost-{kind}") == pytest.approx(est["value"])
    assert _value(html, "cf-baseline") == pytest.approx(data["counterfactuals"][0]["spend"]["value"])
    assert data["counterfactuals"][0]["model"] == BASELINE
    # self-contained: no script, nothing fetched
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html and html.count("<svg") >= 3


def test_since_and_until_select_the_window(
    shadow_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # rows are 30 s apart from 2026-12-01T09:00 UTC: 09:10 to 09:20 holds 20 of them
    code, _, _ = _run(
        capsys,
        "--store",
        str(shadow_store),
        "--out",
        str(tmp_path / "w"),
        "--since",
        "2026-12-01T09:10",
        "--until",
        "2026-12-01T10:20+01:00",
    )
    assert code == 0
    assert json.loads((tmp_path / "w" / "report.json").read_text())["requests"] == 20


def test_an_empty_store_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    OutcomeStore(tmp_path / "empty.db").close()
    code, _, err = _run(capsys, "--store", str(tmp_path / "empty.db"), "--out", str(tmp_path / "o"))
    _one_line_error(code, err, "no logged decisions: nothing to report")
    assert not (tmp_path / "o").exists()


def test_a_window_with_no_traffic_is_one_line_and_exit_1(
    shadow_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "--store", str(shadow_store), "--out", str(tmp_path / "o"), "--since", "2030-01-01")
    _one_line_error(code, err, "no logged decisions between 2030-01-01T00:00:00.000")


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["--since", "last tuesday"], "--since must be an ISO 8601"),
        (["--since", "2026-12-02", "--until", "2026-12-01"], "must be before --until"),
    ],
)
def test_bad_window_arguments_are_one_line(
    shadow_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], pattern: str
) -> None:
    code, _, err = _run(capsys, "--store", str(shadow_store), "--out", str(tmp_path / "o"), *argv)
    _one_line_error(code, err, pattern)


def test_a_missing_or_foreign_store_is_one_line_and_never_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "--store", str(tmp_path / "nope.db"), "--out", str(tmp_path / "o"))
    _one_line_error(code, err, "no store at .*nope.db")
    assert not (tmp_path / "nope.db").exists()
    foreign = tmp_path / "langfuse.db"
    sqlite3.connect(foreign).execute("CREATE TABLE traces (id TEXT)").connection.commit()
    code, _, err = _run(capsys, "--store", str(foreign), "--out", str(tmp_path / "o"))
    _one_line_error(code, err, "holds no r2router decision log .*traces")


def test_a_log_from_another_pool_gives_a_page_with_the_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from r2router_core import ModelSpec

    path = tmp_path / "other.db"
    with OutcomeStore(path) as store:
        write_log(store, shadow_log(30, 0.0, seed=2))
        store.set_models([ModelSpec("other-a", 1.0, 0.5), ModelSpec("other-b", 2.0, 1.0)])
    # the store's pool names only the other router's models
    sqlite3.connect(path).execute("DELETE FROM models WHERE name IN ('small', 'medium', 'large')").connection.commit()
    code, _, err = _run(capsys, "--store", str(path), "--out", str(tmp_path / "o"))
    assert code == 0 and "another router or pool" in err and "Traceback" not in err
    html = (tmp_path / "o" / "index.html").read_text()
    assert 'class="warn"' in html and "another router or pool" in html
    assert "no prices for the logged models" in html  # never priced at the other pool's prices


def test_a_store_being_written_while_the_report_reads_it(
    shadow_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(shadow_store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        for i in range(3):
            code, _, err = _run(capsys, "--store", str(shadow_store), "--out", str(tmp_path / f"o{i}"))
            assert code == 0, err
            data = json.loads((tmp_path / f"o{i}" / "report.json").read_text())
            assert sum(a["requests"] for a in data["arms"]) == data["requests"] >= 400
            time.sleep(0.05)
    finally:
        writer.terminate()
        writer.wait(10)
    assert data["requests"] > 400  # it did read rows written meanwhile


_WRITER = """
import sys, itertools
from r2router_core.store import DecisionRecord, OutcomeStore
store = OutcomeStore(sys.argv[1])
print("writing", flush=True)
for i in itertools.count():
    store.record_decisions([DecisionRecord(id=f"live{i}", source="gateway", model="small", budget=100,
                                           options={}, cost_usd=0.0001, input_tokens=10, output_tokens=20)])
"""
