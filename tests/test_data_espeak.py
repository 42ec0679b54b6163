"""The optional espeak-ng set: without the program a one-line error says how to install it;
with it (skipped otherwise: tests never need it) clips are made once and cached."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from difflab.data import espeak
from difflab.data.files import DataError


def test_without_espeak_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(espeak.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="apt-get install espeak-ng"):
        espeak.espeak_clips([0], seed=0, sample_rate=16000, cache=tmp_path)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_clips_are_spoken_once_and_cached(tmp_path):
    first = espeak.espeak_clips([0, 1], seed=0, sample_rate=16000, cache=tmp_path)
    files = sorted((tmp_path / "espeak").glob("*.wav"))
    assert len(files) == 2 and all(c.audio.shape[0] > 8000 for c in first)
    stamps = [f.stat().st_mtime_ns for f in files]
    again = espeak.espeak_clips([0, 1], seed=0, sample_rate=16000, cache=tmp_path)
    assert [f.stat().st_mtime_ns for f in files] == stamps
    np.testing.assert_array_equal(first[0].audio, again[0].audio)
