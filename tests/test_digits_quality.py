"""The digits quality metric: the Frechet distance formula, the cached classifier, the floor."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from difflab import digits_quality as dq


def test_frechet_distance_matches_the_formula_and_is_zero_on_itself():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 5))
    b = rng.normal(size=(300, 5)) @ np.diag([1.0, 2.0, 3.0, 1.0, 0.5]) + 1.0
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    direct = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(
        ca + cb - 2 * np.real(scipy.linalg.sqrtm(ca @ cb))
    )
    assert dq.frechet_distance(a, b) == pytest.approx(direct, rel=1e-8)
    assert dq.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # Singular covariances (a constant feature, as dead ReLUs give) stay finite.
    a[:, 0] = 0.0
    assert np.isfinite(dq.frechet_distance(a, b))


def test_frechet_distance_of_gaussians_converges_to_the_closed_form():
    # N(0, I) vs N(m, 4 I) in 3-D: |m|^2 + tr(I + 4I - 2 * 2I) = |m|^2 + 3.
    rng = np.random.default_rng(1)
    m = np.array([1.0, -1.0, 0.5])
    a = rng.normal(size=(200_000, 3))
    b = m + 2.0 * rng.normal(size=(200_000, 3))
    assert dq.frechet_distance(a, b) == pytest.approx((m**2).sum() + 3.0, abs=0.05)


def test_classifier_is_trained_once_and_cached(tmp_path, monkeypatch):
    calls = []
    train = dq.train_classifier

    def quick(**_):
        calls.append(1)
        return train(epochs=1)

    monkeypatch.setattr(dq, "train_classifier", quick)
    first = dq.load_classifier(tmp_path)
    assert (tmp_path / dq.CLASSIFIER_FILE).is_file() and len(calls) == 1
    second = dq.load_classifier(tmp_path)
    assert len(calls) == 1  # read from the cache, not retrained
    for p, q in zip(first.parameters(), second.parameters()):
        assert np.array_equal(p.detach().numpy(), q.detach().numpy())
    monkeypatch.setenv("DIFFLAB_CACHE_DIR", str(tmp_path / "c"))
    assert dq.cache_dir() == tmp_path / "c"


def test_a_damaged_cached_classifier_is_rebuilt(tmp_path, monkeypatch):
    """A truncated cache file was a traceback; now it is retrained with a warning (and written
    atomically, fsynced, so a crash leaves the old file or the new one)."""
    train = dq.train_classifier
    monkeypatch.setattr(dq, "train_classifier", lambda **_: train(epochs=1))
    dq.load_classifier(tmp_path)
    file = tmp_path / dq.CLASSIFIER_FILE
    good = file.read_bytes()
    file.write_bytes(good[: len(good) // 2])
    with pytest.warns(UserWarning, match="is damaged .*retraining it"):
        dq.load_classifier(tmp_path)
    assert file.read_bytes() == good  # the same seeded training, whole again
    assert sorted(p.name for p in tmp_path.iterdir()) == [dq.CLASSIFIER_FILE]


def test_a_cache_path_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "cache").write_text("x")
    with pytest.raises(ValueError, match="cache .* is unusable .*DIFFLAB_CACHE_DIR"):
        dq.check_classifier_cache(tmp_path / "cache")


def test_real_digits_score_near_the_floor_and_noise_far_above():
    classifier = dq.train_classifier(epochs=3)
    val, _ = dq.digits_split("val")
    real = dq.digits_quality(val.numpy(), classifier=classifier)
    noise = dq.digits_quality(
        np.random.default_rng(0).uniform(-1, 1, (180, 1, 8, 8)), classifier=classifier
    )
    fd = real["frechet_distance"]
    assert fd["ratio"] == pytest.approx(fd["value"] / fd["floor"])
    assert real["n_floor"] == 180 and sum(real["class_histogram"]) == 180
    assert fd["ratio"] < 3.0 < noise["frechet_distance"]["ratio"]
    assert min(real["class_histogram"]) > 0  # held-out digits cover every class
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        dq.digits_quality(np.zeros((4, 1, 7, 7)), classifier=classifier)
