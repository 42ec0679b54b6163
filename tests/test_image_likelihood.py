"""Bits/dim on the test split: the bound's parts add up, match a closed form, and the decoder
uses the data's levels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import tiny_args
from difflab.app.cli import main
from difflab.app.datasets import build_image_split
from difflab.app.evaluate_images import split_bits_per_dim
from difflab.app.run import load_run
from oracles import ZeroNet

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


def _zero_model_bits_per_dim(schedule, x0: torch.Tensor, levels: int) -> float:
    """The bound of the model that predicts x0_hat = 0 with the "large" variance, in closed
    form and written out here independently of the library: its p(x_{t-1} | x_t) has mean
    c2 x_t, so every KL term is deterministic,
    KL_t = (log(beta_t / beta_tilde_t) + beta_tilde_t / beta_t - 1 + c1^2 x_0^2 / beta_t) / 2,
    its decoder is N(0, beta_1) binned on ``levels`` values, and the prior term is
    (abar_T x_0^2 + 1 - abar_T - 1 - log(1 - abar_T)) / 2, all per dimension."""
    from scipy.special import log_ndtr

    x = x0.double().numpy()
    betas = schedule.betas.double().numpy()
    abar = np.cumprod(1 - betas)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    nats = np.zeros_like(x)
    for k in range(1, len(betas)):
        var_q = betas[k] * (1 - abar_prev[k]) / (1 - abar[k])
        c1 = betas[k] * np.sqrt(abar_prev[k]) / (1 - abar[k])
        nats += 0.5 * (np.log(betas[k] / var_q) + var_q / betas[k] - 1 + c1**2 * x**2 / betas[k])
    delta, std = 1.0 / (levels - 1), np.sqrt(betas[0])
    # log P(bin) = log(Phi(b) - Phi(a)), b = (x + delta) / std, a = (x - delta) / std, with the
    # edge bins open; by symmetry of Phi, evaluated on the side of 0 where it does not cancel
    a = np.where(x < -1 + delta / 2, -np.inf, (x - delta) / std)
    b = np.where(x > 1 - delta / 2, np.inf, (x + delta) / std)
    flip = a > 0
    lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
    nats += -(log_ndtr(hi) + np.log1p(-np.exp(log_ndtr(lo) - log_ndtr(hi))))
    nats += 0.5 * (abar[-1] * x**2 - abar[-1] - np.log1p(-abar[-1]))
    per_image = nats.reshape(x.shape[0], -1).sum(1) / (x[0].size * math.log(2.0))
    return float(per_image.mean())


def test_test_split_bits_per_dim_against_a_closed_form(digits_run):
    """The whole path (split, levels, units, parts) against the closed-form bound of a model
    whose bound does not depend on the x_t draws (tolerance: float32 tables, 1e-5)."""
    run = load_run(digits_run)
    assert run.data.levels == 17
    run.config = run.config.replace("model", prediction="x0", variance="large")
    run.model = ZeroNet()
    result = split_bits_per_dim(run, batch_size=16, max_images=40, seed=3)
    assert result["n_images"] == 40 and result["levels"] == 17 and result["T"] == 20
    parts = result["prior"] + result["decoder"] + result["kl"]
    assert result["bits_per_dim_bound"] == pytest.approx(parts, rel=1e-9)
    x = build_image_split(run.config.data, "test").x[:40]
    expected = _zero_model_bits_per_dim(run.schedule, x, 17)
    assert result["bits_per_dim_bound"] == pytest.approx(expected, rel=1e-5)


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
