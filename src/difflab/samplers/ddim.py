"""DDIM: denoising diffusion implicit models (Song et al. 2020), and DDIM inversion.

On a grid of process times T = tau_K > ... > tau_0 = 0 (paper times: ``spacing.timestep_grid``),
with alpha_t, sigma_t the process's at tau_i and alpha_p, sigma_p at tau_{i-1} (noise.py), one
step is (Song et al. 2020, Eq. 12)

    x_prev = alpha_p x0_hat + sqrt(sigma_p^2 - s^2) eps_hat + s z,
    s^2 = eta^2 sigma_p^2 / sigma_t^2 sigma_{t|p}^2                     (Eq. 16),

with (x0_hat, eps_hat) the Denoiser's estimate at (x_t, tau_i) and sigma_{t|p}^2 = 1 - abar_t /
abar_p on a VP process. eta = 0 is deterministic; eta = 1 makes s^2 the posterior variance of
the (respaced) forward process, so on the full grid DDIM with eta = 1 *is* ancestral sampling
with the "small" variance. Coefficients are formed in float64 by the process.

Inversion runs the eta = 0 map backwards, data to noise. The step from x_b to x_a (a > b) must
solve x_a = alpha_a x0 + sigma_a eps with x0 = (x_b - sigma_b eps) / alpha_b and eps = eps_hat at
(x_a, a), the evaluation the sampler will make at x_a: implicit in x_a. It starts from
eps_hat at (x_b, a) and takes ``refine`` fixed-point iterations (default 1, so 2 network
evaluations per step); each iteration shrinks the error by about |d eps / d x| times the step's
change in x. On a grid of small steps one iteration brings the round trip from ~1e-2 to ~1e-5
(analytic Gaussian model, linear schedule, T = 1000). A step that is not small, like the cosine
schedule's last (beta_T capped at 0.999), converges slowly, and there x_T keeps only
sqrt(abar_T) ~ 2.5e-4 of the signal, which float32 resolves to about 1e-3 of the data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from difflab.denoiser import Denoiser
from difflab.forward import randn_like
from difflab.noise import NoiseProcess
from difflab.samplers._chain import ChainResult, Record, run_chain, start_state


def check_eta(eta: float) -> None:
    """Raise ValueError unless 0 <= eta <= 1."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(
            f"eta = {eta!r} is invalid: it must be a number in [0, 1] "
            "(0: deterministic DDIM, 1: ancestral sampling)"
        )


def ddim_coefficients(
    process: NoiseProcess, t: float, t_prev: float, eta: float
) -> tuple[float, float, float]:
    """(alpha_p, sqrt(sigma_p^2 - s^2), s) of the step from time ``t`` to ``t_prev`` (see the
    module docstring)."""
    var_p = process.sigma(t_prev) ** 2
    s2 = eta**2 * process.posterior(t, t_prev).var
    return process.alpha(t_prev), math.sqrt(max(var_p - s2, 0.0)), math.sqrt(s2)


def ddim_sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    *,
    grid: Sequence[float] | None = None,
    eta: float = 0.0,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    record: Record = None,
    progress: bool = False,
) -> ChainResult:
    """Draw ``shape[0]`` samples with DDIM steps along ``grid`` (default: every time) from x_T.

    Noise z is drawn from ``generator`` only on steps with s > 0, in chain order, exactly as
    ``ddpm_sample`` draws it, so eta = 1 on the full grid reproduces it given the same noise.
    """
    check_eta(eta)
    grid = list(denoiser.process.default_grid() if grid is None else grid)
    coefs = {
        t: ddim_coefficients(denoiser.process, t, t_prev, eta)
        for t, t_prev in itertools.pairwise(grid)
    }
    x = start_state(denoiser, shape, grid, x_T, generator=generator)

    def step(x_t: torch.Tensor, t: float) -> torch.Tensor:
        # 1. the network's estimate of the data and the noise at x_t
        x0, eps, _ = denoiser(x_t, t)
        # 2. x_prev = alpha_p x0 + sqrt(sigma_p^2 - s^2) eps (+ s z)
        alpha_p, c_eps, s = coefs[t]
        x_prev = alpha_p * x0 + c_eps * eps
        return x_prev + s * randn_like(x_t, generator) if s > 0 else x_prev

    return run_chain(step, x, grid[:-1], times=grid, record=record, progress=progress, desc="ddim")


def ddim_invert(
    denoiser: Denoiser,
    x0: torch.Tensor,
    *,
    grid: Sequence[float] | None = None,
    refine: int = 1,
    record: Record = None,
    progress: bool = False,
) -> ChainResult:
    """Map data x0 to its noise x_T with the deterministic (eta = 0) DDIM map run backwards,
    on the same grid ``ddim_sample`` uses; ``ddim_sample(..., x_T=result.x)`` maps it back.

    The trajectory's labels are times in ascending order (0 first, T last); ``nfe`` counts
    the ``1 + refine`` evaluations per step.
    """
    if refine < 0:
        raise ValueError(f"refine must be an integer >= 0, got {refine}")
    grid = list(denoiser.process.default_grid() if grid is None else grid)[::-1]
    process = denoiser.process

    def step(x_b: torch.Tensor, pair: tuple[float, float]) -> torch.Tensor:
        b, a = pair
        alpha_b, sigma_b = process.alpha(b), process.sigma(b)
        alpha_a, sigma_a = process.alpha(a), process.sigma(a)
        x_a = x_b  # 1. first guess of the point where the sampler evaluates the network
        for _ in range(1 + refine):
            # 2. eps_hat there, 3. the data estimate consistent with x_b, re-noised to level a
            eps = denoiser(x_a, a).eps
            x_a = alpha_a * (x_b - sigma_b * eps) / alpha_b + sigma_a * eps
        return x_a

    pairs = list(itertools.pairwise(grid))
    result = run_chain(
        step, x0, pairs, times=grid, record=record, progress=progress, desc="ddim-invert"
    )
    return result._replace(nfe=(1 + refine) * len(pairs))
