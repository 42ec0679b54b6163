"""Exponential moving average of a model's parameters (Polyak averaging).

shadow <- d * shadow + (1 - d) * param after every optimiser step, with the warm-up
d_n = min(decay, (1 + n) / (10 + n)) so early averages are not dominated by the random
initialisation (n counts updates).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class EMA:
    """Shadow copies of ``model``'s floating-point parameters; buffers are not averaged."""

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = warmup
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad
        }

    def current_decay(self) -> float:
        """The decay the next update will use."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow towards the model's current parameters."""
        weight = 1.0 - self.current_decay()
        torch._foreach_lerp_(list(self.shadow.values()), self._tracked(model), weight)
        self.num_updates += 1

    def _tracked(self, model: nn.Module) -> list[torch.Tensor]:
        """The model's averaged parameters in shadow order, looked up once per model (walking
        ``named_parameters`` every step costs more than the average itself)."""
        if getattr(self, "_tracked_for", None) is not model:
            named = dict(model.named_parameters())
            self._tracked_params = [named[name] for name in self.shadow]
            self._tracked_for = model
        return self._tracked_params

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's parameters with the averages."""
        for name, p in model.named_parameters():
            if name in self.shadow:
                p.copy_(self.shadow[name])

    def averaged_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with the averaged parameters in place (loadable as a model)."""
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        state.update({k: v.clone() for k, v in self.shadow.items()})
        return state

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[nn.Module]:
        """Use the averaged weights inside the block; the live weights come back afterwards."""
        backup = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(backup[name])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            raise ValueError(
                f"EMA state does not match the model: differing keys {sorted(missing)}"
            )
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
