"""Exact log-likelihood through the probability-flow ODE (Song et al. 2021, Sec. 4.3 and D.2).

Any noise process (:func:`noise_level_ode_nll`, used for the continuous formulations): in the
frame y = x / alpha with the noise level sigma_bar = sigma / alpha (Karras et al. 2022, Eq. 4),
the ODE is dy / d sigma_bar = eps_hat(alpha y, t(sigma_bar)); integrated in tau = log sigma_bar
from the process's smallest level sigma_bar(t_min), where y starts at the data (its density
there is the data's to O(sigma_min^2)), to sigma_bar(t_max), where x = alpha y has the model's
prior N(0, prior_std^2 I) (the denoiser's), with dy / dtau = sigma_bar eps_hat and

    log p(x_0) = log N(alpha_max y_max; 0, prior_std^2 I) + D log alpha_max + int div dtau.

A discrete schedule (:func:`ode_nll` on a DiscreteProcess, unchanged since the first release)
is read as a variance-preserving diffusion whose marginals match it at every step: with
u = -log alpha_bar, x_u = exp(-u/2) x_0 + sqrt(1 - exp(-u)) eps, and the
probability-flow ODE is

    dx/du = -(x - eps_theta(x, u) / sqrt(1 - exp(-u))) / 2,

integrated in tau = log u (even steps across noise levels) from the first noise level
u_1 = -log alpha_bar_1 (index t = 0, the paper's x_1) to u_T, where the model's prior is N(0, I).
The network is called at the fractional step index whose -log alpha_bar is u (linear between the
table's entries). Along the path, d log p / dtau = -div f, so

    log p_1(x_1) = log N(x(tau_T); 0, I) + int div f dtau.

The data's density is read off at the first noise level: log p(x_0) = log p_1(sqrt(abar_1) x_0)
+ (D / 2) log abar_1, exact as beta_1 -> 0 (an error of about D beta_1 / (2 var(x_0)) nats).
The divergence is exact (D autograd passes) for D <= ``exact_max_dim`` and Hutchinson's
estimator with one Rademacher probe per example otherwise (unbiased; FFJORD, Grathwohl et al.
2019). The model is a :class:`difflab.denoiser.Denoiser`, asked at the fractional paper
time t + 1 of the step index t in [0, T-1] (index 0 is x_1). On several processes a ``split``
(``training/distributed.RowSplit``) computes each rank's rows of the drift and divergence and
gathers them; every rank integrates the whole batch, so the solver takes the same steps.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torchdiffeq import odeint
from tqdm.auto import tqdm

from difflab.denoiser import Denoiser
from difflab.noise import DiscreteProcess

EXACT_DIVERGENCE_MAX_DIM = 8


def step_index(knots: np.ndarray, u: float) -> float:
    """The fractional index t in [0, T-1] whose u is ``u`` (linear between the knots)."""
    k = int(np.clip(np.searchsorted(knots, u), 1, len(knots) - 1))
    lo, hi = float(knots[k - 1]), float(knots[k])
    return (k - 1) + min(max((u - lo) / (hi - lo), 0.0), 1.0)


class ODELikelihood(NamedTuple):
    """``nll``: -log p(x_0) per example (B,), nats; ``nfe``: drift evaluations of the solver."""

    nll: torch.Tensor
    nfe: int


def _divergence(f: torch.Tensor, x: torch.Tensor, probe: torch.Tensor | None) -> torch.Tensor:
    """div f per example (B,): exact (one autograd pass per dimension) or v^T (df/dx) v."""
    if probe is not None:
        (vjp,) = torch.autograd.grad(f, x, probe, create_graph=False)
        return (vjp * probe).reshape(x.shape[0], -1).sum(1)
    flat_f = f.reshape(f.shape[0], -1)
    div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(flat_f.shape[1]):
        (g,) = torch.autograd.grad(flat_f[:, i].sum(), x, retain_graph=True)
        div = div + g.reshape(x.shape[0], -1)[:, i]
    return div


def ode_nll(
    denoiser: Denoiser,
    x0: torch.Tensor,
    **kwargs,
) -> ODELikelihood:
    """-log p(x_0) (B,) in nats under the probability-flow ODE of the model: the discrete
    schedule's integration (below) for a DiscreteProcess, :func:`noise_level_ode_nll` for any
    other process. Keyword arguments as for :func:`noise_level_ode_nll`."""
    if isinstance(denoiser.process, DiscreteProcess):
        return _discrete_ode_nll(denoiser, x0, **kwargs)
    return noise_level_ode_nll(denoiser, x0, **kwargs)


def _discrete_ode_nll(
    denoiser: Denoiser,
    x0: torch.Tensor,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "dopri5",
    exact_max_dim: int = EXACT_DIVERGENCE_MAX_DIM,
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
    progress: bool = False,
    split: Callable[..., Any] | None = None,
) -> ODELikelihood:
    """-log p(x_0) (B,) in nats under the probability-flow ODE of the model (see module doc).

    x0: (B, ...) in model space, on the denoiser's device (so is everything created here; a
    ``generator`` for the Hutchinson probes must live there too). The model is run in
    ``dtype`` (float64 by default, so the solver's tolerances, not round-off, set the error).
    ``progress``: a bar over the integration interval (log u from its start to its end).
    ``split(fn, x, probe)``: how to run the per-row drift ``fn`` (None: on every row here).
    """
    process = denoiser.process
    if process.t_max < 2:
        raise ValueError("the ODE likelihood needs schedule.T >= 2")
    knots = -process.log_alpha_bars[1:]  # u at the integer step indices, increasing
    denoiser = _in_dtype(denoiser, dtype)
    device = x0.device
    x_start = process.alpha(1.0) * x0.to(dtype)
    D = x0[0].numel()
    probe = _probe(x0, exact_max_dim, dtype, generator)
    nfe = 0
    taus = torch.tensor(np.log([knots[0], knots[-1]]), dtype=dtype, device=device)
    span = float(taus[1] - taus[0])
    bar = tqdm(total=100, desc="ODE NLL", unit="%", disable=not progress, leave=False)

    def drift(tau: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        nonlocal nfe
        nfe += 1
        bar.update(max(0, round(100 * float(tau - taus[0]) / span) - bar.n))
        u = float(torch.exp(tau))
        t = max(step_index(knots, u) + 1.0, denoiser.first_trained_time)

        def rows(x_rows: torch.Tensor, probe_rows: torch.Tensor | None):
            with torch.enable_grad():
                x = x_rows.detach().requires_grad_(True)
                eps = denoiser(x, t).eps
                f = -0.5 * u * (x - eps / math.sqrt(-math.expm1(-u)))
                div = _divergence(f, x, probe_rows)
            return f.detach(), div.detach()

        return rows(state[0], probe) if split is None else split(rows, state[0], probe)

    zero = torch.zeros(x0.shape[0], dtype=dtype, device=device)
    try:
        xs, divs = odeint(drift, (x_start, zero), taus, rtol=rtol, atol=atol, method=method)
    finally:
        bar.close()
    x_T, integral = xs[-1], divs[-1]
    log_prior = -0.5 * (x_T**2).reshape(x_T.shape[0], -1).sum(1) - 0.5 * D * math.log(2 * math.pi)
    log_p = log_prior + integral - 0.5 * D * float(knots[0])  # + (D/2) log abar_1
    return ODELikelihood(-log_p, nfe)


def _probe(x0, exact_max_dim: int, dtype, generator) -> torch.Tensor | None:
    """Rademacher probes for Hutchinson's estimator above ``exact_max_dim`` dimensions."""
    if exact_max_dim >= x0[0].numel():
        return None
    draws = torch.randint(0, 2, x0.shape, generator=generator, device=x0.device)
    return draws.to(dtype) * 2 - 1


def noise_level_ode_nll(
    denoiser: Denoiser,
    x0: torch.Tensor,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "dopri5",
    exact_max_dim: int = EXACT_DIVERGENCE_MAX_DIM,
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> ODELikelihood:
    """-log p(x_0) (B,) in nats by the probability-flow ODE in the noise-level frame (module
    docstring), for a denoiser over any process; arguments as for the discrete integration
    (``progress``: a bar over log sigma_bar from its start to its end)."""
    process, denoiser = denoiser.process, _in_dtype(denoiser, dtype)
    t_lo, t_hi = max(process.t_min, denoiser.first_trained_time), process.t_max
    alpha_hi, D = process.alpha(t_hi), x0[0].numel()
    sigma_lo, sigma_hi = process.sigma_bar(t_lo), process.sigma_bar(t_hi)
    probe = _probe(x0, exact_max_dim, dtype, generator)
    nfe = 0
    span = math.log(sigma_hi) - math.log(sigma_lo)
    bar = tqdm(total=100, desc="ODE NLL", unit="%", disable=not progress, leave=False)

    def drift(tau: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        nonlocal nfe
        nfe += 1
        bar.update(max(0, min(100, round(100 * (float(tau) - math.log(sigma_lo)) / span)) - bar.n))
        # (the solver's first trial step may reach past the ends: stay inside)
        sigma_bar = min(max(float(torch.exp(tau)), sigma_lo), sigma_hi)
        t = min(max(process.time_at_sigma_bar(sigma_bar), t_lo), t_hi)
        with torch.enable_grad():
            y = state[0].detach().requires_grad_(True)
            f = sigma_bar * denoiser(process.alpha(t) * y, t).eps  # dy / dtau
            div = _divergence(f, y, probe)
        return f.detach(), div.detach()

    bounds = [math.log(sigma_lo), math.log(sigma_hi)]
    taus = torch.tensor(bounds, dtype=dtype, device=x0.device)
    zero = torch.zeros(x0.shape[0], dtype=dtype, device=x0.device)
    try:
        ys, divs = odeint(drift, (x0.to(dtype), zero), taus, rtol=rtol, atol=atol, method=method)
    finally:
        bar.close()
    x_hi = alpha_hi * ys[-1]
    std = denoiser.prior_std(t_hi)
    log_prior = -0.5 * ((x_hi / std) ** 2).reshape(x0.shape[0], -1).sum(1)
    log_prior = log_prior - D * (math.log(std) + 0.5 * math.log(2 * math.pi))
    return ODELikelihood(-(log_prior + D * math.log(alpha_hi) + divs[-1]), nfe)


def _in_dtype(denoiser: Denoiser, dtype: torch.dtype) -> Denoiser:
    """A copy of the denoiser with its network in ``dtype`` (the original is left as it is)."""
    if all(p.dtype == dtype for p in denoiser.net.parameters()):
        return denoiser
    return copy.deepcopy(denoiser).to(dtype)
