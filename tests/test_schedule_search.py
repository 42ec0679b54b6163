"""The compass search of schedule_search.py on objectives with known minima: it finds them to
its final step, never ends worse than its start, keeps the levels ordered and inside their
bounds, searches a sampler's noise knob within its range, and spends at most its budget."""

from __future__ import annotations

import math

import pytest

from difflab.schedule_search import Knob, search_levels

TARGET = [20.0, 3.0, 0.4, 0.05]  # the minimiser, descending


def _quadratic(levels, knob):
    """Squared distance in log sigma to TARGET, plus (knob - 0.3)^2 when searched."""
    value = sum((math.log(a) - math.log(b)) ** 2 for a, b in zip(levels, TARGET, strict=True))
    return value + (0.0 if knob is None else (knob - 0.3) ** 2)


def test_finds_the_minimum_and_keeps_improvements_only():
    start = [40.0, 10.0, 1.0, 0.01]
    result = search_levels(_quadratic, start, bounds=(1e-3, 80.0), budget=400, min_step=1e-3)
    assert result.value <= result.start_value == _quadratic(start, None)
    # a compass search ends within its last step (1e-3 in log sigma) of a smooth minimum
    for got, want in zip(result.levels, TARGET, strict=True):
        assert abs(math.log(got / want)) < 2e-3, (result.levels, TARGET)
    assert all(b <= a for a, b in zip(result.history, result.history[1:], strict=False))
    assert result.evaluations <= 400 and len(result.history) == result.evaluations


def test_levels_stay_ordered_and_inside_the_bounds():
    """The minimiser of this objective lies outside the bounds and out of order: the result
    is the best feasible point found, descending, within [lo, hi]."""

    def objective(levels, knob):
        return sum((math.log(s) - math.log(t)) ** 2 for s, t in zip(levels, [500.0, 1e-5, 1.0]))

    result = search_levels(objective, [50.0, 5.0, 0.5], bounds=(0.01, 100.0), budget=300)
    assert 100.0 >= result.levels[0] > result.levels[1] > result.levels[2] >= 0.01
    assert result.value < result.start_value


def test_the_noise_knob_is_searched_within_its_range():
    knob = Knob("eta", 1.0, 0.0, 1.0, 0.25)
    result = search_levels(_quadratic, TARGET, bounds=(1e-3, 80.0), knob=knob, budget=100)
    assert 0.0 <= result.knob <= 1.0 and abs(result.knob - 0.3) <= 0.25 / 8
    assert result.levels == pytest.approx(TARGET)  # the levels already were optimal


def test_budget_and_bad_starts():
    calls = []
    search_levels(lambda lv, k: calls.append(1) or 1.0, TARGET, bounds=(1e-3, 80.0), budget=7)
    assert len(calls) == 7
    with pytest.raises(ValueError, match="budget must be at least 1"):
        search_levels(_quadratic, TARGET, bounds=(1e-3, 80.0), budget=0)
    with pytest.raises(ValueError, match="not inside"):
        search_levels(_quadratic, [1.0, 2.0], bounds=(1e-3, 80.0))
