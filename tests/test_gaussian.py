"""Gaussian building blocks against torch.distributions and exact identities."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from difflab.gaussian import (
    discretized_gaussian_log_likelihood,
    gaussian_entropy,
    gaussian_log_likelihood,
    normal_kl,
)


@pytest.mark.parametrize("shape", [(16, 2), (4, 3, 5, 5)])
def test_normal_kl_matches_torch_and_vanishes_on_itself(shape):
    g = torch.Generator().manual_seed(0)
    m1, m2 = (
        torch.randn(shape, generator=g, dtype=torch.float64),
        torch.randn(shape, generator=g, dtype=torch.float64),
    )
    lv1, lv2 = (
        torch.randn(shape, generator=g, dtype=torch.float64),
        torch.randn(shape, generator=g, dtype=torch.float64),
    )
    expected = kl_divergence(Normal(m1, (0.5 * lv1).exp()), Normal(m2, (0.5 * lv2).exp()))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), expected, rtol=1e-10, atol=1e-12)
    assert normal_kl(m1, lv1, m1, lv1).abs().max() < 1e-12


def test_entropy_and_density_match_torch():
    log_var = torch.tensor([-2.0, 0.0, 1.5], dtype=torch.float64)
    dist = Normal(torch.zeros(3, dtype=torch.float64), (0.5 * log_var).exp())
    torch.testing.assert_close(gaussian_entropy(log_var), dist.entropy())
    x = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(
        gaussian_log_likelihood(x, torch.zeros(3, dtype=torch.float64), log_var), dist.log_prob(x)
    )


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_discretized_bins_sum_to_one(levels):
    grid = torch.linspace(-1, 1, levels, dtype=torch.float64)
    for mean, log_var in [(0.0, math.log(0.1)), (0.9, math.log(1e-4)), (-3.0, math.log(4.0))]:
        x = grid[:, None]
        logp = discretized_gaussian_log_likelihood(
            x, torch.full_like(x, mean), torch.full_like(x, log_var), levels=levels
        )
        assert abs(float(logp.exp().sum()) - 1.0) < 1e-9


def test_discretized_matches_cdf_differences_and_is_stable_in_tails():
    x = torch.tensor([0.0], dtype=torch.float64)
    mean, log_var = (
        torch.tensor([0.01], dtype=torch.float64),
        torch.tensor([math.log(0.02**2)], dtype=torch.float64),
    )
    delta = 1 / 255
    dist = Normal(mean, 0.02)
    expected = torch.log(dist.cdf(x + delta) - dist.cdf(x - delta))
    torch.testing.assert_close(discretized_gaussian_log_likelihood(x, mean, log_var), expected)
    # A bin 40 standard deviations away: log-mass must be finite and close to the Gaussian tail.
    far = discretized_gaussian_log_likelihood(
        torch.tensor([0.8]), torch.tensor([0.0]), torch.tensor([math.log(0.02**2)])
    )
    assert torch.isfinite(far).all() and far.item() < -700


def test_discretized_gradients_are_finite_at_the_edges():
    x = torch.tensor([-1.0, 1.0, 0.0])
    mean = torch.zeros(3, requires_grad=True)
    log_var = torch.full((3,), -3.0, requires_grad=True)
    discretized_gaussian_log_likelihood(x, mean, log_var).sum().backward()
    assert torch.isfinite(mean.grad).all() and torch.isfinite(log_var.grad).all()
