"""The toy generators' exact log-densities: they integrate to one and match a histogram of 10^6
samples.

One grid serves both checks: [-3, 3]^2 cut into 0.25 x 0.25 bins (edges on the integers, so the
checkerboard's squares are unions of bins), each integrated with 5 x 5 Gauss-Legendre nodes
(relative error per bin below 1e-4 for these densities). The histogram is compared with
Pearson's chi-square over bins expecting >= 20 counts (the rest pooled into one bin) at
significance 1e-6, so a correct density fails with probability 1e-6; seeds are fixed.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from difflab.data.toy import sample_toy, toy_names
from difflab.data.toy_density import toy_log_prob

EDGES = np.linspace(-3.0, 3.0, 25)
N_SAMPLES = 1_000_000


def _bin_masses(name: str) -> np.ndarray:
    nodes, weights = np.polynomial.legendre.leggauss(5)
    half = 0.5 * np.diff(EDGES)[:, None]
    pts_1d = (0.5 * (EDGES[:-1] + EDGES[1:])[:, None] + half * nodes).ravel()
    w_1d = (half * weights).ravel()
    X, Y = np.meshgrid(pts_1d, pts_1d, indexing="ij")
    density = np.exp(toy_log_prob(name, np.stack([X.ravel(), Y.ravel()], 1))).reshape(X.shape)
    masses = density * np.outer(w_1d, w_1d)
    k = len(EDGES) - 1
    return masses.reshape(k, 5, k, 5).sum(axis=(1, 3))


@pytest.mark.parametrize("name", toy_names())
def test_log_prob_integrates_to_one_and_matches_histogram(name: str) -> None:
    masses = _bin_masses(name)
    # the support lies well inside [-3, 3]^2 (|x| < 2.7 up to ~8 noise std)
    assert masses.sum() == pytest.approx(1.0, abs=2e-4)
    x = sample_toy(name, N_SAMPLES, seed=123)
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[EDGES, EDGES])
    expected = masses.ravel() * N_SAMPLES
    observed = counts.ravel()
    big = expected >= 20
    exp_pooled = np.append(expected[big], expected[~big].sum())
    obs_pooled = np.append(observed[big], observed[~big].sum())
    keep = exp_pooled > 0
    chi2 = float(((obs_pooled - exp_pooled)[keep] ** 2 / exp_pooled[keep]).sum())
    df = int(keep.sum()) - 1
    assert chi2 < stats.chi2.ppf(1 - 1e-6, df), (chi2, df)


def test_log_prob_errors_and_support() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        toy_log_prob("spiral", np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        toy_log_prob("moons", np.zeros((3, 3)))
    assert toy_log_prob("checkerboard", np.array([[0.5, 0.5], [0.5, 1.5]]))[1] == -np.inf
    # a point far from every curve has a finite, very low log-density
    far = toy_log_prob("swiss_roll", np.array([[5.0, 5.0]]))
    assert np.isfinite(far).all() and far[0] < -1000
