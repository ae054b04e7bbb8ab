"""The savings report as one self-contained HTML page (inline CSS and SVG; nothing fetched at view time).

The key numbers carry element ids and a ``data-value`` attribute holding the exact
number (the text is rounded for people), so a browser test can read them back.
"""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

from r2router_core.evaluation import Estimate, SavingsReport, Switched
from r2router_integrations.report.svg import bars, stacked_columns

__all__ = ["format_usd", "message_page", "render_page", "write_report"]

MEASURED = "measured"  # Estimate.basis of a measured number (the other: "estimated from predictions")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:980px;color:#222}
h1{font-size:1.5em;margin-bottom:2px} h2{font-size:1.15em;margin-top:28px;border-bottom:1px solid #ddd}
.sub{color:#666;margin-top:0} .tiles{display:flex;gap:14px;flex-wrap:wrap}
.tile{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}
.tile .v{font-size:1.5em;font-weight:600} .tile .k{color:#666;font-size:.85em}
table{border-collapse:collapse;margin:8px 0} td,th{padding:4px 10px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left} .measured{color:#1a7f37} .predicted{color:#9a6700}
.warn{background:#fff4e5;border:1px solid #f0c36d;padding:8px 12px;border-radius:6px}
.empty{color:#666;font-style:italic} .note{color:#666;font-size:.85em}
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _num(element_id: str, value: float | int | None, text: str, tag: str = "span") -> str:
    data = "" if value is None else f' data-value="{value!r}"'
    return f'<{tag} id="{escape(element_id)}"{data}>{escape(text)}</{tag}>'


def format_usd(value: float) -> str:
    """Dollars as the page shows them: 6 decimals under a cent, 4 under $100, else 2."""
    size = abs(value)
    text = f"${size:,.6f}" if size < 0.01 else f"${size:,.4f}" if size < 100 else f"${size:,.2f}"
    return f"-{text}" if value < 0 else text


_usd = format_usd


def _estimate(element_id: str, est: Estimate, fmt: str = "usd", *, signed: bool = False) -> str:
    def show(v: float) -> str:
        text = _usd(v) if fmt == "usd" else f"{v:.3f}"
        return ("+" if signed and v > 0 else "") + text

    css = "measured" if est.basis == MEASURED else "predicted"
    interval = "" if est.low == est.high else f" [{show(est.low)}, {show(est.high)}]"
    return (
        f"<td>{_num(element_id, est.value, show(est.value))}{escape(interval)}</td>"
        f'<td class="{css}">{escape(est.basis)}</td><td class="note">{escape(est.method)} (n={est.n})</td>'
    )


def render_page(report: SavingsReport, *, title: str = "r2router savings report", refresh_s: int | None = None) -> str:
    """The report as HTML (``refresh_s``: reload the page every this many seconds, for the live dashboard)."""
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">{escape(report.first)} to {escape(report.last)}'
        f"{' (shadow mode)' if report.shadow else ''} &middot; computed {escape(report.generated_at)}</p>",
        *[f'<p class="warn">{escape(w)}</p>' for w in report.warnings],
        _tiles(report),
        "<h2>Requests and spend over time</h2>",
        _time_charts(report),
        "<h2>Spend against counterfactuals</h2>",
        _counterfactuals(report),
    ]
    if report.switched is not None:
        body += ["<h2>Had you switched</h2>", _switched(report.switched)]
    body += [
        "<h2>By model</h2>",
        _arms(report),
        "<h2>Escalation, fallback and errors</h2>",
        _rates(report),
        f'<p class="note">Intervals: {escape(report.interval_method)}. <em>Measured</em>: summed from logged costs '
        "and feedback, or the off-policy (IPS) estimate over the requests sampled to each side. <em>Estimated from "
        "predictions</em>: the router's predicted cost and quality, or logged tokens at another model's prices; "
        "its interval covers traffic sampling, not the predictor's error.</p>",
    ]
    return _page(title, "\n".join(body), refresh_s)


def message_page(message: str, *, title: str = "r2router savings report", refresh_s: int | None = None) -> str:
    """A page that says why there is nothing to report (empty store, empty window...)."""
    return _page(title, f'<h1>{escape(title)}</h1>\n<p class="warn" id="message">{escape(message)}</p>', refresh_s)


def _page(title: str, body: str, refresh_s: int | None) -> str:
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{refresh}'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


def _tiles(report: SavingsReport) -> str:
    tiles = [
        ("requests", report.requests, str(report.requests), "requests"),
        ("spend", report.spend_usd, _usd(report.spend_usd), "spent (measured)"),
    ]
    if report.switched is not None and report.switched.cost_change:
        change = report.switched.cost_change[0]
        label = f"cost change had you switched ({change.basis})"
        tiles.append(
            ("headline-switch-cost", change.value, ("+" if change.value > 0 else "") + _usd(change.value), label)
        )
    for key in ("p50", "p90", "p99"):
        if key in report.latency:
            tiles.append((f"latency-{key}", report.latency[key], f"{report.latency[key]:.3f} s", f"latency {key}"))
    cells = [
        f'<div class="tile"><div class="v">{_num(i, v, t)}</div><div class="k">{escape(k)}</div></div>'
        for i, v, t, k in tiles
    ]
    return f'<div class="tiles">{"".join(cells)}</div>'


def _time_charts(report: SavingsReport) -> str:
    over = report.over_time
    minutes = over["bucket_s"] // 60
    labels = [s[5:16].replace("T", " ") for s in over["starts"]]
    return (
        f'<p class="note">per {minutes} min, by the model that answered (UTC)</p>'
        + stacked_columns(labels, over["requests"], chart_id="chart-requests", title="Requests over time")
        + stacked_columns(labels, over["spend"], chart_id="chart-spend", title="Spend over time", unit="$")
    )


def _counterfactuals(report: SavingsReport) -> str:
    actual = Estimate.exact(report.spend_usd, "summed from the log", report.requests)
    rows = [f"<tr><td>what you spent</td><td></td>{_estimate('cf-actual', actual)}</tr>"]
    chart: list[tuple[str, float, float | None, float | None]] = [("what you spent", report.spend_usd, None, None)]
    for cf in report.counterfactuals:
        cid = f"cf-{_slug(cf.name)}"
        if cf.spend is None:
            rows.append(
                f"<tr><td>{escape(cf.name)}</td><td>{escape(cf.model or '-')}</td>"
                f'<td id="{cid}" colspan="3" class="empty">{escape(cf.note)}</td></tr>'
            )
            continue
        note = f' <span class="note">{escape(cf.note)}</span>' if cf.note else ""
        rows.append(f"<tr><td>{escape(cf.name)}{note}</td><td>{escape(cf.model)}</td>{_estimate(cid, cf.spend)}</tr>")
        chart.append((f"{cf.name} ({cf.model})", cf.spend.value, cf.spend.low, cf.spend.high))
    table = "<table><tr><th>policy</th><th>model</th><th>spend</th><th>basis</th><th>how</th></tr>"
    return (
        table
        + "".join(rows)
        + "</table>"
        + bars(chart, chart_id="chart-counterfactuals", title="Spend under each policy", unit="$")
    )


def _switched(sw: Switched) -> str:
    sample = (
        "pure shadow (the baseline answered everything)"
        if sw.sample == 0
        else (f"the router answered a sample of {sw.sample:.0%}")
    )
    rows = []
    groups = [
        ("cost change (router - baseline)", "switch-cost", sw.cost_change, "usd", True),
        ("quality change (router - baseline)", "switch-quality", sw.quality_change, "q", True),
        ("router spend", "switch-router-spend", sw.router_spend, "usd", False),
        (f"baseline spend ({sw.baseline})", "switch-baseline-spend", sw.baseline_spend, "usd", False),
        ("router quality", "switch-router-quality", sw.router_quality, "q", False),
        ("baseline quality", "switch-baseline-quality", sw.baseline_quality, "q", False),
    ]
    for label, prefix, estimates, fmt, signed in groups:
        for est in estimates:
            kind = "measured" if est.basis == MEASURED else "predicted"
            rows.append(f"<tr><td>{escape(label)}</td>{_estimate(f'{prefix}-{kind}', est, fmt, signed=signed)}</tr>")
    if not rows:
        return '<p class="empty">no comparison: the log holds neither predictions nor sampled answers</p>'
    head = (
        f'<p class="note">{sw.requests} shadow requests against {escape(sw.baseline)}; {escape(sample)}.</p>'
        "<table><tr><th></th><th>value [95% interval]</th><th>basis</th><th>how</th></tr>"
    )
    return head + "".join(rows) + "</table>"


def _arms(report: SavingsReport) -> str:
    rows = []
    for arm in report.arms:
        s = _slug(arm.model)
        fb = "-" if arm.feedback is None else f"{arm.feedback.value:.3f} (n={arm.feedback.n})"
        gr = "-" if arm.graded is None else f"{arm.graded.value:.3f} (n={arm.graded.n})"
        p50 = f"{arm.latency['p50']:.3f}" if arm.latency else "-"
        p99 = f"{arm.latency['p99']:.3f}" if arm.latency else "-"
        rows.append(
            f"<tr><td>{escape(arm.model)}</td><td>{_num(f'arm-{s}-requests', arm.requests, str(arm.requests))}</td>"
            f"<td>{arm.share:.1%}</td><td>{_num(f'arm-{s}-spend', arm.spend_usd, _usd(arm.spend_usd))}</td>"
            f"<td>{escape(fb)}</td><td>{escape(gr)}</td><td>{arm.errors}</td><td>{p50}</td><td>{p99}</td></tr>"
        )
    table = (
        "<table><tr><th>model</th><th>requests</th><th>share</th><th>spend</th><th>feedback</th>"
        "<th>graders</th><th>errors</th><th>p50 s</th><th>p99 s</th></tr>" + "".join(rows) + "</table>"
    )
    quality = [
        (f"{a.model} {kind}", e.value, e.low, e.high)
        for a in report.arms
        for kind, e in (("feedback", a.feedback), ("graders", a.graded))
        if e is not None
    ]
    return table + bars(
        quality,
        chart_id="chart-quality",
        title="Quality by model",
        empty_message="no feedback or grades in this window yet",
    )


def _rates(report: SavingsReport) -> str:
    cells = []
    for name, est in report.rates.items():
        interval = f" [{max(est.low, 0):.1%}, {min(est.high, 1):.1%}]"
        cells.append(
            f"<tr><td>{escape(name)}</td><td>{_num(f'rate-{name}', est.value, f'{est.value:.1%}')}"
            f"{escape(interval)}</td></tr>"
        )
    return "<table><tr><th></th><th>share of requests [95%]</th></tr>" + "".join(cells) + "</table>"


def write_report(report: SavingsReport, out_dir: str | Path, *, title: str = "r2router savings report") -> Path:
    """Write ``index.html`` and ``report.json`` (the same numbers) into ``out_dir``; returns the page's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    page = out / "index.html"
    page.write_text(render_page(report, title=title))
    return page
