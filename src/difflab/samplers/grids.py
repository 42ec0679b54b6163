"""Noise-level grids: which K noise levels a sampler visits, on any noise process.

Where ``spacing.py`` picks K of a discrete schedule's T integer times, a noise-level grid picks
levels sigma_bar (= sigma / alpha, EDM's sigma; noise.py) between ``sigma_max`` and
``sigma_min`` and maps them to the process's times with its inverse ``time_at_sigma_bar``, so
the same grid means the same noise levels for a discrete DDPM, the VP-SDE, EDM and flow
matching (Karras et al. 2022, Sec. 3 and Table 1). Grids, with N levels sigma_0 > ... > sigma_{N-1}:

- ``karras``: sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) -
  sigma_max^(1/rho)))^rho (Karras et al. 2022, Eq. 5; rho = 7), dense near the data;
- ``logsnr``: uniform in log sigma, i.e. in the log-SNR (Lu et al. 2022's uniform-lambda grid;
  the karras grid as rho -> infinity);
- ``time``: uniform in the process's own time between t(sigma_max) and t(sigma_min) (for flow
  matching uniform in t; Song et al. 2021's grid for the VP-SDE).

The final step (``final_step``):

- ``denoise`` (default): N = K levels, then the data, t = 0: the last step goes from sigma_min
  to sigma = 0, where every sampler returns its estimate of x_0 (EDM's sigma_N = 0): K steps;
- ``none``: N = K + 1 levels and no step to the data: the sample is the state at sigma_min,
  noise and all (score-SDE sampling without its last denoising step): K steps.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from difflab.choices import StrEnum, parse_enum
from difflab.noise import NoiseProcess

#: Largest number of steps a grid may have (a typo cannot allocate the machine's memory).
MAX_STEPS = 100_000


class Grid(StrEnum):
    KARRAS = "karras"
    LOGSNR = "logsnr"
    TIME = "time"


class FinalStep(StrEnum):
    DENOISE = "denoise"
    NONE = "none"


def check_grid_steps(steps: int) -> None:
    """Raise ValueError unless 1 <= steps <= MAX_STEPS (an integer)."""
    if int(steps) != steps or not 1 <= steps <= MAX_STEPS:
        raise ValueError(
            f"sampling steps K = {steps!r} is invalid: it must be an integer in [1, {MAX_STEPS}]"
        )


def check_levels(process: NoiseProcess, sigma_min: float, sigma_max: float, rho: float) -> None:
    """One-line errors for a noise-level range the process cannot give, or a bad rho."""
    if not rho > 0:
        raise ValueError(f"rho = {rho!r} is invalid: it must be > 0 (EDM uses 7)")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(
            f"sigma_min = {sigma_min:g} must be positive and below sigma_max = {sigma_max:g} "
            "(sample.sigma_min, sample.sigma_max); lower sigma_min or raise sigma_max"
        )
    top, bottom = process.sigma_bar_limit, process.sigma_bar_min
    if sigma_max > top * (1 + 1e-9):
        raise ValueError(
            f"sigma_max = {sigma_max:g} exceeds the largest noise level of this process "
            f"({top:.6g}); lower sample.sigma_max to at most that"
        )
    if sigma_min < bottom * (1 - 1e-9):
        raise ValueError(
            f"sigma_min = {sigma_min:g} is below the smallest noise level of this process "
            f"({bottom:.6g}), where its model was never used; raise sample.sigma_min"
        )


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> list[float]:
    """The n levels of Karras et al. 2022, Eq. 5, from sigma_max down to sigma_min."""
    if n == 1:
        return [float(sigma_max)]
    i = np.arange(n, dtype=np.float64) / (n - 1)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    levels = (a + i * (b - a)) ** rho
    levels[0], levels[-1] = sigma_max, sigma_min  # exact ends despite the power's round-off
    return levels.tolist()


def logsnr_sigmas(n: int, sigma_min: float, sigma_max: float) -> list[float]:
    """n levels uniform in log sigma (= in the log-SNR), from sigma_max to sigma_min."""
    if n == 1:
        return [float(sigma_max)]
    levels = np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), n))
    levels[0], levels[-1] = sigma_max, sigma_min
    return levels.tolist()


def noise_level_grid(
    process: NoiseProcess,
    steps: int,
    grid: Grid | str = Grid.KARRAS,
    *,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float = 7.0,
    final_step: FinalStep | str = FinalStep.DENOISE,
) -> list[float]:
    """The process times (descending) of a K-step grid (see the module docstring). Levels
    default to the process's range [sigma_bar_min, sigma_bar_max]."""
    grid = parse_enum(Grid, grid, "sample.grid")
    final_step = parse_enum(FinalStep, final_step, "sample.final_step")
    check_grid_steps(steps)
    lo = process.sigma_bar_min if sigma_min is None else float(sigma_min)
    hi = process.sigma_bar_max if sigma_max is None else float(sigma_max)
    check_levels(process, lo, hi, rho)
    n = int(steps) + (final_step is FinalStep.NONE)
    if grid is Grid.TIME:
        t_hi, t_lo = process.time_at_sigma_bar(hi), process.time_at_sigma_bar(lo)
        times = np.linspace(t_hi, t_lo, n).tolist() if n > 1 else [t_hi]
    else:
        levels = karras_sigmas(n, lo, hi, rho) if grid is Grid.KARRAS else logsnr_sigmas(n, lo, hi)
        times = [process.time_at_sigma_bar(s) for s in levels]
    if final_step is FinalStep.DENOISE:
        times.append(0.0)
    return check_descending(times)


def check_descending(times: list[float]) -> list[float]:
    """``times`` if strictly decreasing, else a one-line error (too many steps for the range)."""
    if any(b >= a for a, b in itertools.pairwise(times)):
        raise ValueError(
            f"the grid's {len(times)} times are not distinct in float64: too many steps for "
            "its noise-level range; lower sample.steps or widen sample.sigma_min..sigma_max"
        )
    return [float(t) for t in times]


def grid_sigma_bars(process: NoiseProcess, times: list[float]) -> list[float]:
    """The noise levels sigma_bar of a grid's times (0 at the data)."""
    return [0.0 if t == 0 else process.sigma_bar(t) for t in times]
