"""Samplers: each is a function ``<algo>_sample(model, schedule, shape, ...)`` built on the one
shared chain loop in ``_chain.py``, returning a :class:`ChainResult`. Fast samplers visit a
K-step grid of paper times from ``spacing.py``."""

from difflab.samplers._chain import ChainResult, run_chain
from difflab.samplers.ddim import ddim_invert, ddim_sample
from difflab.samplers.ddpm import ddpm_respaced_sample, ddpm_sample, ddpm_step
from difflab.samplers.ode import dpmpp2m_sample, ode_sample
from difflab.samplers.spacing import Spacing, timestep_grid

__all__ = [
    "ChainResult",
    "Spacing",
    "ddim_invert",
    "ddim_sample",
    "ddpm_respaced_sample",
    "ddpm_sample",
    "ddpm_step",
    "dpmpp2m_sample",
    "ode_sample",
    "run_chain",
    "timestep_grid",
]
