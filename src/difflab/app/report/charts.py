"""Line charts as inline SVG for the HTML report: no matplotlib (it takes seconds to import), no
script, crisp at any zoom. A chart is one or more :class:`Series` on shared axes; points carry
``<title>`` tooltips; non-finite values (and values <= 0 on a log axis) are left out and said
so under the chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

#: Colours of successive series (Tableau 10), distinguishable in print and by most viewers.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: Points drawn per series at most (long logs are thinned evenly, keeping both ends).
MAX_POINTS = 600
#: Points per series that get a hover tooltip at most.
MAX_TIPS = 120
WIDTH, HEIGHT = 420, 240
#: Legend entries per row, under the chart.
LEGEND_COLUMNS = 3
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 12, 26, 40


@dataclass(frozen=True)
class Series:
    """One line: ``x`` and ``y`` of equal length, drawn in ``color`` (default: the palette)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: str | None = None


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str = "",
    log_y: bool | None = None,
    log_x: bool = False,
) -> str:
    """An SVG line chart (a ``<figure>``). ``log_y=None`` picks a log axis when every finite
    value is > 0 and they span more than a factor of 20."""
    cleaned, dropped = _clean(series, log_x=log_x)
    if log_y is None:
        ys = np.concatenate([s[2] for s in cleaned]) if cleaned else np.zeros(0)
        log_y = bool(ys.size) and ys.min() > 0 and ys.max() / ys.min() > 20
    if log_y:
        cleaned, more = _positive(cleaned)
        dropped += more
    head = f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
    if not cleaned:
        return head + '<p class="note">no finite values to draw</p></figure>'
    xs = np.concatenate([s[1] for s in cleaned])
    ys = np.concatenate([s[2] for s in cleaned])
    x_axis = _Axis(xs, log_x, _LEFT, WIDTH - _RIGHT)
    y_axis = _Axis(ys, log_y, HEIGHT - _BOTTOM, _TOP)
    rows = -(-len(cleaned) // LEGEND_COLUMNS) if len(cleaned) > 1 else 0
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT + 14 * rows}" role="img" '
        f'aria-label="{escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        *_grid(x_axis, y_axis),
        *(_polyline(i, s, x_axis, y_axis) for i, s in enumerate(cleaned)),
        _labels(x_label, y_label, log_y),
    ]
    if len(cleaned) > 1:
        parts.append(_legend(cleaned))
    parts.append("</svg>")
    note = f'<p class="note">{dropped} points not drawn (non-finite, or &le; 0 on a log axis)</p>'
    return head + "".join(parts) + (note if dropped else "") + "</figure>"


def _clean(series: Sequence[Series], *, log_x: bool) -> tuple[list[tuple], int]:
    """(series, x, y) with non-finite points removed, thinned to MAX_POINTS; and the count
    of points removed."""
    out, dropped = [], 0
    for s in series:
        x = np.asarray(s.x, dtype=np.float64)
        y = np.asarray(s.y, dtype=np.float64)
        keep = np.isfinite(x) & np.isfinite(y) & ((x > 0) if log_x else True)
        dropped += int((~keep).sum())
        x, y = x[keep], y[keep]
        if x.size > MAX_POINTS:
            idx = np.unique(np.linspace(0, x.size - 1, MAX_POINTS).round().astype(int))
            x, y = x[idx], y[idx]
        if x.size:
            out.append((s, x, y))
    return out, dropped


def _positive(cleaned: list[tuple]) -> tuple[list[tuple], int]:
    out, dropped = [], 0
    for s, x, y in cleaned:
        keep = y > 0
        dropped += int((~keep).sum())
        if keep.any():
            out.append((s, x[keep], y[keep]))
    return out, dropped


