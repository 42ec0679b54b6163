"""Vocoding on any inference schedule: the network sees each step's noise level sqrt(alpha_bar),
respaced schedules reproduce the training process at the visited times, and an analytic
network for Gaussian audio gives the variance the linear-Gaussian chain predicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from difflab.samplers import ddim_sample
from difflab.schedules import NoiseSchedule
from difflab.vocoder import respaced_betas, vocode
from oracles import GaussianVocoder

TRAIN = NoiseSchedule.from_name("linear", 1000, beta_start=1e-6, beta_end=0.01)


def test_the_network_sees_each_steps_noise_level():
    betas = [1e-4, 1e-3, 1e-2, 5e-2, 0.2, 0.5]  # a 6-step schedule as in WaveGrad's Table 2
    net = GaussianVocoder(0.1)
    vocode(net, torch.zeros(2, 3, 4), betas, generator=torch.Generator().manual_seed(0))
    expected = np.sqrt(np.cumprod(1 - np.array(betas)))[::-1]
    np.testing.assert_allclose(net.levels, expected, rtol=1e-6)


def test_respacing_the_training_schedule():
    np.testing.assert_allclose(respaced_betas(TRAIN, 1000), TRAIN.betas.double().numpy(), rtol=1e-6)
    betas = np.array(respaced_betas(TRAIN, 6))
    assert betas.shape == (6,)
    # the K-step process reaches the training schedule's alpha_bar_T at its last step
    assert np.prod(1 - betas) == pytest.approx(float(TRAIN.alphas_cumprod[-1]), rel=1e-5)


def _predicted_variance(v: float, betas: list[float]) -> float:
    """Var of the ancestral chain's output for the Gaussian network, by the scalar recursion
    x_prev = (c_x0 k + c_xt) x_t + sqrt(beta_tilde) z with x0_hat = k x_t,
    k = l v / (l^2 v + 1 - l^2) (the posterior mean of y_0 given y_t); no noise at the end."""
    abar = np.concatenate([[1.0], np.cumprod(1 - np.array(betas, dtype=np.float64))])
    var = 1.0
    for t in range(len(betas), 0, -1):
        l2, beta = abar[t], betas[t - 1]
        k = math.sqrt(l2) * v / (l2 * v + 1 - l2)
        c_x0 = math.sqrt(abar[t - 1]) * beta / (1 - abar[t])
        c_xt = math.sqrt(1 - beta) * (1 - abar[t - 1]) / (1 - abar[t])
        tilde = beta * (1 - abar[t - 1]) / (1 - abar[t])
        var = (c_x0 * k + c_xt) ** 2 * var + (tilde if t > 1 else 0.0)
    return var


@pytest.mark.parametrize("betas", [np.linspace(1e-4, 0.2, 100).tolist(), respaced_betas(TRAIN, 25)])
def test_gaussian_audio_gets_the_variance_the_chain_predicts(betas):
    """64 x 800 samples: the variance estimate's standard error is var * sqrt(2 / 51200) =
    0.6 % of it: tolerance 3 %. On the 100-step schedule to near-pure noise the prediction is
    within 40 % of the data's v, below it (the posterior variance leaves out the spread of
    x0_hat, c_x0^2 Var[x0 | x_t], at every step)."""
    v = 0.04
    net = GaussianVocoder(v, hop=10)
    out = vocode(net, torch.zeros(64, 3, 80), betas, clip=False,
                 generator=torch.Generator().manual_seed(0)).x  # fmt: skip
    assert out.shape == (64, 1, 800)
    predicted = _predicted_variance(v, betas)
    assert float(out.var()) == pytest.approx(predicted, rel=0.03)
    if len(betas) == 100:
        assert 0.6 * v < predicted < v


def test_another_sampler_runs_on_the_same_schedule():
    """DDIM (eta = 0) asks at the same levels, and its output is clipped to the audio range."""
    betas = [1e-3, 1e-2, 0.1, 0.5]
    net = GaussianVocoder(4.0)  # loud: unclipped x0_hat would leave [-1, 1]
    out = vocode(net, torch.zeros(2, 3, 8), betas, sampler=ddim_sample, eta=0.0,
                 generator=torch.Generator().manual_seed(0)).x  # fmt: skip
    np.testing.assert_allclose(net.levels, np.sqrt(np.cumprod(1 - np.array(betas)))[::-1])
    assert float(out.abs().max()) <= 1.0
