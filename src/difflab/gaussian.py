"""Gaussian building blocks for likelihoods: KL divergence, entropy, and the decoders
log p(x_0 | x_1) for discrete (binned) and continuous data. All elementwise; sum or average
over dimensions yourself. ``var`` is a variance and ``log_var`` a log-variance.
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)


def normal_kl(
    mean1: torch.Tensor, log_var1: torch.Tensor, mean2: torch.Tensor, log_var2: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean1, exp(log_var1)) || N(mean2, exp(log_var2))), elementwise, in nats."""
    return 0.5 * (
        -1.0
        + log_var2
        - log_var1
        + torch.exp(log_var1 - log_var2)
        + (mean1 - mean2) ** 2 * torch.exp(-log_var2)
    )


def gaussian_entropy(log_var: torch.Tensor | float) -> torch.Tensor:
    """Differential entropy of N(m, exp(log_var)) per dimension: (1 + log 2 pi + log_var) / 2."""
    return 0.5 * (1.0 + LOG_2PI) + 0.5 * torch.as_tensor(log_var)


def gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor
) -> torch.Tensor:
    """log N(x; mean, exp(log_var)), elementwise: the decoder for continuous data (a density)."""
    return -0.5 * (LOG_2PI + log_var + (x - mean) ** 2 * torch.exp(-log_var))


def _log_normal_mass(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(Phi(b) - Phi(a)) for a < b, stable in both tails (uses the symmetry of Phi)."""
    flip = a > 0
    lo = torch.where(flip, -b, a)
    hi = torch.where(flip, -a, b)
    log_hi = torch.special.log_ndtr(hi)
    log_lo = torch.special.log_ndtr(lo)
    return log_hi + torch.log1p(-torch.exp((log_lo - log_hi).clamp(max=-1e-12)))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor, *, levels: int = 256
) -> torch.Tensor:
    """log P(x) for data on a grid of ``levels`` values scaled to [-1, 1] (Ho et al. 2020, Eq. 13).

    Each value owns the bin [x - delta, x + delta] with delta = 1 / (levels - 1); the lowest and
    highest bins extend to -inf and +inf, so the probabilities of all levels sum to one.
    Elementwise, in nats; x must lie on the grid (8-bit images: levels = 256).
    """
    if levels < 2:
        raise ValueError(f"a discretized decoder needs at least 2 levels, got {levels}")
    delta = 1.0 / (levels - 1)
    inv_std = torch.exp(-0.5 * log_var)
    lower = torch.where(
        x < -1 + 0.5 * delta, torch.full_like(x, -torch.inf), (x - delta - mean) * inv_std
    )
    upper = torch.where(
        x > 1 - 0.5 * delta, torch.full_like(x, torch.inf), (x + delta - mean) * inv_std
    )
    return _log_normal_mass(lower, upper)
