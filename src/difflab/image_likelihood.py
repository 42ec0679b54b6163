"""Bits per dimension of an image run on a held-out split: the variational bound
(Ho et al. 2020, Eq. 5) with the discretized decoder on the data's ``levels`` bins (Eq. 13).

The bound's every term is computed exactly per image (one network call per t, see
``losses.vlb.full_bound``), so the only randomness is the draw of x_t at each t; the standard
error reported is over images.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from difflab.builders import build_image_split
from difflab.config import IMAGE_DATA
from difflab.losses.vlb import full_bound
from difflab.run import Run


def split_bits_per_dim(
    run: Run,
    *,
    split: str = "test",
    batch_size: int = 500,
    seed: int = 0,
    max_images: int | None = None,
) -> dict[str, Any]:
    """The bound in bits/dim on ``split`` of an image run's data, with its parts.

    Returns a dict: ``bits_per_dim_bound`` (mean over images), ``stderr`` (over images),
    ``prior``, ``decoder`` and ``kl`` (each part's mean contribution in bits/dim), ``levels``,
    ``n_images``, ``T`` and ``seconds``.
    """
    if run.config.data.name not in IMAGE_DATA:
        raise ValueError(
            f"bits/dim on a split needs image data (data.name one of {', '.join(IMAGE_DATA)}); "
            f"this run has {run.config.data.name!r}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    data = build_image_split(run.config.data, split)
    x = data.x if max_images is None else data.x[:max_images]
    levels = run.data.levels or data.levels
    device = next(run.model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    scale = x[0].numel() * math.log(2.0)
    parts: dict[str, list[torch.Tensor]] = {"total": [], "prior": [], "decoder": [], "kl": []}
    t0 = time.perf_counter()
    run.model.eval()
    for batch in x.split(batch_size):
        bound = full_bound(
            run.model,
            run.schedule,
            batch.to(device),
            prediction=run.config.model.prediction,
            variance=run.config.model.variance,
            levels=levels,
            generator=generator,
        )
        parts["total"].append(bound.total.cpu() / scale)
        parts["prior"].append(bound.prior.cpu() / scale)
        parts["decoder"].append(bound.terms[:, 0].cpu() / scale)
        parts["kl"].append(bound.terms[:, 1:].sum(dim=1).cpu() / scale)
    values = {k: torch.cat(v) for k, v in parts.items()}
    total = values["total"]
    n = total.numel()
    return {
        "bits_per_dim_bound": float(total.mean()),
        "stderr": float(total.std() / math.sqrt(n)) if n > 1 else float("nan"),
        "prior": float(values["prior"].mean()),
        "decoder": float(values["decoder"].mean()),
        "kl": float(values["kl"].mean()),
        "levels": levels,
        "split": split,
        "n_images": n,
        "T": run.schedule.T,
        "seconds": round(time.perf_counter() - t0, 2),
    }
