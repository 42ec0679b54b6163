"""Validation criteria for the schedule search (schedule_search.py, ``difflab tune-schedule``):
a criterion maps samples in the user's space, (N, ...), to a number, lower is better. Each is
built from held-out data (never the training data) and the data's name; the application's
registry (``CRITERIA`` in app/registry.py) names them and says which data each applies to, so
a new criterion (e.g. a log-mel distance for audio) is a function here and one row there.

- ``energy``: the energy distance to the held-out points (Szekely & Rizzo 2013), a proper
  metric between distributions (0 only for equal laws), any vector data;
- ``neg_log_p``: E_q[-log p(x)] of the samples under a toy generator's exact density: it
  rewards precision only (samples piled on the densest part score *below* H(p)), so tune with
  ``energy`` and read this beside it;
- ``frechet``: the digits' Frechet distance in the features of the cached digits classifier
  (digits_quality.py), against the held-out images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from difflab.metrics import EnergyDistanceTo

Criterion = Callable[[np.ndarray], float]


def energy_criterion(held_out: np.ndarray, data_name: str) -> Criterion:
    """The energy distance of samples (N, D) to ``held_out`` (M, D)."""
    distance = EnergyDistanceTo(held_out.reshape(held_out.shape[0], -1))
    return lambda samples: distance(samples.reshape(samples.shape[0], -1))


def neg_log_p_criterion(held_out: np.ndarray, data_name: str) -> Criterion:
    """The mean exact -log p(x) of samples under the toy generator ``data_name``."""
    from difflab.data.toy_density import toy_log_prob

    def value(samples: np.ndarray) -> float:
        neg = -toy_log_prob(data_name, samples.reshape(samples.shape[0], -1))
        return float(np.mean(neg)) if np.all(np.isfinite(neg)) else float("inf")

    return value


def frechet_criterion(held_out: np.ndarray, data_name: str) -> Criterion:
    """The Frechet distance of digit samples (N, 1, 8, 8) to ``held_out`` digits in the
    classifier's features (samples rounded to the 17 levels first, as they are written)."""
    import torch

    from difflab.data.images import DIGITS_LEVELS, to_model_space, to_user_space
    from difflab.digits_quality import frechet_distance, load_classifier

    model = load_classifier()
    with torch.no_grad():
        reference = model.features(torch.from_numpy(held_out).float()).numpy()

    def value(samples: np.ndarray) -> float:
        quantized = to_model_space(to_user_space(samples, DIGITS_LEVELS), DIGITS_LEVELS)
        with torch.no_grad():
            feats = model.features(torch.from_numpy(quantized).float()).numpy()
        return frechet_distance(feats, reference)

    return value
