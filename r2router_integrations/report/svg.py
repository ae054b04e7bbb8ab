"""Plain inline SVG charts (no plotting library, no JavaScript): stacked columns over time, bars with intervals.

Hand-written on purpose: two chart kinds of a few dozen elements each, rendered
inside the gateway's dashboard every few seconds; matplotlib would add a heavy
import (and a dependency the ``server`` extra does not have) for the same picture.
Every chart with no data says so in words instead of drawing an empty frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["PALETTE", "bars", "empty", "stacked_columns"]

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
_W, _H, _LEFT, _BOTTOM, _TOP = 640, 220, 70, 40, 14


def empty(message: str, chart_id: str) -> str:
    """A chart's place when there is nothing to draw: the reason, in words."""
    return f'<p class="empty" id="{escape(chart_id)}">{escape(message)}</p>'


def _ticks(top: float) -> list[float]:
    if top <= 0:
        return [0.0]
    step = 10 ** math.floor(math.log10(top / 4))
    for factor in (1, 2, 5, 10):
        if top / (step * factor) <= 5:
            step *= factor
            break
    return [i * step for i in range(int(top / step) + 2) if i * step <= top * 1.0001 + step]


def _fmt(value: float, unit: str) -> str:
    if unit == "$":
        return f"-${-value:.4g}" if value < 0 else f"${value:.4g}"
    return f"{value:.3g}"


def stacked_columns(
    labels: Sequence[str], series: dict[str, Sequence[float]], *, chart_id: str, title: str, unit: str = ""
) -> str:
    """Columns over time, one colour per series, stacked.

    Args:
        labels: The x label of each column (a time).
        series: Name -> one value per column.
        chart_id: The element id.
        title: The accessible title.
        unit: ``"$"`` formats the axis as dollars.
    """
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    if not labels or not any(totals):
        return empty(f"{title}: nothing in this window", chart_id)
    ticks = _ticks(max(totals))
    top = ticks[-1] or 1.0
    width = (_W - _LEFT - 10) / len(labels)
    plot_h = _H - _BOTTOM - _TOP
    parts = [_frame(chart_id, title, ticks, top, unit)]
    for i in range(len(labels)):
        base = 0.0
        for k, (name, values) in enumerate(series.items()):
            value = values[i]
            if value <= 0:
                continue
            h = value / top * plot_h
            y = _TOP + plot_h - (base + value) / top * plot_h
            tip = f"{name} {labels[i]}: {_fmt(value, unit)}"
            parts.append(
                f'<rect x="{_LEFT + i * width + 1:.1f}" y="{y:.1f}" width="{max(width - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(tip)}</title></rect>'
            )
            base += value
    last = len(labels) - 1
    for i in sorted({0, len(labels) // 2, last}):
        x = _LEFT + (i + 0.5) * width
        anchor = "end" if i == last and last > 0 else "start" if i == 0 else "middle"
        x = _LEFT + last * width + width if anchor == "end" else _LEFT if anchor == "start" else x
        parts.append(f'<text x="{x:.1f}" y="{_H - _BOTTOM + 16}" text-anchor="{anchor}">{escape(labels[i])}</text>')
    parts.append(_legend(list(series)))
    parts.append("</svg>")
    return "".join(parts)


def bars(
    rows: Sequence[tuple[str, float, float | None, float | None]],
    *,
    chart_id: str,
    title: str,
    unit: str = "",
    empty_message: str = "nothing to show",
) -> str:
    """Horizontal bars with optional interval whiskers.

    Args:
        rows: ``(label, value, low, high)``; ``low``/``high`` ``None``: no interval drawn.
        chart_id: The element id.
        title: The accessible title.
        unit: ``"$"`` formats values as dollars.
        empty_message: What to say when ``rows`` is empty.
    """
    if not rows:
        return empty(f"{title}: {empty_message}", chart_id)
    top = max(max(v, h if h is not None and math.isfinite(h) else v) for _, v, _, h in rows)
    top = top * 1.1 if top > 0 else 1.0
    left, row_h = 280, 26
    height = len(rows) * row_h + 20
    scale = (_W - left - 80) / top
    parts = [
        f'<svg id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" '
        f'width="{_W}" height="{height}" role="img" aria-label="{escape(title)}" font-size="12"><title>'
        f"{escape(title)}</title>"
    ]
    for i, (label, value, low, high) in enumerate(rows):
        y = 10 + i * row_h
        parts.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{max(value, 0) * scale:.1f}" height="{row_h - 8}" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high) and high > low:
            x1, x2 = left + max(low, 0) * scale, left + min(high, top) * scale
            mid = y + row_h / 2 - 1
            parts.append(
                f'<path d="M{x1:.1f} {mid}H{x2:.1f}M{x1:.1f} {mid - 5}v10M{x2:.1f} {mid - 5}v10" stroke="#222"/>'
            )
        reach = high if high is not None and math.isfinite(high) else value
        end = left + max(value, min(reach, top), 0) * scale + 8
        parts.append(f'<text x="{end:.1f}" y="{y + 15}">{escape(_fmt(value, unit))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _frame(chart_id: str, title: str, ticks: list[float], top: float, unit: str) -> str:
    plot_h = _H - _BOTTOM - _TOP
    out = [
        f'<svg id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H + 24}" '
        f'width="{_W}" height="{_H + 24}" role="img" aria-label="{escape(title)}" font-size="11">'
        f"<title>{escape(title)}</title>"
    ]
    for tick in ticks:
        y = _TOP + plot_h - tick / top * plot_h
        out.append(f'<line x1="{_LEFT}" x2="{_W - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_fmt(tick, unit))}</text>')
    return "".join(out)


def _legend(names: list[str]) -> str:
    out, x = [], _LEFT
    for k, name in enumerate(names):
        out.append(f'<rect x="{x}" y="{_H + 6}" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 14}" y="{_H + 15}">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return "".join(out)
