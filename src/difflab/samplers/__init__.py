"""Samplers: each is a function ``<algo>_sample(denoiser, shape, *, grid, generator, record,
progress, ...)`` built on the one shared chain loop in ``_chain.py``, returning a
:class:`ChainResult`. A sampler sees a :class:`difflab.denoiser.Denoiser` and the times of its
grid (``spacing.timestep_grid`` for the discrete schedules, ``grids.noise_level_grid`` for any
process), never the parameterization.
Langevin samplers take a score instead (``langevin.py``)."""

from difflab.samplers._chain import ChainResult, run_chain
from difflab.samplers.ddim import ddim_invert, ddim_sample
from difflab.samplers.ddpm import ddpm_sample, ddpm_step
from difflab.samplers.dpm_solver import dpmpp2m_sample, dpmpp2m_sde_sample, dpmpp3m_sample
from difflab.samplers.edm import edm_sample
from difflab.samplers.grids import FinalStep, Grid, noise_level_grid
from difflab.samplers.langevin import (
    ScoreLadder,
    annealed_langevin_sample,
    langevin_sample,
    pc_sample,
)
from difflab.samplers.ode import euler_sample, heun_sample, ode_sample
from difflab.samplers.spacing import Spacing, timestep_grid

__all__ = [
    "ChainResult",
    "FinalStep",
    "Grid",
    "ScoreLadder",
    "Spacing",
    "annealed_langevin_sample",
    "ddim_invert",
    "ddim_sample",
    "ddpm_sample",
    "ddpm_step",
    "dpmpp2m_sample",
    "dpmpp2m_sde_sample",
    "dpmpp3m_sample",
    "edm_sample",
    "euler_sample",
    "heun_sample",
    "langevin_sample",
    "noise_level_grid",
    "ode_sample",
    "pc_sample",
    "run_chain",
    "timestep_grid",
]
