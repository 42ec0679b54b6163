"""The class-by-class sample metrics (app/class_quality.py, digits_quality.py) on data whose
answer is known: fresh data of the right classes scores like data, mislabelled or collapsed
samples do not.

Tolerances: fresh draws' energy ratios to a 5-draw floor scatter around 1 (a few floor standard
deviations; below 3 for 250 points per class); the spread ratio of n = 250 draws has relative
standard error about 1 / sqrt(2 n) = 0.045 per class, so [0.85, 1.15] is over 3 se."""

from __future__ import annotations

import numpy as np
import pytest

from difflab import digits_quality as dq
from difflab.app.class_quality import conditional_metrics, toy_class_quality
from difflab.data.toy import sample_toy_labelled
from difflab.metrics import spread_ratio


def test_fresh_labelled_data_scores_like_data_and_wrong_labels_do_not():
    x, labels = sample_toy_labelled("8gaussians", 2000, seed=42)
    good = toy_class_quality("8gaussians", x, labels)
    assert good["accuracy"] == 1.0 and good["data_accuracy"] == 1.0
    assert good["max_class_energy_ratio"] < 3.0
    assert 0.85 < good["mean_spread_ratio"] < 1.15
    for row in good["per_class"]:  # E_q[-log p(x|c)] of data is H(x|c), within 5 se
        assert abs(row["neg_log_p"] - row["true_entropy"]) < 5 * 1.0 / np.sqrt(row["n"])
    shifted = toy_class_quality("8gaussians", x, (labels + 1) % 8)
    assert shifted["accuracy"] == 0.0 and shifted["max_class_energy_ratio"] > 100
    collapsed = np.repeat(x[labels == 0][:1], 100, axis=0) + 1e-3 * np.random.default_rng(
        0
    ).standard_normal((100, 2))
    low = toy_class_quality("8gaussians", collapsed, np.zeros(100, dtype=np.int64))
    assert low["accuracy"] == 1.0 and low["mean_spread_ratio"] < 0.05  # right class, no diversity
    assert conditional_metrics("swiss_roll", x, labels) is None


def test_spread_ratio_is_the_ratio_of_standard_deviations():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((100_000, 2))
    assert spread_ratio(0.5 * data, data) == pytest.approx(0.5)
    assert spread_ratio(data + 3.0, data) == pytest.approx(1.0)


def test_digits_class_quality_on_real_digits():
    """The test digits with their own labels: the accuracy is the classifier's accuracy on the
    test split (computed separately, on unrounded images). Held-out validation digits (not the
    reference) score per-class Frechet ratios of real digits: below 3 (the floor has as many
    training digits of the class, 18 on average); relabelled by one, far above."""
    classifier = dq.train_classifier(epochs=3)
    x, y = dq.digits_split("test")
    result = dq.digits_class_quality(x.numpy(), y.numpy(), classifier=classifier)
    assert result["accuracy"] == pytest.approx(result["classifier_test_accuracy"])
    val, val_y = dq.digits_split("val")
    real = dq.digits_class_quality(val.numpy(), val_y.numpy(), classifier=classifier)
    assert len(real["per_class"]) == 10 and 0 < real["mean_class_frechet_ratio"] < 3.0
    wrong = dq.digits_class_quality(val.numpy(), (val_y.numpy() + 1) % 10, classifier=classifier)
    assert wrong["accuracy"] < 0.2 and wrong["mean_class_frechet_ratio"] > 3.0
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        dq.digits_class_quality(np.zeros((4, 1, 7, 7)), np.zeros(4), classifier=classifier)
