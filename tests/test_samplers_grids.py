"""Noise-level grids (samplers/grids.py): the Karras, log-SNR and time grids against their
formulas, the final step, any process (discrete included), and one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from difflab.continuous import EDMProcess, FlowProcess, VPProcess
from difflab.noise import DiscreteProcess
from difflab.samplers.grids import grid_sigma_bars, karras_sigmas, noise_level_grid
from difflab.schedules import NoiseSchedule


def test_karras_grid_equals_its_formula():
    """Karras et al. 2022, Eq. 5 with N = 18, sigma_min = 0.002, sigma_max = 80, rho = 7,
    written out term by term; the EDM process's times are the levels, then sigma_N = 0."""
    N, lo, hi, rho = 18, 0.002, 80.0, 7.0
    expected = [
        (hi ** (1 / rho) + i / (N - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
        for i in range(N)
    ]
    grid = noise_level_grid(EDMProcess(), N, "karras", sigma_min=lo, sigma_max=hi, rho=rho)
    assert len(grid) == N + 1 and grid[-1] == 0.0
    np.testing.assert_allclose(grid[:-1], expected, rtol=1e-12)
    assert grid[0] == 80.0 and grid[-2] == 0.002
    # by hand: 80^(1/7) = 1.870243, 0.002^(1/7) = 0.411565, (1.870243 - 1.458678 / 17)^7 = 57.586
    assert grid[1] == pytest.approx(57.586, rel=2e-5)


def test_logsnr_grid_is_geometric_and_the_karras_limit():
    levels = grid_sigma_bars(FlowProcess(), noise_level_grid(
        FlowProcess(), 10, "logsnr", sigma_min=0.01, sigma_max=100.0))[:-1]  # fmt: skip
    ratios = np.array(levels[:-1]) / np.array(levels[1:])
    np.testing.assert_allclose(ratios, 10 ** (4 / 9), rtol=1e-9)  # equal steps in log-SNR
    # rho -> infinity turns the Karras grid into the geometric one (error O(1 / rho))
    karras = karras_sigmas(10, 0.01, 100.0, rho=1e5)
    np.testing.assert_allclose(karras, levels, rtol=1e-3)


def test_time_grid_is_uniform_in_the_process_time():
    process = VPProcess("linear")
    grid = noise_level_grid(process, 8, "time", sigma_min=0.01, sigma_max=100.0)
    steps = np.diff(grid[:-1])
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)
    assert process.sigma_bar(grid[0]) == pytest.approx(100.0, rel=1e-9)
    assert process.sigma_bar(grid[-2]) == pytest.approx(0.01, rel=1e-9)


def test_the_final_step():
    """denoise: K levels, then the data (K steps); none: K + 1 levels ending at sigma_min."""
    process = EDMProcess()
    denoise = noise_level_grid(process, 5, "karras", sigma_min=0.01, sigma_max=10.0)
    none = noise_level_grid(process, 5, "karras", sigma_min=0.01, sigma_max=10.0,
                            final_step="none")  # fmt: skip
    assert len(denoise) == len(none) == 6
    assert denoise[-1] == 0.0 and denoise[-2] == 0.01 and none[-1] == 0.01
    assert noise_level_grid(process, 1, "karras", sigma_max=10.0) == [10.0, 0.0]


def test_grids_on_a_discrete_schedule_are_fractional_paper_times():
    """The same levels on the discrete cosine schedule: times in (0, T] whose sigma_bar are the
    levels; the default range is the schedule's own, from x_1 to x_T."""
    process = DiscreteProcess(NoiseSchedule.from_name("cosine", 1000))
    grid = noise_level_grid(process, 10, "karras", sigma_min=0.05, sigma_max=50.0)
    levels = karras_sigmas(10, 0.05, 50.0)
    np.testing.assert_allclose(grid_sigma_bars(process, grid)[:-1], levels, rtol=1e-9)
    assert all(0 < t <= 1000 for t in grid[:-1])
    full = noise_level_grid(process, 10, "logsnr")
    assert full[0] == pytest.approx(1000.0) and full[-2] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"sigma_min": 5.0, "sigma_max": 5.0}, "must be positive and below sigma_max"),
        ({"sigma_min": 10.0, "sigma_max": 1.0}, "must be positive and below sigma_max"),
        ({"rho": 0.0}, r"rho = 0.0 is invalid: it must be > 0"),
        ({"rho": -7.0}, r"rho = -7.0 is invalid"),
        ({"sigma_max": 500.0}, r"sigma_max = 500 exceeds the largest noise level .*152"),
        ({"sigma_min": 1e-6}, "below the smallest noise level"),
        ({"steps": 0}, r"steps K = 0 is invalid"),
        ({"steps": 2.5}, r"steps K = 2.5 is invalid"),
        ({"grid": "karas"}, "unknown sample.grid 'karas'"),
        ({"final_step": "noise"}, "unknown sample.final_step 'noise'"),
    ],
)
def test_bad_grids_are_one_line_errors(kwargs, needle):
    args = {"steps": 10, "grid": "karras", **kwargs}
    steps, grid = args.pop("steps"), args.pop("grid")
    with pytest.raises(ValueError, match=needle):
        noise_level_grid(VPProcess("linear"), steps, grid, **args)


def test_too_many_steps_for_the_range_is_an_error():
    with pytest.raises(ValueError, match="not distinct in float64: too many steps"):
        noise_level_grid(EDMProcess(), 50_000, "karras", sigma_min=1.0, sigma_max=1.0 + 1e-12)


def test_vp_top_is_finite_and_edm_levels_are_unbounded():
    assert VPProcess("linear").sigma_bar_max == pytest.approx(math.sqrt(math.expm1(10.05)))
    grid = noise_level_grid(EDMProcess(), 3, "karras", sigma_max=200.0)
    assert grid[0] == 200.0
