"""The toy mixtures' classes: labels are the generating component, each exact class-conditional
density p(x | c) integrates to one and matches a histogram of that class's samples, and p(c | x)
is Bayes' rule.

The grid, quadrature and chi-square test are those of test_toy_log_prob.py (the same error
bounds), with 200000 draws per dataset (the rarest class has about 1/8 of them), each class
tested at significance 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from difflab.data.toy import (
    gaussians_centers,
    sample_toy,
    sample_toy_labelled,
    toy_names,
    toy_num_classes,
)
from difflab.data.toy_density import toy_class_log_prob, toy_class_posterior, toy_log_prob

EDGES = np.linspace(-3.0, 3.0, 25)
MIXTURES = [n for n in toy_names() if toy_num_classes(n) is not None]


def _bin_masses(name: str) -> np.ndarray:
    """(K, bins, bins): the mass of each class-conditional density in each bin."""
    nodes, weights = np.polynomial.legendre.leggauss(5)
    half = 0.5 * np.diff(EDGES)[:, None]
    pts_1d = (0.5 * (EDGES[:-1] + EDGES[1:])[:, None] + half * nodes).ravel()
    w_1d = (half * weights).ravel()
    X, Y = np.meshgrid(pts_1d, pts_1d, indexing="ij")
    log_p = toy_class_log_prob(name, np.stack([X.ravel(), Y.ravel()], 1))
    k, b = log_p.shape[1], len(EDGES) - 1
    density = np.exp(log_p).T.reshape(k, *X.shape)
    return (density * np.outer(w_1d, w_1d)).reshape(k, b, 5, b, 5).sum(axis=(2, 4))


def _chi2_ok(masses: np.ndarray, points: np.ndarray) -> bool:
    counts, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=[EDGES, EDGES])
    expected, observed = masses.ravel() * len(points), counts.ravel()
    big = expected >= 20
    exp_pooled = np.append(expected[big], expected[~big].sum())
    obs_pooled = np.append(observed[big], observed[~big].sum())
    keep = exp_pooled > 0
    chi2 = float(((obs_pooled - exp_pooled)[keep] ** 2 / exp_pooled[keep]).sum())
    return chi2 < stats.chi2.ppf(1 - 1e-6, int(keep.sum()) - 1)


@pytest.mark.parametrize("name", MIXTURES)
def test_class_densities_integrate_to_one_and_match_each_class(name):
    masses = _bin_masses(name)
    # quadrature error: 5 nodes per 0.25 bin are 0.05 apart, the inner circle's noise std, so
    # its ring integrates to 1 + 2.2e-4 (1e-5 or less for the other classes)
    np.testing.assert_allclose(masses.sum(axis=(1, 2)), 1.0, atol=3e-4)
    x, labels = sample_toy_labelled(name, 200_000, seed=11)
    np.testing.assert_array_equal(x, sample_toy(name, 200_000, seed=11))  # the same points
    for c in range(toy_num_classes(name)):
        assert _chi2_ok(masses[c], x[labels == c]), (name, c)
    counts = np.bincount(labels, minlength=toy_num_classes(name))
    expected = len(labels) / len(counts)  # equally likely classes: binomial, 5 se
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


@pytest.mark.parametrize("name", MIXTURES)
def test_posterior_is_bayes_rule(name):
    x = sample_toy(name, 2000, seed=5)
    post = toy_class_posterior(name, x)
    log_p = toy_class_log_prob(name, x)
    np.testing.assert_allclose(post.sum(1), 1.0, atol=1e-12)
    # log p(c | x) + log p(x) = log p(x | c) - log K for the equally likely classes, wherever
    # p(x | c) is a normal float (below, exp underflows to denormals)
    k = toy_num_classes(name)
    ok = log_p > -700
    with np.errstate(divide="ignore"):
        lhs = np.log(post) + toy_log_prob(name, x)[:, None]
    np.testing.assert_allclose(lhs[ok], log_p[ok] - np.log(k), rtol=0, atol=1e-9)


def test_eight_gaussians_labels_and_conditional_entropy():
    """Label k is the centre 2 (cos(k pi/4), sin(k pi/4)) (neighbours are 15 std apart: every
    point is nearest its own centre); H(x | c) of a Gaussian N(mu, 0.1^2 I) is 1 + log(2 pi
    0.01), matched by the Monte Carlo mean of -log p(x | c) within 4 se."""
    x, labels = sample_toy_labelled("8gaussians", 20000, seed=2)
    nearest = np.linalg.norm(x[:, None] - gaussians_centers()[None], axis=2).argmin(1)
    np.testing.assert_array_equal(nearest, labels)
    h = -toy_class_log_prob("8gaussians", x)[np.arange(len(x)), labels]
    exact = 1.0 + np.log(2 * np.pi * 0.01)
    assert abs(h.mean() - exact) < 4 * h.std() / np.sqrt(len(h))


def test_checkerboard_off_support_and_unlabelled_data():
    post = toy_class_posterior("checkerboard", np.array([[0.5, 0.5], [0.5, 1.5], [3.0, 0.0]]))
    assert post[0].sum() == 1.0 and post[1].sum() == 0.0 and post[2].sum() == 0.0
    with pytest.raises(ValueError, match="has no classes"):
        sample_toy_labelled("swiss_roll", 10)
    with pytest.raises(ValueError, match="is unknown"):
        toy_class_log_prob("spiral", np.zeros((2, 2)))
