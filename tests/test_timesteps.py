"""Tests for difflab.timesteps.

The uniformity checks use Pearson's chi-square test at a significance level of 1e-6 (scipy's
chi2.ppf), so a correct sampler fails with probability 1e-6 for an arbitrary seed; seeds are
fixed anyway so the suite is deterministic.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from difflab.app.sections import LossConfig
from difflab.losses.ddpm import HybridObjective, SimpleObjective
from difflab.losses.vlb import VLBObjective
from difflab.schedules import NoiseSchedule
from difflab.timesteps import (
    TimestepSampler,
    TimestepSampling,
    antithetic_timesteps,
    as_timestep_sampler,
    lognormal_probabilities,
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


# --- lognormal: EDM's law of ln sigma on the discrete chain ------------------------------


def test_lognormal_masses_have_the_normal_moments_of_log_sigma():
    """On a fine ladder of levels the masses are the normal's: mean p_mean, std p_std of
    ln sigma, and 68.3 % of the mass within one std."""
    log_sigma = torch.linspace(-12.0, 12.0, 24001, dtype=torch.float64)
    p = lognormal_probabilities(log_sigma.exp(), p_mean=-1.2, p_std=1.2)
    assert p.min() >= 0 and abs(float(p.sum()) - 1.0) < 1e-12
    mean = float((p * log_sigma).sum())
    std = float((p * (log_sigma - mean) ** 2).sum().sqrt())
    assert abs(mean + 1.2) < 1e-3 and abs(std - 1.2) < 1e-3
    inside = float(p[(log_sigma - mean).abs() <= 1.2].sum())
    assert abs(inside - 0.6827) < 2e-3


def test_lognormal_on_the_cosine_schedule_puts_the_mass_near_exp_p_mean():
    schedule = NoiseSchedule.from_name("cosine", 1000)
    sigmas = schedule.sqrt_recipm1_alphas_cumprod
    p = lognormal_probabilities(sigmas, p_mean=-1.2, p_std=1.2)
    assert abs(float(p.sum()) - 1.0) < 1e-12
    # the median step's level is exp(p_mean) up to one step of the ladder
    median_t = int(torch.searchsorted(p.cumsum(0), torch.tensor(0.5, dtype=torch.float64)))
    lo, hi = sigmas[max(median_t - 1, 0)], sigmas[median_t + 1]
    assert lo <= math.exp(-1.2) <= hi
    # mass beyond sigma = exp(p_mean + 3 p_std) is the normal's upper tail, 0.135 %
    tail = float(p[sigmas.double().log() > -1.2 + 3 * 1.2].sum())
    assert abs(tail - 0.00135) < 3e-4


def test_lognormal_sampler_draws_its_law_with_unit_weights():
    schedule = NoiseSchedule.from_name("cosine", 100)
    sampler = as_timestep_sampler(
        "lognormal", 100, sigmas=schedule.sqrt_recipm1_alphas_cumprod, p_mean=-1.0, p_std=1.0
    )
    assert sampler.method is TimestepSampling.LOGNORMAL
    t, w = sampler.sample(200_000, generator=_gen(5))
    assert torch.equal(w, torch.ones_like(w)) and t.min() >= 0 and t.max() <= 99
    p = sampler.probabilities()
    counts = torch.bincount(t, minlength=100).double()
    keep = p * t.numel() >= 5  # Pearson's test on the cells with enough expected draws
    expected = p[keep] * t.numel()
    chi2 = float(((counts[keep] - expected) ** 2 / expected).sum())
    assert chi2 < stats.chi2.ppf(1 - 1e-6, df=int(keep.sum()) - 1)
    assert counts[~keep].sum() <= 5 * max(int((~keep).sum()), 1)
    again, _ = sampler.sample(50, generator=_gen(5))
    assert torch.equal(again, t[:50])  # the same generator state gives the same draw
    assert sampler.state_dict() == {}  # nothing to resume: the law comes from the config


def test_auto_is_lognormal_for_the_simple_loss_and_antithetic_for_a_bound():
    schedule = NoiseSchedule.from_name("cosine", 50)
    assert SimpleObjective(schedule, "auto").timesteps.method is TimestepSampling.LOGNORMAL
    assert VLBObjective(schedule, "auto").timesteps.method is TimestepSampling.ANTITHETIC
    hybrid = HybridObjective(schedule, "auto", variance="learned_range")
    assert hybrid.timesteps.method is TimestepSampling.ANTITHETIC
    with pytest.raises(ValueError, match="only loss.name = 'simple' may"):
        VLBObjective(schedule, "lognormal")
    with pytest.raises(ValueError, match="only loss.name = 'simple' may"):
        HybridObjective(schedule, "lognormal", variance="learned_range")
    with pytest.raises(ValueError, match="resolved"):
        TimestepSampler(50, "auto")


def test_lognormal_rejects_levels_that_do_not_increase():
    with pytest.raises(ValueError, match="strictly increasing"):
        lognormal_probabilities(torch.tensor([0.1, 0.1, 1.0]))
    with pytest.raises(ValueError, match="p_std"):
        lognormal_probabilities(torch.tensor([0.1, 1.0]), p_std=0.0)


@pytest.mark.parametrize(
    ("loss", "match"),
    [
        ({"name": "vlb", "timesteps": "lognormal"}, "not read for loss.name = 'vlb'"),
        ({"name": "simple", "timesteps": "antithetic", "p_mean": -1.0}, "loss.p_mean is read"),
        ({"name": "simple", "timesteps": "uniform", "p_std": 2.0}, "loss.p_std is read"),
    ],
)
def test_config_rejects_lognormal_keys_where_they_are_not_read(loss, match):
    with pytest.raises(ValueError, match=match):
        LossConfig(**loss)


def test_config_accepts_lognormal_keys_of_the_simple_loss():
    assert LossConfig(name="simple", timesteps="lognormal", p_mean=-1.0).p_mean == -1.0
    assert LossConfig(name="simple", timesteps="auto", p_std=1.5).p_std == 1.5
    assert LossConfig(name="edm", p_mean=-1.0).p_mean == -1.0  # EDM reads them too


def test_the_default_recipe_draws_lognormal_t():
    from difflab.app.build import build_objective, build_schedule
    from difflab.app.config import Config

    cfg = Config()
    objective = build_objective(cfg, build_schedule(cfg.schedule))
    assert cfg.loss.timesteps == "auto"
    assert objective.timesteps.method is TimestepSampling.LOGNORMAL


def test_cli_refuses_lognormal_t_for_a_bound(tmp_path, capsys):
    from conftest import tiny_args
    from difflab.app.cli import main

    out = tmp_path / "run"
    args = tiny_args("loss.name=vlb", "loss.timesteps=lognormal")
    assert main(["train", *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("difflab: error:") and err.count("\n") == 1
    assert "loss.timesteps = 'lognormal' is not read for loss.name = 'vlb'" in err
    assert not out.exists()