class _Axis:
    """Maps data values to pixels between ``start`` and ``end``, with rounded ticks."""

    def __init__(self, values: np.ndarray, log: bool, start: float, end: float) -> None:
        self.log = log
        v = np.log10(values) if log else values
        lo, hi = float(v.min()), float(v.max())
        if hi - lo < 1e-12 * max(1.0, abs(hi)):
            pad = 0.5 if log else (abs(hi) * 0.1 or 1.0)
            lo, hi = lo - pad, hi + pad
        elif not log:
            pad = 0.04 * (hi - lo)
            lo, hi = lo - pad, hi + pad
        self.lo, self.hi, self.start, self.end = lo, hi, start, end

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.start + (v - self.lo) / (self.hi - self.lo) * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:
            lo, hi = math.floor(self.lo), math.ceil(self.hi)
            step = max(1, math.ceil((hi - lo) / 6))
            decades = [10.0**k for k in range(lo, hi + 1, step)]
            inside = [d for d in decades if self.lo - 1e-9 <= math.log10(d) <= self.hi + 1e-9]
            if len(inside) >= 2:
                return inside
            return [10**v for v in nice_ticks(self.lo, self.hi)]  # a narrow log range
        return nice_ticks(self.lo, self.hi)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round values within [lo, hi], 1, 2 or 5 times a power of ten apart: the spacing whose
    number of ticks is nearest ``n`` (the wider one on a tie)."""
    mag = 10 ** math.floor(math.log10((hi - lo) / max(n - 1, 1)))
    best: list[float] = []
    for step in (m * mag for m in (0.5, 1, 2, 5, 10)):
        first = math.ceil(lo / step - 1e-9)
        ticks = [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]
        if not best or abs(len(ticks) - n) <= abs(len(best) - n):
            best = ticks
    return best


def tick_label(value: float, *, log: bool = False) -> str:
    """A short label: 0.001 -> '0.001', 3.0 -> '3', 2000 -> '2000', 12000 -> '12k',
    3e6 -> '3M'; on a log axis powers of ten outside [0.01, 1000] as '1e-5'."""
    if value == 0:
        return "0"
    if log and not 0.01 <= value <= 1000:
        exponent = math.log10(value)
        if abs(exponent - round(exponent)) < 1e-9:
            return f"1e{round(exponent)}"
    for scale, suffix, start in ((1e6, "M", 1e6), (1e3, "k", 1e4)):
        if abs(value) >= start and abs(value / scale - round(value / scale, 3)) < 1e-9:
            return f"{value / scale:g}{suffix}"
    if abs(value) < 1e4 and value == round(value):
        return str(round(value))
    text = f"{value:.3g}"
    return text.replace("e-0", "e-").replace("e+0", "e+")


def _grid(x_axis: _Axis, y_axis: _Axis) -> list[str]:
    out = [
        f'<rect x="{_LEFT}" y="{_TOP}" width="{WIDTH - _LEFT - _RIGHT}" '
        f'height="{HEIGHT - _TOP - _BOTTOM}" class="plot-area"/>'
    ]
    for v in y_axis.ticks():
        y = y_axis(v)
        out.append(f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(
            f'<text x="{_LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">'
            f"{tick_label(v, log=y_axis.log)}</text>"
        )
    for v in x_axis.ticks():
        x = x_axis(v)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{HEIGHT - _BOTTOM}"/>')
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - _BOTTOM + 13}" text-anchor="middle">'
            f"{tick_label(v, log=x_axis.log)}</text>"
        )
    return out


def _polyline(i: int, item: tuple, x_axis: _Axis, y_axis: _Axis) -> str:
    s, x, y = item
    color = s.color or PALETTE[i % len(PALETTE)]
    points = " ".join(f"{x_axis(a):.1f},{y_axis(b):.1f}" for a, b in zip(x, y))
    tips = np.unique(np.linspace(0, x.size - 1, min(x.size, MAX_TIPS)).round().astype(int))
    dots = "".join(
        f'<circle cx="{x_axis(x[k]):.1f}" cy="{y_axis(y[k]):.1f}" r="2.2">'
        f"<title>{escape(s.label)}: x = {x[k]:.6g}, y = {y[k]:.6g}</title></circle>"
        for k in tips
    )
    line = (
        f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5"/>'
        if x.size > 1
        else ""
    )
    return f'<g class="series" fill="{color}"><title>{escape(s.label)}</title>{line}{dots}</g>'


def _labels(x_label: str, y_label: str, log_y: bool) -> str:
    y_text = escape(y_label + (" (log scale)" if log_y else ""))
    return (
        f'<text x="{(_LEFT + WIDTH - _RIGHT) / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" '
        f'class="axis-label">{escape(x_label)}</text>'
        f'<text transform="translate(12 {(HEIGHT - _BOTTOM + _TOP) / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle" class="axis-label">{y_text}</text>'
    )


def _legend(cleaned: list[tuple]) -> str:
    """One entry per series, LEGEND_COLUMNS a row, under the x-axis label."""
    items = []
    width = (WIDTH - _LEFT) / LEGEND_COLUMNS
    for i, (s, _, _) in enumerate(cleaned):
        color = s.color or PALETTE[i % len(PALETTE)]
        row, col = divmod(i, LEGEND_COLUMNS)
        x, y = _LEFT + col * width, HEIGHT + 14 * row + 4
        items.append(
            f'<rect x="{x:.0f}" y="{y - 8}" width="9" height="9" fill="{color}"/>'
            f'<text x="{x + 13:.0f}" y="{y}" class="legend">{escape(s.label[:28])}</text>'
        )
    return "".join(items)
