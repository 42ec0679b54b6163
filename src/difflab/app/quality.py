"""How good are a run's samples: energy distance and MMD to fresh toy data with their noise
floors, the mean exact log-density of the samples under the generator (toy data), and for the
digits the Frechet distance in a classifier's features with its floor and the class histogram;
for the samples of a class-conditional run also the class-by-class metrics of
``app/class_quality.py``."""

from __future__ import annotations

from typing import Any

import numpy as np

from difflab.app.class_quality import conditional_metrics, format_conditional
from difflab.app.datasets import REFERENCE_SEED, is_toy, reference_data
from difflab.app.run import Run
from difflab.data.toy import sample_toy
from difflab.data.toy_density import toy_log_prob
from difflab.metrics import compare_to_reference


def sample_metrics(
    run: Run, samples: np.ndarray, *, floor_draws: int = 5, labels: np.ndarray | None = None
) -> dict[str, Any] | None:
    """Energy distance and MMD of samples to fresh data, with noise floors, and E_q[-log p]
    beside H(p) (toy data); for the digits, the Frechet distance to the test split with its
    floor and the class histogram; None for other data. With the classes ``labels`` (N,) the
    samples were drawn for, also ``"conditional"``: the class-by-class metrics."""
    if run.config.data.name == "digits":
        from difflab.digits_quality import digits_quality

        metrics = digits_quality(samples)
    else:
        n = samples.shape[0]
        reference = reference_data(run.data.name, n)
        if reference is None:
            return None
        floors = [
            sample_toy(run.data.name, n, seed=REFERENCE_SEED + 1 + k) for k in range(floor_draws)
        ]
        metrics = compare_to_reference(samples, reference, floors)
        metrics["neg_log_p"] = precision(run.data.name, samples, reference)
    if labels is not None:
        metrics["conditional"] = conditional_metrics(
            run.data.name, samples, labels, floor_draws=floor_draws
        )
    return metrics


def precision(name: str, samples: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """E_q[-log p(x)] of the samples under the toy generator's exact density beside the true
    entropy H(p) = E_p[-log p(x)] on fresh data, in nats: samples blurrier than the data (or
    off it) score above H(p), since off-data points have low density."""
    if not is_toy(name):
        raise ValueError(f"exact densities exist for toy data only, not {name!r}")
    flat = samples.reshape(samples.shape[0], -1)
    neg_log_q = -toy_log_prob(name, flat)
    entropy = float(np.mean(-toy_log_prob(name, reference.reshape(reference.shape[0], -1))))
    value = float(np.mean(neg_log_q))  # +inf when samples leave a bounded support
    return {
        "value": value,
        "entropy": entropy,
        "excess": value - entropy,
        "off_support": float(np.mean(~np.isfinite(neg_log_q))),
    }


def format_metrics(metrics: dict[str, Any] | None) -> list[str]:
    """Lines like 'energy distance 0.0012 (noise floor 0.0011, ratio 1.05)'."""
    if not metrics:
        return ["(no fresh data to compare against: metrics need a toy dataset)"]
    names = {
        "energy_distance": "energy distance",
        "mmd": "RBF-MMD^2",
        "frechet_distance": "Frechet distance (digits classifier features)",
    }
    lines = [
        f"{names.get(k, k)}: {v['value']:.3g} "
        f"(noise floor {v['floor']:.3g}, ratio {v['ratio']:.2f})"
        for k, v in metrics.items()
        if isinstance(v, dict) and "floor" in v
    ]
    if "neg_log_p" in metrics:
        p = metrics["neg_log_p"]
        off = f", {p['off_support']:.1%} off the support" if p["off_support"] else ""
        lines.append(
            f"E_q[-log p] of the samples: {p['value']:.3f} nats (true entropy H(p) = "
            f"{p['entropy']:.3f}, excess {p['excess']:+.3f}{off})"
        )
    if "class_histogram" in metrics:
        lines.append(f"predicted classes 0-9: {metrics['class_histogram']}")
    return lines + format_conditional(metrics.get("conditional"))
