"""What every training objective returns and how the trainer calls it."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import nn


class LossOutput(NamedTuple):
    """``loss``: per-example values (B,) the trainer averages; ``terms``: named parts, each (B,);
    ``t_fraction``: where each example's noise level lies between the data (0) and pure noise
    (1), in [0, 1), e.g. t / T for the step index t; None for single-scale objectives. The
    trainer's TensorBoard log shows the loss by its quartile (t / T in [k/4, (k+1)/4))."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    t_fraction: torch.Tensor | None = None


def step_fraction(t: torch.Tensor, T: int) -> torch.Tensor:
    """t / T for the step index t in {0..T-1} (B,): a :attr:`LossOutput.t_fraction`."""
    return t.float() / T


class Objective(Protocol):
    """A training objective: ``objective(model, x0, generator=...) -> LossOutput``."""

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput: ...
