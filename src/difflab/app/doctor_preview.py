"""``difflab doctor``'s sample check: are the run's samples closer to the data than a blob?

Raw and EMA samples are compared with the data by the energy distance d, beside two scales
measured the same way and at the same n:

- the noise floor d_floor: n fresh data points against the same data (toy data: the mean over
  FLOOR_DRAWS fresh draws against REFERENCE_MULTIPLE * n reference points; other data: n
  points of the training set against the rest);
- the blob d_blob: a Gaussian with the data's mean and covariance, what a model that learned
  only the first two moments would give (a visible blob for the swiss roll).

The finding reads q = (d - d_floor) / (d_blob - d_floor): 0 as close as real data, 1 no closer
than the blob. Samples with q >= Q_PROBLEM are a problem, q >= Q_WARNING a warning; NaN/inf
samples are a problem whose fix names the likely cause. Where the blob is itself within
BLOB_MIN_RATIO of the floor (near-Gaussian data, or too few points), q cannot separate them
and only the distance to the floor is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from difflab.app.datasets import REFERENCE_SEED, is_toy
from difflab.app.sample import nonfinite_rows
from difflab.data.dataset import Dataset
from difflab.data.toy import sample_toy
from difflab.metrics import energy_distance

#: Thresholds on q (see the module doc), set from runs of known quality (docs/reliability.md).
Q_WARNING, Q_PROBLEM = 0.35, 0.75
#: The blob must be this many floors away from the data for q to mean anything.
BLOB_MIN_RATIO = 2.0
#: Fresh draws averaged into the floor, and the reference's size in multiples of n (toy data).
FLOOR_DRAWS = 5
REFERENCE_MULTIPLE = 4


@dataclass
class Scales:
    """The data to compare with (``ref``, (m, D) in user space), the number of samples ``n``
    to judge against it, and the two yardsticks at that n."""

    ref: np.ndarray
    n: int
    floor: float
    blob: float

    def q(self, distance: float) -> float:
        return (distance - self.floor) / (self.blob - self.floor)

    @property
    def informative(self) -> bool:
        return self.blob > BLOB_MIN_RATIO * self.floor


def scales(name: str, data: Dataset, n: int, *, seed: int) -> Scales:
    """Reference points, noise floor and blob distance at n points (toy data: fresh draws)."""
    rng = np.random.default_rng(seed)
    if is_toy(name):
        ref = sample_toy(name, REFERENCE_MULTIPLE * n, seed=REFERENCE_SEED)
        draws = [sample_toy(name, n, seed=REFERENCE_SEED + 1 + k) for k in range(FLOOR_DRAWS)]
        fit = sample_toy(name, max(20 * n, 20_000), seed=REFERENCE_SEED + 100)
    else:
        pool = data.decode(data.x.reshape(data.x.shape[0], -1).numpy())
        pool = pool[rng.permutation(len(pool))]
        n = min(n, len(pool) // 2)
        ref, draws, fit = pool[n:], [pool[:n]], pool
    ref = ref.reshape(len(ref), -1).astype(np.float64)
    fit = fit.reshape(len(fit), -1).astype(np.float64)
    floor = float(np.mean([energy_distance(d.reshape(n, -1), ref) for d in draws]))
    cov = np.atleast_2d(np.cov(fit, rowvar=False))
    blob = rng.multivariate_normal(fit.mean(0), cov, size=n, method="eigh")
    return Scales(ref, n, floor, energy_distance(blob, ref))


def judge(label: str, samples: np.ndarray, sc: Scales) -> tuple[float, str]:
    """(q, text) for one set of samples; q = inf when any sample is NaN/inf."""
    flat = samples.reshape(len(samples), -1)
    if nonfinite_rows(flat):
        return math.inf, f"{label}: {nonfinite_rows(flat)} of {len(flat)} samples NaN/inf"
    d = energy_distance(flat, sc.ref)
    if not sc.informative:
        return sc.q(d) if sc.blob > sc.floor else 0.0, f"{label} {d:.3g}"
    return sc.q(d), f"{label} {d:.3g} (q = {sc.q(d):.2f})"
