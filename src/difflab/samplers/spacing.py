"""Which K of the T diffusion steps a fast sampler visits.

A grid is a list of K + 1 distinct *paper times* ``T = tau_K > ... > tau_1 > tau_0 = 0`` (the
labels of ``run_chain``): the chain starts at x_T, pure noise, and ends at x_0, the data. A step
from tau_i to tau_{i-1} evaluates the network at the step index ``tau_i - 1`` in {0..T-1}, so the
first evaluation is at index T - 1 and, for K = T, the last at index 0; for K < T the last step
jumps from x_{tau_1} straight to the model's x_0 (alpha_bar = 1) and no evaluation is spent on
the tiny x_1 -> x_0 step.

Spacings (all pinned to T and 0 at the ends, none repeats a step):

- ``linspace``: tau_i = round(i T / K), uniform (DDIM's "uniform", Song et al. 2020);
- ``leading``: multiples of the stride s = T // K counted up from 0; the remainder goes to the
  top gap (the diffusers "leading" grid, with its top fixed to reach x_T);
- ``trailing``: T minus multiples of s counted down from T; the remainder goes to the bottom
  gap (Lin et al. 2023, Table 2, with its bottom fixed to reach x_0);
- ``quadratic``: tau_i = round(T (i / K)^2), dense near the data (Song et al. 2020, App. D.2).
"""

from __future__ import annotations

import numpy as np

from difflab.choices import StrEnum, parse_enum


class Spacing(StrEnum):
    LINSPACE = "linspace"
    LEADING = "leading"
    TRAILING = "trailing"
    QUADRATIC = "quadratic"


def check_steps(steps: int, T: int) -> None:
    """Raise ValueError unless 1 <= steps <= T."""
    if int(steps) != steps or not 1 <= steps <= T:
        raise ValueError(
            f"sampling steps K = {steps!r} is invalid: it must be an integer in [1, T = {T}]"
        )


def _strictly_increasing(raw: np.ndarray, T: int) -> list[int]:
    """Round ``raw`` (K + 1 values from 0 to T, non-decreasing) to distinct integers, keeping
    0 and T at the ends: each value is raised above its predecessor and lowered to leave room
    for the values above it. A no-op for grids that are already distinct."""
    n = len(raw)
    out: list[int] = []
    for i, value in enumerate(np.rint(raw).astype(np.int64)):
        low = out[-1] + 1 if out else 0
        out.append(int(min(max(int(value), low), T - (n - 1 - i))))
    return out


def timestep_grid(T: int, steps: int, spacing: Spacing | str = Spacing.LINSPACE) -> list[int]:
    """The paper times [T, ..., 0] (K + 1 distinct ints, descending) a K-step sampler visits."""
    spacing = parse_enum(Spacing, spacing, "sample.spacing")
    check_steps(steps, T)
    K = int(steps)
    i = np.arange(K + 1, dtype=np.float64)
    stride = T // K
    if spacing is Spacing.LINSPACE:
        raw = i * T / K
    elif spacing is Spacing.LEADING:
        raw = np.append(i[:-1] * stride, T)
    elif spacing is Spacing.TRAILING:
        raw = np.append(0, T - i[:-1][::-1] * stride)
    else:
        raw = T * (i / K) ** 2
    return _strictly_increasing(raw, T)[::-1]
