"""Tests for difflab.timesteps.

The uniformity checks use Pearson's chi-square test at a significance level of 1e-6 (scipy's
chi2.ppf), so a correct sampler fails with probability 1e-6 for an arbitrary seed; seeds are
fixed anyway so the suite is deterministic.
"""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from difflab.timesteps import (
    TimestepSampler,
    TimestepSampling,
    antithetic_timesteps,
    uniform_timesteps,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _chi2_uniform_ok(t: torch.Tensor, T: int) -> bool:
    counts = torch.bincount(t, minlength=T).double()
    expected = t.numel() / T
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    return chi2 < stats.chi2.ppf(1 - 1e-6, df=T - 1)


@pytest.mark.parametrize("draw", [uniform_timesteps, antithetic_timesteps])
@pytest.mark.parametrize("B", [1, 2, 7, 64])
def test_range_dtype_shape(draw, B):
    T = 10
    t = draw(B, T, generator=_gen(B))
    assert t.shape == (B,) and t.dtype == torch.int64
    assert t.min() >= 0 and t.max() <= T - 1


@pytest.mark.parametrize("B", [2, 7, 8, 33])
def test_antithetic_pairs(B):
    T = 100
    t = antithetic_timesteps(B, T, generator=_gen(1))
    half = (B + 1) // 2
    for i in range(B - half):
        assert int(t[i] + t[half + i]) == T - 1


@pytest.mark.parametrize("draw", [uniform_timesteps, antithetic_timesteps])
def test_uniformity_chi_square(draw):
    T = 20
    t = draw(50_001, T, generator=_gen(2))  # odd size on purpose
    assert t.numel() == 50_001
    assert _chi2_uniform_ok(t, T)
    assert _chi2_uniform_ok(t[: t.numel() // 2], T)  # the uniform half alone too


@pytest.mark.parametrize("draw", [uniform_timesteps, antithetic_timesteps])
def test_generator_reproducibility(draw):
    a = draw(32, 1000, generator=_gen(5))
    b = draw(32, 1000, generator=_gen(5))
    c = draw(32, 1000, generator=_gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_T_one():
    assert (uniform_timesteps(5, 1, generator=_gen()) == 0).all()
    assert (antithetic_timesteps(5, 1, generator=_gen()) == 0).all()


@pytest.mark.parametrize("method", ["uniform", "antithetic", TimestepSampling.ANTITHETIC])
def test_sampler(method):
    s = TimestepSampler(50, method)
    t, w = s.sample(9, generator=_gen(3))
    assert t.shape == (9,) and w.shape == (9,)
    assert torch.equal(w, torch.ones(9))
    t2, _ = TimestepSampler(50, method).sample(9, generator=_gen(3))
    assert torch.equal(t, t2)
    if TimestepSampling(method) is TimestepSampling.ANTITHETIC:
        assert torch.equal(t[:4] + t[5:], torch.full((4,), 49))
    s.update(t, torch.rand(9))  # no-op, must not raise
    assert s.state_dict() == {}
    s.load_state_dict({})


def test_sampler_unknown_method_lists_choices():
    with pytest.raises(ValueError, match="'uniform', 'antithetic'"):
        TimestepSampler(10, "importance-ish")


def test_importance_warm_up_is_uniform_then_follows_the_loss_rms():
    T, history = 4, 3
    sampler = TimestepSampler(T, "importance", history=history, uniform_floor=0.01)
    assert sampler.method is TimestepSampling.IMPORTANCE
    rms = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    for k in range(history):
        assert not sampler.warmed_up
        t, w = sampler.sample(16, generator=_gen(k))
        assert torch.equal(w, torch.ones(16))
        # every t sees losses of +-rms, so E[L^2] = rms^2
        sampler.update(torch.arange(T), rms * (-1.0) ** k)
    assert sampler.warmed_up
    p = sampler.probabilities()
    expected = 0.99 * rms / rms.sum() + 0.01 / T
    torch.testing.assert_close(p, expected)
    t, w = sampler.sample(200_000, generator=_gen(9))
    freq = torch.bincount(t, minlength=T).double() / t.numel()
    torch.testing.assert_close(freq, p, atol=4e-3, rtol=0)  # 200k draws: std <= 1.1e-3
    torch.testing.assert_close(w.double(), 1.0 / (T * p[t]))


def test_importance_weights_make_any_f_unbiased_and_flatten_the_loss_rms():
    """The weights drawn with t make E_q[w(t) f(t)] the uniform mean of f for any f.

    History: two losses a_t and -b_t per t, so rms_t = sqrt((a_t^2 + b_t^2) / 2), and the law
    should be q_t = (1 - floor) rms_t / sum(rms) + floor / T. Checked: the draws' frequencies
    against q (4 binomial standard errors sqrt(q (1 - q) / n) each); w is a function of t and
    sum_t q_t w(t) f(t) = mean(f) for arbitrary f, including indicators (then q_t w(t) = 1 / T:
    rtol 1e-6, the weights being float32, 6e-8 relative); the Monte Carlo mean of w(t_i) f(t_i)
    over the draws is mean(f) within 4 standard errors; and for f = rms the weighted values are
    flat: w(t) rms_t - m = m floor (rms_t - m) / ((1 - floor) rms_t + floor m), m = mean(rms),
    so |w(t) rms_t / m - 1| <= floor / (1 - floor) |rms_t - m| / rms_t, which is the point of
    the method (Nichol & Dhariwal 2021, Sec. 3.3): near-zero variance for the loss it tracks.
    """
    T, floor, n = 20, 0.05, 200_000
    sampler = TimestepSampler(T, "importance", history=2, uniform_floor=floor)
    g = _gen(0)
    a = 0.2 + 3.0 * torch.rand(T, generator=g, dtype=torch.float64)
    b = 0.2 + 3.0 * torch.rand(T, generator=g, dtype=torch.float64)
    sampler.update(torch.arange(T), a)
    sampler.update(torch.arange(T), -b)
    rms = ((a**2 + b**2) / 2).sqrt()
    q = (1 - floor) * rms / rms.sum() + floor / T

    t, w = sampler.sample(n, generator=_gen(1))
    w = w.double()
    freq = torch.bincount(t, minlength=T).double() / n
    assert ((freq - q).abs() <= 4 * (q * (1 - q) / n).sqrt()).all()
    w_of_t = torch.full((T,), float("nan"), dtype=torch.float64)
    w_of_t[t] = w
    assert torch.equal(w, w_of_t[t])  # every draw of the same t has the same weight

    fs = [
        torch.randn(T, generator=g, dtype=torch.float64) * 3 + 1,
        torch.arange(T, dtype=torch.float64) ** 2,
        *torch.eye(T, dtype=torch.float64)[[0, 7, T - 1]],  # indicators
    ]
    for f in fs:
        torch.testing.assert_close((q * w_of_t * f).sum(), f.mean(), rtol=1e-6, atol=1e-12)
        values = w * f[t]
        se = float(values.std()) / n**0.5
        assert abs(float(values.mean() - f.mean())) < 4 * se

    m = rms.mean()
    bound = floor / (1 - floor) * (rms - m).abs() / rms
    assert ((w_of_t * rms / m - 1).abs() <= bound + 1e-6).all()
    assert float((w_of_t * rms / m - 1).abs().max()) < 0.1 * float((rms / m - 1).abs().max())


def test_importance_history_keeps_newest_and_round_trips():
    sampler = TimestepSampler(3, "importance", history=2)
    sampler.update(torch.tensor([0, 0, 0, 1]), torch.tensor([1.0, 2.0, 3.0, 7.0]))
    assert sorted(sampler.losses[0].tolist()) == [2.0, 3.0] and sampler.counts.tolist() == [3, 1, 0]
    sampler.update(torch.tensor([0]), torch.tensor([4.0]))
    assert sorted(sampler.losses[0].tolist()) == [3.0, 4.0]
    other = TimestepSampler(3, "importance", history=2)
    other.load_state_dict(sampler.state_dict())
    assert torch.equal(other.losses, sampler.losses) and torch.equal(other.counts, sampler.counts)
    with pytest.raises(ValueError, match="does not fit"):
        TimestepSampler(4, "importance", history=2).load_state_dict(sampler.state_dict())
    uniform = TimestepSampler(3, "uniform")
    uniform.update(torch.tensor([0]), torch.tensor([1.0]))
    assert int(uniform.counts.sum()) == 0
