"""Samplers: each is a function ``<algo>_sample(model, schedule, shape, ...)`` built on the one
shared chain loop in ``_chain.py``, returning a :class:`ChainResult`."""

from difflab.samplers._chain import ChainResult, run_chain
from difflab.samplers.ddpm import ddpm_sample, ddpm_step

__all__ = ["ChainResult", "ddpm_sample", "ddpm_step", "run_chain"]
