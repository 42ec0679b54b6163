"""Reference densities of the data, for drawing the exact score beside the learned one.

Until the toy sets' exact log-densities exist, the reference is a Gaussian mixture fitted to
the data (scikit-learn's ``GaussianMixture``, full covariances). A mixture stays a mixture
under the Gaussian perturbations score models learn: if x_0 ~ sum_k w_k N(m_k, C_k) then
a x_0 + s z ~ sum_k w_k N(a m_k, a^2 C_k + s^2 I), so the reference score of a noised level is
exact for the fitted mixture. Scores are gradients of ``log_prob`` by autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits
from torch import distributions as dist

LogProb = Callable[[torch.Tensor], torch.Tensor]


def fit_gaussian_mixture(
    x: np.ndarray, *, n_components: int = 24, seed: int = 0
) -> GaussianMixture:
    """A full-covariance Gaussian mixture fitted to ``x`` (N, D) by EM (one BLAS thread: the
    fit is small, and extra threads only contend with torch's)."""
    n_components = max(1, min(n_components, x.shape[0] // 10))
    with threadpool_limits(limits=1):
        return GaussianMixture(n_components, covariance_type="full", random_state=seed).fit(x)


def mixture_log_prob(
    gmm: GaussianMixture, *, scale: float = 1.0, noise_std: float = 0.0
) -> LogProb:
    """log p(y) (B,) of y = scale * x_0 + noise_std * z with x_0 from the fitted mixture."""
    dim = gmm.means_.shape[1]
    means = torch.as_tensor(gmm.means_, dtype=torch.float64) * scale
    covs = torch.as_tensor(gmm.covariances_, dtype=torch.float64) * scale**2
    covs = covs + noise_std**2 * torch.eye(dim, dtype=torch.float64)
    mixture = dist.MixtureSameFamily(
        dist.Categorical(probs=torch.as_tensor(gmm.weights_, dtype=torch.float64)),
        dist.MultivariateNormal(means, covariance_matrix=covs),
    )
    return lambda y: mixture.log_prob(y.to(torch.float64))


def score_of(log_prob: LogProb, x: torch.Tensor) -> torch.Tensor:
    """grad_x log p(x), (B, D), by autograd (also inside a sampler's ``inference_mode``)."""
    with torch.inference_mode(False), torch.enable_grad():
        y = x.detach().to(torch.float64).clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(log_prob(y).sum(), y)
    return grad.to(x.dtype)
