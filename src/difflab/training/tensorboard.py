"""TensorBoard logging of a training run (``train.tensorboard = true``), beside the CSV/JSONL log.

Into ``RUN_DIR/tensorboard/`` (``tensorboard --logdir runs/`` shows every run), with
``torch.utils.tensorboard``:

- at every logged row: the scalars of the metrics log (``train/loss``, ``train/lr``,
  ``train/grad_norm``, ``train/steps_per_s``, ``train/skipped_steps``);
- the loss (and each named term of the objective) by the quartile of the noise level,
  ``loss_by_t/q0`` .. ``q3``: the mean over the logging window of the examples whose
  t / T lies in [k/4, (k+1)/4) (improved-diffusion's ``loss_q0..3``; Nichol & Dhariwal 2021);
- at every checkpoint: a figure of samples drawn with the checkpoint's weights.

tensorboard is an optional dependency (``pip install 'difflab[tensorboard]'``). Under torchrun
only rank 0 logs, the quartiles from its shard of the batch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from difflab.losses.base import LossOutput

QUARTILES = 4
#: Terms of an objective that are not losses (NCSN's per-example noise level).
NOT_LOSSES = ("sigma",)

#: Metrics-log columns -> TensorBoard tags.
SCALARS = {
    "loss": "train/loss",
    "lr": "train/lr",
    "grad_norm": "train/grad_norm",
    "steps_per_s": "train/steps_per_s",
    "skipped": "train/skipped_steps",
}


def require_tensorboard() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line error saying how to get it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(
            "train.tensorboard = true needs the tensorboard package: pip install "
            "'difflab[tensorboard]' (or pip install tensorboard), or set train.tensorboard = false"
        ) from None
    return SummaryWriter


def by_quartile(
    values: torch.Tensor, t_fraction: torch.Tensor, n: int = QUARTILES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums (n,) float64 and counts (n,) int64 of ``values`` (B,) grouped by the quartile
    floor(n * t_fraction) of each example (fractions at or above 1 count in the last)."""
    q = (t_fraction.double() * n).floor().clamp(0, n - 1).long()
    sums = torch.zeros(n, dtype=torch.float64, device=values.device)
    sums.index_add_(0, q, values.detach().double())
    return sums, torch.bincount(q, minlength=n)


class TensorBoardLog:
    """A run's TensorBoard writer (a training observer: see ``Trainer``'s ``observer``).

    ``sample_image(model)`` draws samples with ``model`` and returns a uint8 picture (H, W) or
    (H, W, 3) for the checkpoint figure (None: no figure). ``purge_step``: on resume, events
    from this step on (written after the checkpoint) are dropped.
    """

    def __init__(
        self,
        log_dir: str | Path,
        *,
        sample_image: Callable[[nn.Module], np.ndarray] | None = None,
        purge_step: int | None = None,
    ) -> None:
        writer_cls = require_tensorboard()
        self.log_dir = Path(log_dir)
        self.writer = writer_cls(log_dir=str(self.log_dir), purge_step=purge_step)
        self.sample_image = sample_image
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, torch.Tensor] = {}

    def step(self, out: LossOutput, rows: slice) -> None:
        """Add an applied step's per-example losses (this rank's ``rows``) to the window."""
        if out.t_fraction is None:
            return
        frac = out.t_fraction[rows]
        named = {"loss": out.loss[rows]}
        named.update(
            {
                k: v[rows]
                for k, v in out.terms.items()
                if v.shape == out.loss.shape and k not in NOT_LOSSES
            }
        )
        for name, values in named.items():
            sums, counts = by_quartile(values, frac)
            if name in self._sums:
                self._sums[name] += sums
                self._counts[name] += counts
            else:
                self._sums[name], self._counts[name] = sums, counts

    def log(self, row: Mapping[str, Any]) -> None:
        """Write a metrics-log row and the window's quartile means at ``row["step"]``."""
        step = int(row["step"])
        for key, tag in SCALARS.items():
            value = row.get(key)
            if value is not None and math.isfinite(float(value)):
                self.writer.add_scalar(tag, float(value), step)
        for name, sums in self._sums.items():
            counts = self._counts[name].cpu()
            means = (sums.cpu() / counts.clamp(min=1)).tolist()
            for k in range(QUARTILES):
                if counts[k] > 0:
                    self.writer.add_scalar(f"{name}_by_t/q{k}", means[k], step)
        self._sums, self._counts = {}, {}

    def checkpoint(self, step: int, model: Callable[[], nn.Module]) -> None:
        """The sample figure at a checkpoint; ``model()`` gives the network to sample."""
        if self.sample_image is not None:
            try:
                picture = self.sample_image(model())
            except Exception as err:  # a figure must never end a training run
                warnings.warn(f"no TensorBoard sample figure at step {step}: {err}", stacklevel=2)
            else:
                formats = "HW" if picture.ndim == 2 else "HWC"
                self.writer.add_image("samples", picture, step, dataformats=formats)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
