"""The few-step schedule search improves its criterion: on a small case with an analytic
vocoder (Gaussian audio) and on a criterion whose optimum is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from difflab.schedule_search import search_levels
from difflab.vocoder import vocode
from difflab.wavegrad_schedule import (
    betas_from_levels,
    candidate_betas,
    levels_from_betas,
    search_schedule,
)
from oracles import GaussianVocoder


def test_candidates_follow_the_papers_grid():
    grid = candidate_betas(6, (1, 2, 5))
    np.testing.assert_allclose([c[0] for c in grid], 10.0 ** np.linspace(-6, -1, 6))
    np.testing.assert_allclose(grid[-1], [0.1, 0.2, 0.5])
    with pytest.raises(ValueError, match="at least 2 steps"):
        candidate_betas(1)


def test_coordinate_search_finds_a_separable_optimum_with_few_calls():
    """A criterion separable over steps has its optimum at each step's best choice: the
    coordinate search reaches it, with far fewer calls than the 3^5 = 243 of the grid, and
    the exhaustive search agrees."""
    candidates = candidate_betas(5)
    target = [c[i] for c, i in zip(candidates, (0, 2, 1, 2, 0))]

    def criterion(betas):
        return float(sum((np.log(b) - np.log(t)) ** 2 for b, t in zip(betas, target)))

    result = search_schedule(criterion, candidates)
    assert result.betas == pytest.approx(target) and result.score == pytest.approx(0.0)
    assert result.start_score > 0 and len(result.scored) < 30
    assert search_schedule(criterion, candidates, exhaustive=True).betas == pytest.approx(target)


def test_the_search_improves_a_vocoders_criterion():
    """Gaussian audio of variance v = 0.04 (tests/test_vocoder.py's analytic network), vocoded
    in 3 steps with fixed noise: the criterion is |log(output variance / v)|. The search scores
    below its start and below every schedule it did not pick (the best of what it scored), and
    the exhaustive grid's best is not better than the search's by more than the grid allows."""
    x_T = torch.randn(16, 1, 400, generator=torch.Generator().manual_seed(0))
    mel = torch.zeros(16, 1, 40)

    def criterion(betas):
        out = vocode(GaussianVocoder(0.04), mel, betas, clip=False, x_T=x_T,
                     generator=torch.Generator().manual_seed(1)).x  # fmt: skip
        return abs(float(np.log(out.var().item() / 0.04)))

    candidates = [[1e-3, 1e-2, 5e-2], [1e-2, 0.1, 0.3], [0.1, 0.5, 0.9]]
    result = search_schedule(criterion, candidates, start=(0, 0, 0))
    assert result.score < result.start_score
    assert result.score == min(score for _, score in result.scored)
    grid_best = min(criterion(list(b)) for b in itertools.product(*candidates))
    assert result.score <= grid_best + 0.05


def test_levels_and_betas_convert_both_ways():
    """sigma_bar_k^2 = 1 / alpha_bar_k - 1 with alpha_bar_k = prod (1 - beta_j): checked
    against the product computed directly, noisiest level first, and inverted to float64
    rounding (rtol 1e-9: a few ulps of the log1p/expm1 pairs over 6 steps)."""
    betas = [1e-6, 2e-5, 1e-3, 2e-2, 0.1, 0.5]
    levels = levels_from_betas(betas)
    alpha_bars = np.cumprod(1 - np.array(betas))
    np.testing.assert_allclose(levels, np.sqrt(1 / alpha_bars - 1)[::-1], rtol=1e-9)
    assert all(a > b for a, b in itertools.pairwise(levels))
    np.testing.assert_allclose(betas_from_levels(levels), betas, rtol=1e-9)


def test_the_compass_search_improves_the_same_vocoder_criterion():
    """The generic compass search (schedule_search.py) over the levels of a 3-step schedule,
    on the Gaussian-vocoder criterion above through betas_from_levels: only improvements are
    accepted, so it ends below a poor start within a small budget."""
    x_T = torch.randn(16, 1, 400, generator=torch.Generator().manual_seed(0))
    mel = torch.zeros(16, 1, 40)

    def objective(levels, knob):
        out = vocode(GaussianVocoder(0.04), mel, betas_from_levels(levels), clip=False, x_T=x_T,
                     generator=torch.Generator().manual_seed(1)).x  # fmt: skip
        return abs(float(np.log(out.var().item() / 0.04)))

    start = levels_from_betas([1e-3, 1e-2, 0.1])  # too little noise at the top
    result = search_levels(objective, start, bounds=(1e-4, 1e3), budget=20)
    assert result.value < result.start_value and result.value == min(result.history)
