"""Schedule search: the K noise levels (and a sampler's noise) that minimise a validation
criterion, for any model and sampler (WaveGrad's noise-schedule search, Chen et al. 2020,
Sec. 4, generalised from a grid over beta mantissas to a continuous search).

The unknowns are u_i = log sigma_i of the grid's levels sigma_0 > ... > sigma_{N-1} (noise
levels sigma / alpha, samplers/grids.py; the final step to the data, if any, stays) and
optionally one noise knob of a stochastic sampler (DDIM's eta, EDM's S_churn). The objective is
``evaluate(levels, knob)``: sample with fixed random numbers (the same x_T and noise every
time, so differences come from the schedule alone) and score the samples on held-out data.

The search is a compass (pattern) search (Kolda, Lewis & Torczon 2003, SIAM Review 45, Sec.
3): from the start, try each coordinate +-step in turn, keep a move only if it lowers the
objective, halve the step after a sweep without improvement, stop at ``budget`` evaluations
or when the step falls below ``min_step``. It needs no gradients (samplers and criteria need
not be differentiable), and since it only accepts improvements the result is never worse than
its start on the objective it minimised. Levels stay strictly decreasing (a gap of at least
``min_gap`` in log sigma) inside ``bounds``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Objective = Callable[[list[float], float | None], float]


@dataclass(frozen=True)
class Knob:
    """A sampler's noise setting searched with the levels: its value, bounds and first step."""

    name: str
    value: float
    low: float
    high: float
    step: float


@dataclass
class SearchResult:
    """The best levels (descending sigmas), knob value and objective; ``start_value``, the
    number of ``evaluations`` and the best value after each one (``history``)."""

    levels: list[float]
    knob: float | None
    value: float
    start_value: float
    evaluations: int
    history: list[float] = field(default_factory=list)


def _feasible(u: Sequence[float], bounds: tuple[float, float], min_gap: float) -> bool:
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    inside = u[0] <= hi + 1e-12 and u[-1] >= lo - 1e-12
    return inside and all(a - b >= min_gap for a, b in itertools.pairwise(u))


def _move(
    u: list[float], k: float | None, i: int, amount: float, step: float, knob: Knob | None
) -> tuple[list[float] | None, float | None]:
    """Coordinate i moved by ``amount`` steps: a level (log sigma) or, past the levels, the
    knob (clipped to its bounds; None when the clip leaves it where it was)."""
    if i < len(u):
        moved = list(u)
        moved[i] += amount * step
        return moved, k
    assert knob is not None and k is not None
    value = min(max(k + amount * knob.step, knob.low), knob.high)
    return (None, k) if value == k else (list(u), value)


def search_levels(
    evaluate: Objective,
    start: Sequence[float],
    *,
    bounds: tuple[float, float],
    knob: Knob | None = None,
    budget: int = 150,
    step: float = 0.5,
    min_step: float = 1 / 32,
    min_gap: float = 1e-3,
) -> SearchResult:
    """Minimise ``evaluate(levels, knob)`` from ``start`` levels (see the module docstring).

    1. evaluate the start; 2. for each coordinate (levels top first, then the knob) try
    +step and -step, keep the first that improves; 3. after a sweep without improvement halve
    the step; 4. stop at ``budget`` evaluations or a step below ``min_step``.
    """
    if budget < 1:
        raise ValueError(f"the search budget must be at least 1 evaluation, got {budget}")
    u = [math.log(s) for s in start]
    if not _feasible(u, bounds, min_gap):
        raise ValueError(f"the starting levels {list(start)} are not inside {bounds}, descending")
    k = None if knob is None else knob.value
    best = evaluate([math.exp(v) for v in u], k)
    result = SearchResult([math.exp(v) for v in u], k, best, best, 1, [best])
    scale = 1.0
    while result.evaluations < budget and step * scale >= min_step:
        improved = False
        for i in range(len(u) + (knob is not None)):
            for sign in (1.0, -1.0):
                if result.evaluations >= budget:
                    break
                cand_u, cand_k = _move(u, k, i, sign * scale, step, knob)
                if cand_u is None or not _feasible(cand_u, bounds, min_gap):
                    continue
                value = evaluate([math.exp(v) for v in cand_u], cand_k)
                result.evaluations += 1
                moved = value < best
                if moved:
                    u, k, best, improved = cand_u, cand_k, value, True
                result.history.append(best)
                if moved:
                    break
        if not improved:
            scale /= 2
    result.levels, result.knob, result.value = [math.exp(v) for v in u], k, best
    return result
