"""The variational bound on -log p(x_0) (Sohl-Dickstein et al. 2015; Ho et al. 2020, Eq. 5):

    L = L_T + sum_{t>1} L_{t-1} + L_0
    L_T     = KL(q(x_T | x_0) || N(0, I))                      the prior term
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))     one per step
    L_0     = -log p(x_0 | x_1)                                 the decoder

Index convention: ``t`` is int64 (B,) in {0..T-1}; the term at index t > 0 is the paper's
L_{t}, and index 0 is the decoder L_0. Terms are in nats per example (summed over dimensions);
divide by D log 2 for bits per dimension. The decoder is the discretized Gaussian for data on
``levels`` grid values in [-1, 1], or the Gaussian density for continuous data (levels=None).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from difflab.choices import parse_enum
from difflab.denoiser import Denoiser
from difflab.forward import q_mean_variance, q_posterior, q_sample
from difflab.gaussian import discretized_gaussian_log_likelihood, gaussian_log_likelihood, normal_kl
from difflab.losses.base import LossOutput, step_fraction
from difflab.noise import DiscreteProcess
from difflab.parameterization import Prediction
from difflab.reverse import ReverseStep, Variance, p_mean_variance
from difflab.schedules import NoiseSchedule, full_timesteps
from difflab.timesteps import TimestepSampler, TimestepSampling, as_timestep_sampler


def sum_flat(x: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the first: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def bits_per_dim(nats: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Convert per-example nats to bits per dimension of x0 (B, ...)."""
    return nats / (x0[0].numel() * math.log(2.0))


def prior_kl(schedule: NoiseSchedule, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) || N(0, I)) per example (B,), in nats."""
    t = torch.full((x0.shape[0],), schedule.T - 1, dtype=torch.long, device=x0.device)
    mean, _, log_var = q_mean_variance(schedule, x0, t)
    zeros = torch.zeros_like(mean)
    return sum_flat(normal_kl(mean, log_var.expand_as(mean), zeros, zeros))


def decoder_nll(x0: torch.Tensor, p: ReverseStep, *, levels: int | None) -> torch.Tensor:
    """L_0 = -log p(x_0 | x_1) per example (B,): discretized if ``levels`` is set, else density."""
    if levels is None:
        return -sum_flat(gaussian_log_likelihood(x0, p.mean, p.log_var))
    return -sum_flat(discretized_gaussian_log_likelihood(x0, p.mean, p.log_var, levels=levels))


def vlb_term_from_reverse(
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    p: ReverseStep,
    *,
    levels: int | None = None,
) -> torch.Tensor:
    """The bound's term at each example's t (B,): KL to the posterior, or the decoder at t = 0."""
    q_mean, _, q_log_var = q_posterior(schedule, x0, x_t, t)
    kl = sum_flat(normal_kl(q_mean, q_log_var.expand_as(q_mean), p.mean, p.log_var))
    return torch.where(t == 0, decoder_nll(x0, p, levels=levels), kl)


def vlb_term(
    model: nn.Module,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    t: torch.Tensor,
    *,
    prediction: Prediction | str = Prediction.EPS,
    variance: Variance | str = Variance.SMALL,
    levels: int | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_0) and return the bound's term at t per example (B,), in nats."""
    x_t = q_sample(schedule, x0, t, noise=noise, generator=generator)
    p = p_mean_variance(model, schedule, x_t, t, prediction=prediction, variance=variance)
    return vlb_term_from_reverse(schedule, x0, x_t, t, p, levels=levels)


class BoundTerms(NamedTuple):
    """The full bound per example: ``prior`` (B,), ``terms`` (B, T) with the decoder in column 0,
    and ``total`` (B,) = prior + terms.sum(1), all in nats."""

    prior: torch.Tensor
    terms: torch.Tensor
    total: torch.Tensor


def bound_term_at(
    denoiser: Denoiser,
    x0: torch.Tensor,
    t: int,
    *,
    levels: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_0) and return the bound's term at step index t in {0..T-1} per
    example (B,), with the model's p(x_{t-1} | x_t) from the Denoiser (paper time t + 1)."""
    schedule = _discrete_schedule(denoiser)
    t_batch = full_timesteps(t, x0.shape[0], x0.device)  # stride 0: embedded once
    x_t = q_sample(schedule, x0, t_batch, generator=generator)
    p = denoiser.reverse_step(x_t, t + 1, t)
    return vlb_term_from_reverse(schedule, x0, x_t, t_batch, p, levels=levels)


def _discrete_schedule(denoiser: Denoiser) -> NoiseSchedule:
    process = denoiser.process
    if not isinstance(process, DiscreteProcess):
        raise ValueError("the variational bound is computed for discrete-time diffusions only")
    return process.schedule


@torch.no_grad()
def full_bound(
    denoiser: Denoiser,
    x0: torch.Tensor,
    *,
    levels: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> BoundTerms:
    """Every term of the bound for a batch x0 (B, ...): one network call and x_t draw per t
    (on x0's device; a ``generator`` must live there too). ``progress``: a bar over t."""
    schedule = _discrete_schedule(denoiser)
    B = x0.shape[0]
    terms = torch.empty(B, schedule.T, dtype=torch.float64, device=x0.device)
    for k in tqdm(range(schedule.T), desc="bound", disable=not progress, leave=False):
        terms[:, k] = bound_term_at(denoiser, x0, k, levels=levels, generator=generator)
    prior = prior_kl(schedule, x0).double()
    return BoundTerms(prior, terms, prior + terms.sum(dim=1))


class VLBObjective:
    """Training on the bound (``loss.name = "vlb"``): per example, the unbiased estimate
    (T w(t) L_t + L_T) / (D log 2) of the whole bound in bits per dimension, with t drawn by
    ``timesteps`` (importance sampling suits it: Nichol & Dhariwal 2021, Sec. 3.3)."""

    def __init__(
        self,
        schedule: NoiseSchedule,
        timesteps: TimestepSampler | TimestepSampling | str = TimestepSampling.UNIFORM,
        *,
        prediction: Prediction | str = Prediction.EPS,
        variance: Variance | str = Variance.SMALL,
        levels: int | None = None,
    ) -> None:
        self.schedule = schedule
        self.timesteps = as_timestep_sampler(timesteps, schedule.T)
        self.prediction = parse_enum(Prediction, prediction, "prediction")
        self.variance = parse_enum(Variance, variance, "variance")
        self.levels = levels

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        t, weights = self.timesteps.sample(x0.shape[0], generator=generator, device=x0.device)
        term = vlb_term(
            model,
            self.schedule,
            x0,
            t,
            prediction=self.prediction,
            variance=self.variance,
            levels=self.levels,
            generator=generator,
        )
        term_bits = bits_per_dim(term, x0)
        self.timesteps.update(t, term_bits.detach())
        prior_bits = bits_per_dim(prior_kl(self.schedule, x0), x0)
        loss = self.schedule.T * weights * term_bits + prior_bits
        return LossOutput(loss, {"vlb_t": term_bits}, step_fraction(t, self.schedule.T))
