"""The 2015 bound (Sohl-Dickstein et al. 2015, Sec. 2.4 and App. B) for a network that outputs
the mean and log-variance of p(x_{t-1} | x_t) directly (``model.prediction = "mean"``,
``model.variance = "learned"``).

With the last step fixed to p(x_0 | x_1) = q(x_1 | x_0) pi(x_0) / pi(x_1), pi = N(0, I), the
bound on -log p(x_0) is, per example (the tutorial's -K, with its terms made exact):

    L = sum_{t=2}^{T} KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))
        + H_q(X_1 | X_0) - H_q(X_T | X_0) + H_p(X_T) + (beta_1 / 2) (|x_0|^2 - D)

H_q(X_1 | X_0) = D h(beta_1) and H_q(X_T | X_0) = D h(1 - abar_T), with h(v) the entropy of
N(0, v); H_p(X_T) = E_q[-log pi(x_T) | x_0] is the cross-entropy of the prior; the last term
is E[log pi(x_1) - log pi(x_0)] from the fixed last step (the tutorial drops it and replaces
H_p(X_T) by D h(1): both are exact only as beta_1 -> 0 and abar_T -> 0). The KL sum is
estimated as (T - 1) KL_t with t uniform (or importance-sampled) over the T - 1 learned steps.
In expectation L equals :func:`difflab.losses.vlb.full_bound`'s total for the same model.

The loss is reported as the paper does: in bits per dimension relative to an isotropic
Gaussian, (L / D - h(1)) / log 2 (negative: better than N(0, I)). ``t``: int64 (B,) in
{0..T-1}; index 0 is the fixed step, so training draws t in {1..T-1}.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from difflab.gaussian import LOG_2PI, gaussian_entropy
from difflab.losses.base import LossOutput, step_fraction
from difflab.losses.vlb import sum_flat, vlb_term
from difflab.parameterization import Prediction
from difflab.reverse import Variance
from difflab.schedules import NoiseSchedule
from difflab.timesteps import TimestepSampler, TimestepSampling, as_timestep_sampler


def entropy_terms(schedule: NoiseSchedule, x0: torch.Tensor) -> torch.Tensor:
    """H_q(X_1 | X_0) - H_q(X_T | X_0) + H_p(X_T) + the fixed last step's term, (B,) nats."""
    D = x0[0].numel()
    beta_1 = schedule.betas[0].double()
    abar_T = schedule.alphas_cumprod[-1].double()
    sq = sum_flat(x0.double() ** 2)
    h_start = D * gaussian_entropy(torch.log(beta_1))
    h_end = D * gaussian_entropy(torch.log1p(-abar_T))
    cross_prior = 0.5 * D * LOG_2PI + 0.5 * (abar_T * sq + (1.0 - abar_T) * D)
    edge = 0.5 * beta_1 * (sq - D)
    return (h_start - h_end + cross_prior + edge).to(x0.dtype)


def bits_vs_isotropic_gaussian(nats: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Per-example nats -> bits per dimension relative to N(0, I): (L / D - h(1)) / log 2."""
    D = x0[0].numel()
    return (nats / D - float(gaussian_entropy(0.0))) / math.log(2.0)


class SohlDicksteinObjective:
    """``loss.name = "sohl_dickstein"``: the 2015 bound above, per example, in bits per
    dimension relative to an isotropic Gaussian. Needs ``model.prediction = "mean"``."""

    def __init__(
        self,
        schedule: NoiseSchedule,
        timesteps: TimestepSampler | TimestepSampling | str = TimestepSampling.UNIFORM,
        *,
        prediction: Prediction | str = Prediction.MEAN,
        variance: Variance | str = Variance.LEARNED,
    ) -> None:
        if Prediction(prediction) is not Prediction.MEAN:
            raise ValueError(
                "loss.name = 'sohl_dickstein' is the 2015 model: set model.prediction = 'mean' "
                "(and model.variance = 'learned')"
            )
        if schedule.T < 2:
            raise ValueError("loss.name = 'sohl_dickstein' needs schedule.T >= 2")
        self.schedule = schedule
        self.timesteps = as_timestep_sampler(timesteps, schedule.T - 1)  # the learned steps
        self.variance = Variance(variance)

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        k, weights = self.timesteps.sample(x0.shape[0], generator=generator, device=x0.device)
        t = k + 1  # the learned steps t = 1..T-1
        kl = vlb_term(
            model,
            self.schedule,
            x0,
            t,
            prediction=Prediction.MEAN,
            variance=self.variance,
            generator=generator,
        )
        self.timesteps.update(k, kl.detach())
        bound = (self.schedule.T - 1) * weights * kl + entropy_terms(self.schedule, x0)
        loss = bits_vs_isotropic_gaussian(bound, x0)
        return LossOutput(loss, {"kl": kl, "bound_nats": bound}, step_fraction(t, self.schedule.T))
