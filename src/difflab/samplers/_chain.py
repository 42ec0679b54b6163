"""The one shared chain loop every sampler runs.

A sampler supplies a ``step(x, item) -> x`` function and the list of items (timesteps, or
(t, t_prev) pairs) to visit, plus a label for each state: ``times[0]`` labels the starting state
and ``times[i + 1]`` the state after item i. For diffusion samplers the label is the process
time of the state (for a discrete schedule the paper's time: x_T has label T, the final sample
label 0; continuous processes have float times), so ``record=[T, ..., 0]`` keeps the reverse
trajectory at those times. ``record`` may also be a function that picks the labels
to keep from the chain's labels (e.g. ten evenly spaced ones for a figure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm


class ChainResult(NamedTuple):
    """``x``: the final state; ``trajectory``: recorded states by label (CPU tensors), in order;
    ``nfe``: the number of network evaluations the chain made."""

    x: torch.Tensor
    trajectory: dict[float, torch.Tensor]
    nfe: int


#: Which states a chain keeps: labels, or a function of the chain's labels that returns them.
Record = Iterable[float] | Callable[[Sequence[float]], Iterable[float]] | None


def initial_noise(
    shape: tuple[int, ...],
    x_T: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    std: float = 1.0,
) -> torch.Tensor:
    """The chain's starting state: ``x_T`` if given, else a draw from N(0, std^2 I) of
    ``shape`` on ``device``."""
    if x_T is not None:
        return x_T
    x = torch.randn(shape, generator=generator, device=device)
    return x if std == 1.0 else std * x


def start_state(
    denoiser: Any,
    shape: tuple[int, ...],
    grid: Sequence[float],
    x_T: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A diffusion chain's starting state at the grid's first time: ``x_T`` if given, else a
    draw from the model's prior there, N(0, prior_std^2 I) (N(0, I) for a discrete schedule;
    ``Denoiser.prior_std``), on the denoiser's device."""
    std = denoiser.prior_std(grid[0])
    return initial_noise(shape, x_T, generator=generator, device=denoiser.device, std=std)


def run_chain(
    step: Callable[[torch.Tensor, Any], torch.Tensor],
    x: torch.Tensor,
    items: Sequence[Any],
    *,
    times: Sequence[float],
    record: Record = None,
    progress: bool = False,
    desc: str = "sampling",
    evals_per_item: int = 1,
) -> ChainResult:
    """Apply ``step`` along ``items`` from ``x``, recording the states whose label is in ``record``.

    Runs under ``torch.inference_mode``; the progress bar (tqdm) is shown only when asked.
    """
    if len(times) != len(items) + 1:
        raise ValueError(f"need len(items) + 1 = {len(items) + 1} labels, got {len(times)}")
    keep = set((record(list(times)) if callable(record) else record) or ())
    trajectory: dict[float, torch.Tensor] = {}
    if times[0] in keep:
        trajectory[times[0]] = x.detach().cpu().clone()
    with torch.inference_mode():
        for i, item in enumerate(tqdm(items, desc=desc, disable=not progress, leave=False)):
            x = step(x, item)
            if times[i + 1] in keep:
                trajectory[times[i + 1]] = x.detach().cpu().clone()
    return ChainResult(x, trajectory, evals_per_item * len(items))
