"""What every training objective returns and how the trainer calls it."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import nn


class LossOutput(NamedTuple):
    """``loss``: per-example values (B,) the trainer averages; ``terms``: named parts, each (B,)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]


class Objective(Protocol):
    """A training objective: ``objective(model, x0, generator=...) -> LossOutput``."""

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput: ...
