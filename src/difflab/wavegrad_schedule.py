"""A few-step noise schedule found by search, as WaveGrad's were (Chen et al. 2020, Sec. 4.1):
for K steps, candidate betas beta_n = m_n * 10^(linspace(-6, -1, K))_n with a mantissa m_n per
step from a short list, each schedule scored by a criterion (WaveGrad: the log-mel distance of
vocoded validation clips, ``app/tune_vocoder.py``); the smallest score wins.

The paper scored every combination (3^6 = 729 for 6 steps with 3 mantissas). Here a
coordinate search visits far fewer: from a starting schedule, each step in turn takes the
mantissa that scores best with the others fixed, for ``passes`` sweeps (or until a sweep
changes nothing); every schedule is scored once (cached), about passes * K * (M - 1) + 1
calls. ``exhaustive=True`` scores the whole grid instead. The criterion sees only the betas,
so any scorer fits (``Criterion``); it should use fixed seeds so that scores are paired.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: ``criterion(betas) -> score``: smaller is better.
Criterion = Callable[[list[float]], float]
MANTISSAS = (1.0, 2.0, 5.0)
EXPONENTS = (-6.0, -1.0)


def candidate_betas(steps: int, mantissas: Sequence[float] = MANTISSAS) -> list[list[float]]:
    """Per step n (first step = least noise), the betas m * 10^(linspace(-6, -1, K))_n."""
    if steps < 2:
        raise ValueError(f"--steps {steps}: a searched schedule needs at least 2 steps")
    if not mantissas or any(not 0 < m < 10 for m in mantissas):
        raise ValueError(f"mantissas {list(mantissas)} must be numbers in (0, 10)")
    powers = 10.0 ** np.linspace(*EXPONENTS, steps)
    return [[float(m * p) for m in sorted(mantissas)] for p in powers]


@dataclass
class SearchResult:
    """The best betas and score, the starting score, and every schedule scored, in order."""

    betas: list[float]
    score: float
    start_score: float
    scored: list[tuple[list[float], float]] = field(default_factory=list)


def search_schedule(
    criterion: Criterion,
    candidates: Sequence[Sequence[float]],
    *,
    start: Sequence[int] | None = None,
    passes: int = 2,
    exhaustive: bool = False,
    progress: Callable[[list[float], float], None] | None = None,
) -> SearchResult:
    """The schedule among ``candidates`` (a list of choices per step) that scores lowest.

    ``start``: the starting choice per step (default: the middle one); ``progress`` is called
    with every newly scored schedule."""
    cache: dict[tuple[int, ...], float] = {}
    scored: list[tuple[list[float], float]] = []

    def score(choice: tuple[int, ...]) -> float:
        if choice not in cache:
            betas = [float(candidates[n][c]) for n, c in enumerate(choice)]
            cache[choice] = float(criterion(betas))
            scored.append((betas, cache[choice]))
            if progress is not None:
                progress(betas, cache[choice])
        return cache[choice]

    best = tuple(start) if start is not None else tuple(len(c) // 2 for c in candidates)
    start_score = score(best)
    if exhaustive:
        best = min(itertools.product(*(range(len(c)) for c in candidates)), key=score)
    else:
        best = _coordinate_search(score, candidates, best, passes)
    betas = [float(candidates[n][c]) for n, c in enumerate(best)]
    return SearchResult(betas, cache[best], start_score, scored)


def _coordinate_search(score, candidates, best: tuple[int, ...], passes: int) -> tuple[int, ...]:
    """Sweep the steps ``passes`` times; each step takes its best choice given the others."""
    for _ in range(passes):
        changed = False
        for n in range(len(candidates)):
            options = [best[:n] + (c,) + best[n + 1 :] for c in range(len(candidates[n]))]
            winner = min(options, key=score)
            if score(winner) < score(best):
                best, changed = winner, True
        if not changed:
            break
    return best


def levels_from_betas(betas: Sequence[float]) -> list[float]:
    """The noise levels sigma_bar_k = sqrt(1 / alpha_bar_k - 1) of K betas (alpha_bar_k =
    prod_{j <= k} (1 - beta_j)), noisiest first: the unknowns of the compass search
    (``schedule_search.search_levels``), computed in float64."""
    log_alpha_bars = np.cumsum(np.log1p(-np.asarray(betas, dtype=np.float64)))
    return [float(s) for s in np.sqrt(np.expm1(-log_alpha_bars))[::-1]]


def betas_from_levels(levels: Sequence[float]) -> list[float]:
    """The inverse of :func:`levels_from_betas`: strictly decreasing levels sigma_bar (noisiest
    first) give alpha_bar_k = 1 / (1 + sigma_bar_k^2) and beta_k = 1 - alpha_bar_k /
    alpha_bar_{k-1}, each in (0, 1)."""
    sigmas = np.asarray(levels, dtype=np.float64)[::-1]
    log_alpha_bars = -np.log1p(sigmas**2)
    steps = np.diff(log_alpha_bars, prepend=0.0)
    return [float(b) for b in -np.expm1(steps)]
