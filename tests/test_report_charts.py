"""The report's SVG charts: round ticks that cover the data, points placed by an affine (or
log-affine) map inside the plot area, non-finite points left out and counted, long series
thinned keeping both ends, and well-formed SVG."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from difflab.app.report.charts import (
    _BOTTOM,
    _LEFT,
    _RIGHT,
    _TOP,
    HEIGHT,
    MAX_POINTS,
    WIDTH,
    Series,
    line_chart,
    nice_ticks,
    tick_label,
)

SVG = "{http://www.w3.org/2000/svg}"


def svg_of(chart: str) -> ET.Element:
    return ET.fromstring(re.search(r"<svg.*</svg>", chart, re.S).group(0))


def polyline_points(chart: str) -> list[np.ndarray]:
    root = svg_of(chart)
    return [
        np.array([[float(v) for v in p.split(",")] for p in line.get("points").split()])
        for line in root.iter(f"{SVG}polyline")
    ]


@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (-3.2, 17.9), (1e-4, 3e-4), (995.0, 1005.0)])
def test_ticks_are_round_and_inside(lo, hi):
    ticks = nice_ticks(lo, hi)
    assert 2 <= len(ticks) <= 11
    assert all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks)
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-9


def test_points_are_an_affine_image_of_the_data():
    x = np.arange(50.0)
    y = np.sin(x / 7) * 3 + 1
    (points,) = polyline_points(line_chart([Series("s", x, y)], title="t", x_label="x"))
    assert points.shape == (50, 2)
    assert (points[:, 0] >= _LEFT).all() and (points[:, 0] <= WIDTH - _RIGHT).all()
    assert (points[:, 1] >= _TOP).all() and (points[:, 1] <= HEIGHT - _BOTTOM).all()
    # pixel = a + b * value, b < 0 on the y axis (up is smaller); rounding to 0.1 px
    for values, pixels, sign in ((x, points[:, 0], 1), (y, points[:, 1], -1)):
        slope, intercept = np.polyfit(values, pixels, 1)
        assert np.sign(slope) == sign
        assert np.abs(intercept + slope * values - pixels).max() < 0.06


def test_log_axis_is_affine_in_log10_and_drops_nonpositive():
    y = np.array([1e-3, 1e-2, 0.0, 1e-1, 1.0])
    chart = line_chart([Series("s", np.arange(5), y)], title="t", x_label="x", log_y=True)
    (points,) = polyline_points(chart)
    assert points.shape == (4, 2)
    steps = np.diff(points[:, 1])
    assert np.allclose(steps, steps[0], atol=0.11) and steps[0] < 0  # equal per decade
    assert "1 points not drawn" in chart


def test_nonfinite_points_are_left_out_and_counted():
    y = [1.0, float("nan"), 2.0, float("inf"), 3.0]
    chart = line_chart([Series("s", range(5), y)], title="t", x_label="x")
    (points,) = polyline_points(chart)
    assert len(points) == 3 and "2 points not drawn" in chart
    empty = line_chart([Series("s", [1, 2], [float("nan")] * 2)], title="t", x_label="x")
    assert "no finite values" in empty and "<svg" not in empty


def test_long_series_are_thinned_keeping_both_ends():
    x = np.arange(10_000.0)
    (points,) = polyline_points(line_chart([Series("s", x, x**2)], title="t", x_label="x"))
    assert len(points) == MAX_POINTS
    assert points[0, 0] == pytest.approx(_LEFT + (WIDTH - _LEFT - _RIGHT) * 0.04 / 1.08, abs=0.1)
    assert points[-1, 0] > points[-2, 0]


def test_several_series_share_axes_and_get_a_legend():
    chart = line_chart(
        [Series("a", [0, 1], [0, 1]), Series("b", [0, 1], [1, 2])], title="t", x_label="x"
    )
    a, b = polyline_points(chart)
    assert a[1, 1] == pytest.approx(b[0, 1])  # y = 1 at the same height in both
    legend = [t.text for t in svg_of(chart).iter(f"{SVG}text") if t.get("class") == "legend"]
    assert legend == ["a", "b"]


def test_constant_series_and_labels():
    (points,) = polyline_points(
        line_chart([Series("s", [0, 1, 2], [0.0] * 3)], title="t", x_label="x")
    )
    assert np.allclose(points[:, 1], (HEIGHT - _BOTTOM + _TOP) / 2, atol=0.1)
    assert tick_label(0.001) == "0.001" and tick_label(1e-5, log=True) == "1e-5"
    assert tick_label(12000.0) == "12k" and tick_label(3.0) == "3" and tick_label(2000.0) == "2000"
    assert tick_label(2.5e6) == "2.5M" and tick_label(0.25) == "0.25"
    assert nice_ticks(-320.0, 8320.0) == [0, 2000, 4000, 6000, 8000]
