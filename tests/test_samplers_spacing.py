"""Tests for samplers.spacing: the K-step grids of paper times fast samplers visit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from difflab.samplers.spacing import Spacing, check_steps, timestep_grid

SPACINGS = [s.value for s in Spacing]


def _steps_for(T: int) -> list[int]:
    ks = {1, 2, 3, 5, 10, 20, 50, 999, T // 3, T - 1, T}
    return sorted(k for k in ks if 1 <= k <= T)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("T", [1, 2, 7, 50, 1000])
def test_grid_spans_both_ends_without_repeats(spacing, T):
    for K in _steps_for(T):
        grid = timestep_grid(T, K, spacing)
        assert len(grid) == K + 1, (K, grid)
        # labels: x_T first, x_0 last; network indices tau - 1: T - 1 first, all in {0..T-1}
        assert grid[0] == T and grid[-1] == 0, (K, grid)
        assert all(a > b for a, b in itertools.pairwise(grid)), (K, grid)  # no repeated step
        assert grid[0] - 1 == T - 1  # the first network evaluation is at index T - 1
        assert all(isinstance(t, int) for t in grid)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_full_and_single_step_grids(spacing):
    T = 20
    assert timestep_grid(T, T, spacing) == list(range(T, -1, -1))  # every index T-1..0 once
    assert timestep_grid(T, 1, spacing) == [T, 0]  # one evaluation at T - 1, then x_0


def test_spacings_differ_as_documented():
    T, K = 1000, 7  # stride 142, remainder 6
    assert timestep_grid(T, K, "linspace") == [round(i * T / K) for i in range(K, -1, -1)]
    leading = timestep_grid(T, K, "leading")[::-1]
    assert leading[:-1] == [142 * i for i in range(K)] and leading[-1] == T
    trailing = timestep_grid(T, K, "trailing")
    assert trailing[:-1] == [T - 142 * i for i in range(K)] and trailing[-1] == 0
    quad = timestep_grid(T, K, "quadratic")[::-1]
    gaps = np.diff(quad)
    assert (np.diff(gaps) > 0).all()  # denser near the data
    # quadratic at K close to T: rounding collides near 0, the fix-up keeps steps distinct
    dense = timestep_grid(50, 40, "quadratic")
    assert len(set(dense)) == 41 and dense[-2:] == [1, 0]


@pytest.mark.parametrize("bad", [0, -3, 51, 2.5])
def test_bad_step_counts(bad):
    with pytest.raises(ValueError, match=r"\[1, T = 50\]"):
        check_steps(bad, 50)
    with pytest.raises(ValueError, match="sampling steps"):
        timestep_grid(50, bad)


def test_unknown_spacing():
    with pytest.raises(ValueError, match="unknown sample.spacing 'even'; choose one of"):
        timestep_grid(10, 3, "even")
