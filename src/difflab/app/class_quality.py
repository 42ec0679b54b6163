"""How good are a class-conditional run's samples, class by class.

Toy mixtures, from the generator's exact class-conditional densities (data/toy_density.py):

- accuracy: the fraction of samples whose most probable class under the exact p(c | x) is the
  class they were asked for (samples off every class's support count as wrong), beside the
  same fraction for fresh data of those classes (the Bayes accuracy, the best possible);
- per class: E_q[-log p(x | c)] of the samples beside the true conditional entropy
  H(x | c) = E_p[-log p(x | c)] on fresh data of the class; the energy distance of the class's
  samples to fresh data of the class, with its noise floor; and the spread of the samples
  relative to the data's, sqrt(tr Cov_q / tr Cov_p) (1: as diverse as the data, < 1: the
  class collapsed towards its modes, which strong guidance does).

Digits: the cached digits classifier's accuracy on the samples of each class and the Frechet
distance of each class's samples to the test images of that class, with its noise floor
(digits_quality.py). Other data: None.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from difflab.app.datasets import REFERENCE_SEED, reference_class_data
from difflab.data.toy import toy_num_classes
from difflab.data.toy_density import toy_class_log_prob, toy_class_posterior
from difflab.metrics import compare_to_reference, spread_ratio, summarize_classes

#: Fresh points per class for the true conditional entropy H(x | c) (Monte Carlo, se ~ 1e-2).
ENTROPY_POINTS = 5000


def conditional_metrics(
    name: str, samples: np.ndarray, labels: np.ndarray, *, floor_draws: int = 5
) -> dict[str, Any] | None:
    """The metrics above for samples (N, ...) of classes ``labels`` (N,) of data ``name``."""
    if name == "digits":
        from difflab.digits_quality import digits_class_quality

        return digits_class_quality(samples, labels)
    if toy_num_classes(name) is None:
        return None
    return toy_class_quality(name, samples.reshape(samples.shape[0], -1), labels, floor_draws)


def toy_class_quality(
    name: str, samples: np.ndarray, labels: np.ndarray, floor_draws: int = 5
) -> dict[str, Any]:
    """Accuracy under the exact p(c | x) and per-class quality of toy samples (n, 2)."""
    correct = _recognised(name, samples, labels)
    per_class = []
    for c in np.unique(labels):
        mine = labels == c
        row = _class_row(name, int(c), samples[mine], floor_draws)
        row["accuracy"] = float(correct[mine].mean())
        per_class.append(row)
    bayes = np.concatenate([r.pop("_data_correct") for r in per_class])
    return summarize_classes(
        {"accuracy": float(correct.mean()), "data_accuracy": float(bayes.mean())}, per_class
    )


def _recognised(name: str, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Whether the exact posterior's most probable class of each point is its label."""
    post = toy_class_posterior(name, x)
    return (post.argmax(1) == labels) & (post.sum(1) > 0)


def _class_row(name: str, c: int, x: np.ndarray, floor_draws: int) -> dict[str, Any]:
    n = x.shape[0]
    row: dict[str, Any] = {"class": c, "n": n}
    truth = reference_class_data(name, c, ENTROPY_POINTS, seed=REFERENCE_SEED + 77)
    h = -toy_class_log_prob(name, truth)[:, c]
    row["true_entropy"] = float(h.mean())
    row["true_entropy_se"] = float(h.std(ddof=1) / np.sqrt(len(h)))
    row["_data_correct"] = _recognised(name, truth, np.full(len(truth), c))
    neg_log = -toy_class_log_prob(name, x)[:, c]
    row["neg_log_p"] = float(neg_log.mean())  # +inf when samples leave a bounded support
    row["neg_log_p_excess"] = row["neg_log_p"] - row["true_entropy"]
    if n < 2:
        return row
    reference = reference_class_data(name, c, n)
    floors = [
        reference_class_data(name, c, n, seed=REFERENCE_SEED + 1 + k) for k in range(floor_draws)
    ]
    energy = compare_to_reference(x, reference, floors)["energy_distance"]
    row["energy_ratio"], row["energy_distance"], row["energy_floor"] = (
        energy["ratio"],
        energy["value"],
        energy["floor"],
    )
    row["spread_ratio"] = spread_ratio(x, truth)
    return row


def format_conditional(metrics: dict[str, Any] | None) -> list[str]:
    """Terminal lines: the accuracy and a row per class."""
    if not metrics:
        return []
    bayes = metrics.get("data_accuracy")
    best = f" (fresh data: {bayes:.2%})" if bayes is not None else ""
    lines = [f"class accuracy of the samples: {metrics['accuracy']:.2%}{best}"]
    for r in metrics["per_class"]:
        parts = [f"class {r['class']}: n {r['n']}, accuracy {r['accuracy']:.2%}"]
        if "energy_ratio" in r:
            parts.append(f"energy/floor {r['energy_ratio']:.2f}")
        if "frechet_ratio" in r:
            parts.append(f"Frechet/floor {r['frechet_ratio']:.2f}")
        if "neg_log_p" in r:
            parts.append(f"E_q[-log p(x|c)] {r['neg_log_p']:.3f} vs H(x|c) {r['true_entropy']:.3f}")
        if "spread_ratio" in r:
            parts.append(f"spread {r['spread_ratio']:.2f}")
        lines.append("  " + ", ".join(parts))
    return lines
