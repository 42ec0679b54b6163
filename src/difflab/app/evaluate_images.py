"""``difflab evaluate`` on an image run: bits per dimension on a held-out split, the variational
bound (Ho et al. 2020, Eq. 5) with the discretized decoder on the data's ``levels`` bins
(Eq. 13), and for the digits the quality of samples (``app/quality.py``).

The bound's every term is computed exactly per image (one network call per t, see
``losses.vlb.full_bound``), so the only randomness is the draw of x_t at each t; the standard
error reported is over images. A class-conditional run is scored as p(x | c) with the split's
labels, and its samples (in the data's class proportions) get the class-by-class metrics.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import torch

from difflab.app.datasets import build_image_split
from difflab.app.quality import format_metrics
from difflab.app.registry import LOSSES
from difflab.app.run import Run
from difflab.atomic import atomic_write_json
from difflab.digits_quality import check_classifier_cache
from difflab.losses.vlb import full_bound


def split_bits_per_dim(
    run: Run,
    *,
    split: str = "test",
    batch_size: int = 500,
    seed: int = 0,
    max_images: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The bound in bits/dim on ``split`` of an image run's data, with its parts.

    Returns a dict: ``bits_per_dim_bound`` (mean over images), ``stderr`` (over images),
    ``prior``, ``decoder`` and ``kl`` (each part's mean contribution in bits/dim), ``levels``,
    ``n_images``, ``T`` and ``seconds``.
    """
    if not run.config.data.is_image:
        raise ValueError(
            f"bits/dim on a split needs image data; this run has {run.config.data.name!r}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if LOSSES[run.config.loss.name].continuous:
        raise ValueError(
            f"bits/dim of image runs come from the discrete bound, which loss.name = "
            f"{run.config.loss.name!r} (a continuous formulation) does not have; judge its "
            "samples with `difflab sample --grid` or `difflab demo`"
        )
    data = build_image_split(run.config.data, split, labels=run.classes is not None)
    x = data.x if max_images is None else data.x[:max_images]
    labels = None if data.labels is None else data.labels[: x.shape[0]]
    levels = run.data.levels or data.levels
    device, generator = run.device, run.generator(seed)
    scale = x[0].numel() * math.log(2.0)
    parts: dict[str, list[torch.Tensor]] = {"total": [], "prior": [], "decoder": [], "kl": []}
    t0 = time.perf_counter()
    run.model.eval()
    for i, batch in enumerate(x.split(batch_size)):
        y = None if labels is None else labels[i * batch_size : i * batch_size + batch.shape[0]]
        denoiser = run.denoiser(clip=False, labels=y)
        bound = full_bound(
            denoiser, batch.to(device), levels=levels, generator=generator, progress=progress
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
        "conditional": labels is not None,  # the bound on -log p(x | c)
        "n_images": n,
        "T": run.schedule.T,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def evaluate_image_run(
    run: Run,
    *,
    n_samples: int = 1000,
    batch_size: int = 500,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Test-split bits/dim of an image run (the bound with the data's discretized decoder),
    and for the digits the quality metric of ``n_samples`` samples (0: skip); written to
    ``run_dir/evaluate.json`` (once all is computed) and returned."""
    from difflab.app.evaluate import scored_samples

    scores = run.config.data.name == "digits" and n_samples > 0
    if scores:
        check_classifier_cache()  # before the work: a cache path that is a file fails now
    result: dict[str, Any] = {"run_dir": str(run.run_dir), "step": run.step}
    result["bits_per_dim"] = split_bits_per_dim(
        run, batch_size=batch_size, seed=seed, progress=progress
    )
    if scores:
        labels = run.default_labels(n_samples)
        samples, _ = run.sample(n_samples, seed=seed + 1, progress=progress, labels=labels)
        if run.writes:  # on every rank, scored on rank 0
            result.update(scored_samples(run, samples, labels=labels))
    if run.writes:  # under torchrun: rank 0
        atomic_write_json(run.run_dir / "evaluate.json", result)
    return result


def command_images(run: Run, *, n: int, progress: bool = False) -> int:
    """``difflab evaluate`` on an image run: print and write the results (rank 0; exit 1 when
    the samples scored are NaN/inf)."""
    result = evaluate_image_run(run, n_samples=n, progress=progress)
    if not run.writes:
        return 0
    bpd = result["bits_per_dim"]
    print(
        f"test bits/dim (bound): {bpd['bits_per_dim_bound']:.4f} +- {bpd['stderr']:.4f} "
        f"({bpd['n_images']} images, {bpd['levels']} levels, T = {bpd['T']})"
    )
    print(f"  prior {bpd['prior']:.4f}, decoder {bpd['decoder']:.4f}, KL terms {bpd['kl']:.4f}")
    if result.get("sample_metrics"):
        for line in format_metrics(result["sample_metrics"]):
            print("  " + line)
    print(f"wrote {run.run_dir / 'evaluate.json'}")
    if result.get("sample_metrics_note"):
        print(f"difflab: warning: {result['sample_metrics_note']}", file=sys.stderr)
        return 1
    return 0
