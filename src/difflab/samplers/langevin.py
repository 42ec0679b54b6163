"""Langevin dynamics, annealed Langevin dynamics and a predictor-corrector sampler.

Langevin dynamics draws from p(x) with only its score s(x) = grad_x log p(x):

    x_{k+1} = x_k + (eps_k / 2) s(x_k) + sqrt(eps_k) z_k,    z_k ~ N(0, I)

(Welling & Teh 2011; the noise is Gaussian, never uniform). As eps -> 0 and k -> infinity the
chain's law converges to p. Annealed Langevin (Song & Ermon 2019, Algorithm 1) runs it at each
level of a decreasing noise ladder sigma_1 > ... > sigma_L with step alpha_i = eps sigma_i^2 /
sigma_L^2, so chains cross low-density regions while the noise is large. The predictor-corrector
sampler (Song et al. 2021, Algorithms 4-5, on the discrete VP chain) alternates Langevin
corrector steps at a target signal-to-noise ratio with ancestral DDPM steps, on the full chain
or a sub-grid.

Trajectories: chains are labelled by the number of steps left, so the starting state of a
K-step chain has label K and the final sample label 0 (as x_T ... x_0 of diffusion samplers).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch

from difflab.denoiser import Denoiser
from difflab.forward import randn_like
from difflab.samplers._chain import (
    ChainResult,
    Record,
    initial_noise,
    run_chain,
    start_state,
)
from difflab.samplers.ddpm import ddpm_step
from difflab.schedules import expand_like

Score = Callable[[torch.Tensor], torch.Tensor]
NoiseScore = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class ScoreLadder:
    """A noise-conditional score ``score(x, sigma)`` and the decreasing ladder of levels
    sigma_1 > ... > sigma_L it was trained on (NCSN, Song & Ermon 2019)."""

    score: NoiseScore
    sigmas: tuple[float, ...]


def langevin_step(
    score: Score,
    x: torch.Tensor,
    step_size: float | torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One step x + (eps / 2) s(x) + sqrt(eps) z, z ~ N(0, I); ``step_size`` eps is a float,
    a 0-d tensor or a per-example (B,) tensor."""
    if noise is None:
        noise = randn_like(x, generator)
    per_example = isinstance(step_size, torch.Tensor) and step_size.dim() == 1
    eps = expand_like(step_size, x) if per_example else step_size
    return x + 0.5 * eps * score(x) + eps**0.5 * noise


def langevin_step_sizes(step_size: float, n_steps: int, decay: float = 1.0) -> list[float]:
    """The schedule eps_k = step_size * decay^k for k = 0..n_steps-1 (decay 1: constant)."""
    if not step_size > 0 or not 0 < decay <= 1 or n_steps < 1:
        raise ValueError(
            f"Langevin needs step_size > 0, decay in (0, 1] and n_steps >= 1, got "
            f"{step_size}, {decay}, {n_steps}"
        )
    return [step_size * decay**k for k in range(n_steps)]


def langevin_sample(
    score: Score,
    shape: tuple[int, ...],
    *,
    steps: int = 1000,
    step_size: float = 1e-3,
    step_decay: float = 1.0,
    x_init: torch.Tensor | None = None,
    init_std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    record: Record = None,
    progress: bool = False,
) -> ChainResult:
    """Run ``steps`` Langevin steps of sizes ``langevin_step_sizes(step_size, steps,
    step_decay)`` from ``x_init`` (default N(0, init_std^2 I)); ``record`` lists step labels
    in {K, ..., 0} to keep (K = steps)."""
    sizes = langevin_step_sizes(step_size, steps, step_decay)
    x = initial_noise(shape, x_init, generator=generator, device=device, std=init_std)

    def step(x_k: torch.Tensor, eps: float) -> torch.Tensor:
        return langevin_step(score, x_k, eps, generator=generator)

    n = len(sizes)
    times = list(range(n, -1, -1))
    return run_chain(step, x, sizes, times=times, record=record, progress=progress, desc="langevin")


