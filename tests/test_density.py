"""The reference density of the score plots: a Gaussian-mixture fit and its noised scores."""

from __future__ import annotations

import numpy as np
import torch

from difflab.density import fit_gaussian_mixture, mixture_log_prob, score_of


def test_one_component_fit_gives_the_noised_gaussian_score():
    """For Gaussian data the one-component fit is the sample Gaussian; the score of
    a x_0 + s z is -(a^2 C + s^2 I)^{-1} (y - a mu), with C and mu the fit's (exact formula)."""
    rng = np.random.default_rng(0)
    x = rng.multivariate_normal([1.0, -0.5], [[0.5, 0.2], [0.2, 0.3]], size=4000)
    gmm = fit_gaussian_mixture(x, n_components=1)
    mu, cov = gmm.means_[0], gmm.covariances_[0]
    np.testing.assert_allclose(mu, x.mean(0), atol=1e-6)
    a, s = 0.8, 0.3
    y = torch.tensor(rng.normal(size=(5, 2)), dtype=torch.float32)
    score = score_of(mixture_log_prob(gmm, scale=a, noise_std=s), y).numpy()
    expected = -(y.numpy() - a * mu) @ np.linalg.inv(a**2 * cov + s**2 * np.eye(2)).T
    np.testing.assert_allclose(score, expected, rtol=1e-4, atol=1e-5)


def test_mixture_fit_on_two_clusters_points_each_side_to_its_cluster():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-2, 0.1, (500, 2)), rng.normal(2, 0.1, (500, 2))])
    log_prob = mixture_log_prob(fit_gaussian_mixture(x, n_components=2))
    score = score_of(log_prob, torch.tensor([[-1.5, -1.5], [1.5, 1.5]]))
    assert (score[0] < 0).all() and (score[1] > 0).all()
