"""Bits/dim on the test split: the bound's parts add up, agree with full_bound, and the decoder
uses the data's levels."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import tiny_args
from difflab.builders import build_image_split
from difflab.cli import main
from difflab.image_likelihood import split_bits_per_dim
from difflab.losses.vlb import full_bound
from difflab.run import load_run

DIGITS_TINY = (
    "data.name=digits",
    "model.name=unet",
    "model.channels=8",
    "train.steps=20",
    "schedule.T=20",
)


@pytest.fixture
def digits_run(tmp_path):
    out = tmp_path / "digits"
    assert main(["train", *tiny_args(*DIGITS_TINY), "--out", str(out), "--quiet"]) == 0
    return out


def test_test_split_bits_per_dim_is_the_full_bound(digits_run):
    run = load_run(digits_run)
    assert run.data.levels == 17
    result = split_bits_per_dim(run, batch_size=16, max_images=40, seed=3)
    assert result["n_images"] == 40 and result["levels"] == 17 and result["T"] == 20
    parts = result["prior"] + result["decoder"] + result["kl"]
    assert result["bits_per_dim_bound"] == pytest.approx(parts, rel=1e-9)
    assert result["bits_per_dim_bound"] > 0 and result["stderr"] > 0
    # Same numbers from full_bound directly (batching does not matter: x_t draws differ, so
    # compare against the same batching and seed).
    x = build_image_split(run.config.data, "test").x[:40]
    g = torch.Generator().manual_seed(3)
    totals = [
        full_bound(
            run.model,
            run.schedule,
            b,
            levels=17,
            generator=g,
            prediction=run.config.model.prediction,
            variance=run.config.model.variance,
        ).total
        for b in x.split(16)
    ]
    expected = torch.cat(totals).mean() / (64 * math.log(2.0))
    assert result["bits_per_dim_bound"] == pytest.approx(float(expected), rel=1e-6)


def test_decoder_uses_the_data_levels(digits_run):
    """The discretized decoder's bins widen with fewer levels, so its NLL can only fall."""
    run = load_run(digits_run)
    with_17 = split_bits_per_dim(run, max_images=20)
    run.data.levels = 256
    with_256 = split_bits_per_dim(run, max_images=20)
    assert with_17["decoder"] < with_256["decoder"]
    assert with_17["kl"] == pytest.approx(with_256["kl"], rel=1e-6)  # same seed, same x_t


def test_vector_runs_are_refused(tiny_run):
    with pytest.raises(ValueError, match="needs image data"):
        split_bits_per_dim(load_run(tiny_run))
