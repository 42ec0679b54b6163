"""Classifier-free guidance (Ho & Salimans 2022) as a Denoiser wrapper.

One class-conditional network trained with label dropout (conditioning.py) gives both
eps_c = eps(x_t, c) and eps_u = eps(x_t, null). The guided prediction is

    eps_s = eps_u + s (eps_c - eps_u),

with the guidance scale s: s = 1 is plain conditional sampling, s = 0 unconditional sampling,
s > 1 strengthens the class. The paper writes eps~ = (1 + w) eps_c - w eps_u, so s = 1 + w
(its w = 0 is our s = 1). x0_hat is combined the same way, x0_s = x0_u + s (x0_c - x0_u):
at fixed x_t and t, x0 = (x_t - sigma eps) / alpha is affine in eps, so (x0_s, eps_s) satisfy
x_t = alpha x0_s + sigma eps_s exactly like each branch (and the combination never divides by
alpha, which may vanish for other processes). Clipping of x0_hat (``clip``) is applied after
combining, and eps recomputed from the clipped x0, as the plain Denoiser does. A learned
variance comes from the conditional branch (as in GLIDE, Nichol et al. 2022).

The guided score -eps_s / sigma is not the score of any fixed density after noising; it is
tested through its definition (linearity in s) and through class accuracy. Every sampler works
with it unchanged, since it offers the Denoiser's three methods: ``__call__``, ``score`` and
``reverse_step``. For s not in {0, 1} one call evaluates the network once on a doubled batch
(conditional rows, then the same rows with the null class): :attr:`passes` = 2.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from difflab.conditioning import null_labels, num_classes_of
from difflab.denoiser import Denoiser, DenoiserOutput
from difflab.reverse import ReverseStep


def guided(
    cond: DenoiserOutput, uncond: DenoiserOutput, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_s, eps_s) = uncond + s (cond - uncond), each for x0 and eps (see the module doc)."""
    x0 = uncond.x0 + scale * (cond.x0 - uncond.x0)
    eps = uncond.eps + scale * (cond.eps - uncond.eps)
    return x0, eps


class GuidedDenoiser(nn.Module):
    """The Denoiser of a class-conditional network guided towards ``labels`` (B,) with scale
    ``scale`` >= 0 (see the module docstring); samplers use it like a Denoiser."""

    def __init__(self, denoiser: Denoiser, labels: torch.Tensor, scale: float) -> None:
        super().__init__()
        num_classes = num_classes_of(denoiser.net)
        if num_classes is None:
            raise ValueError("guidance needs a class-conditional network (model.class_conditional)")
        if not (math.isfinite(scale) and scale >= 0):
            raise ValueError(f"the guidance scale must be a finite number >= 0, got {scale}")
        self.base = denoiser
        self.labels = labels
        self.scale = float(scale)
        self.num_classes = num_classes
        self.cond = denoiser.replace(labels=labels)
        null = null_labels(labels.shape[0], num_classes, device=labels.device)
        self.uncond = denoiser.replace(labels=null)

    @property
    def process(self):
        return self.base.process

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def first_trained_time(self) -> float:
        return self.base.first_trained_time

    def prior_std(self, t: float) -> float:
        """The base model's prior std at the chain's start (a continuous formulation's is the
        marginal's, not 1: samplers read it here)."""
        return self.base.prior_std(t)

    @property
    def passes(self) -> int:
        """Network passes per call, each on a batch of the state's size."""
        return 1 if self.scale in (0.0, 1.0) else 2

    def forward(self, x_t: torch.Tensor, t: float) -> DenoiserOutput:
        """The guided x0_hat, eps_hat (and the conditional branch's variance output)."""
        if self.scale == 1.0:
            return self.cond(x_t, t)
        if self.scale == 0.0:
            return self.uncond(x_t, t)
        n = x_t.shape[0]
        both_labels = torch.cat([self.labels, self.uncond.labels])
        both = self.base.replace(labels=both_labels, clip=None)(torch.cat([x_t, x_t]), t)
        cond = DenoiserOutput(both.x0[:n], both.eps[:n], None)
        uncond = DenoiserOutput(both.x0[n:], both.eps[n:], None)
        x0, eps = guided(cond, uncond, self.scale)
        if self.base.clip is not None:
            alpha, sigma = self.process.alpha(t), self.process.sigma(t)
            x0 = x0.clamp(*self.base.clip)
            eps = (x_t - alpha * x0) / sigma
        var_out = None if both.var_out is None else both.var_out[:n]
        return DenoiserOutput(x0, eps, var_out)

    def score(self, x_t: torch.Tensor, t: float) -> torch.Tensor:
        """-eps_s / sigma_t: the guided score."""
        return -self(x_t, t).eps / self.process.sigma(t)

    def reverse_step(
        self, x_t: torch.Tensor, t: float, t_prev: float, *, clamp: bool = False
    ) -> ReverseStep:
        """p(x_{t_prev} | x_t): the posterior at the guided x0_hat, with the base Denoiser's
        variance type (see :meth:`Denoiser.reverse_step`)."""
        return self.base.reverse_step_from(self(x_t, t), x_t, t, t_prev, clamp=clamp)