def annealed_langevin_sample(
    ladder: ScoreLadder,
    shape: tuple[int, ...],
    *,
    n_steps_each: int = 100,
    step_size: float = 2e-5,
    x_init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    record: Record = None,
    progress: bool = False,
) -> ChainResult:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

    ``ladder.score(x, sigma)`` is a noise-conditional score; ``ladder.sigmas`` decrease. Chains
    start from N(0, sigma_1^2 I) (the data is negligible beside the largest noise) unless
    ``x_init`` is given, and run ``n_steps_each`` steps at every level with alpha_i =
    step_size * sigma_i^2 / sigma_L^2. Labels run from K = L * n_steps_each down to 0.
    """
    sigmas = [float(s) for s in ladder.sigmas]
    if any(b >= a for a, b in pairwise(sigmas)) or sigmas[-1] <= 0:
        raise ValueError(f"the sigma ladder must be positive and decreasing, got {sigmas}")
    if n_steps_each < 1 or not step_size > 0:
        raise ValueError(
            f"annealed Langevin needs n_steps_each >= 1 and step_size > 0, got "
            f"{n_steps_each}, {step_size}"
        )
    x = initial_noise(shape, x_init, generator=generator, device=device, std=sigmas[0])
    # 1. the step size of each level, alpha_i = eps * sigma_i^2 / sigma_L^2
    items = [(s, step_size * s**2 / sigmas[-1] ** 2) for s in sigmas for _ in range(n_steps_each)]

    def step(x_k: torch.Tensor, item: tuple[float, float]) -> torch.Tensor:
        sigma, alpha = item
        # 2. x <- x + (alpha_i / 2) s(x, sigma_i) + sqrt(alpha_i) z
        return langevin_step(lambda y: ladder.score(y, sigma), x_k, alpha, generator=generator)

    n = len(items)
    return run_chain(
        step,
        x,
        items,
        times=list(range(n, -1, -1)),
        record=record,
        progress=progress,
        desc="annealed langevin",
    )


def pc_corrector_step(
    score: Score,
    x: torch.Tensor,
    alpha_t: torch.Tensor | float,
    snr: float,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Langevin corrector at target signal-to-noise ratio ``snr`` (Song et al. 2021, Alg. 5):
    eps = 2 alpha_t (snr ||z|| / ||s||)^2, x + eps s + sqrt(2 eps) z, which is
    :func:`langevin_step` with step 2 eps.

    The norms are batch means of per-example norms, as in score_sde_pytorch: a per-example
    ratio explodes in low dimension wherever the score is near zero (at a mode), which
    inflates the variance instead of correcting it.
    """
    noise = randn_like(x, generator)
    g = score(x)
    z_norm = noise.reshape(x.shape[0], -1).norm(dim=1).mean()
    g_norm = g.reshape(x.shape[0], -1).norm(dim=1).mean().clamp_min(1e-12)
    eps = 2 * alpha_t * (snr * z_norm / g_norm) ** 2
    return langevin_step(lambda _: g, x, 2 * eps, noise=noise)


def pc_sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    *,
    grid: Sequence[float] | None = None,
    snr: float = 0.16,
    corrector_steps: int = 1,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    record: Record = None,
    progress: bool = False,
) -> ChainResult:
    """Predictor-corrector sampling of a diffusion model along ``grid`` (default: all T
    steps; Song et al. 2021, Algorithms 4-5).

    At each step t -> t_prev: ``corrector_steps`` Langevin corrector steps on x_t with the
    model's score at t and alpha = alpha_{t|t_prev}^2 (1 - beta_t on the full grid), then the
    ancestral predictor x_t -> x_{t_prev} (:func:`ddpm_step`, no noise at the last step).
    Correcting before predicting (as score_sde_pytorch's ``pc_sampler`` does) keeps every
    corrector on a level the model knows. ``corrector_steps = 0`` is exactly ancestral
    sampling. Labels: the grid's times, as for DDPM.
    """
    if corrector_steps < 0 or not snr > 0:
        raise ValueError(f"pc needs corrector_steps >= 0 and snr > 0, got {corrector_steps}, {snr}")
    grid = list(denoiser.process.default_grid() if grid is None else grid)
    x = start_state(denoiser, shape, grid, x_T, generator=generator)

    def step(x_t: torch.Tensor, pair: tuple[float, float]) -> torch.Tensor:
        t, t_prev = pair
        alpha = denoiser.process.transition(t, t_prev)[0] ** 2
        # 1. corrector: Langevin steps at the level of x_t
        for _ in range(corrector_steps):
            x_t = pc_corrector_step(
                lambda y: denoiser.score(y, t), x_t, alpha, snr, generator=generator
            )
        # 2. predictor: one ancestral step
        return ddpm_step(denoiser, x_t, t, t_prev, generator=generator)

    pairs = list(itertools.pairwise(grid))
    return run_chain(
        step,
        x,
        pairs,
        times=grid,
        record=record,
        progress=progress,
        desc="pc",
        evals_per_item=corrector_steps + 1,
    )
