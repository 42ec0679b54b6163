"""Tests for difflab.schedules: beta builders, derived tables, validation and warnings.

Tolerances: tables are computed in float64 and stored as float32, so comparisons against a
float64 reference use rtol ~1e-6 (float32 has ~6e-8 relative rounding; identities combine a
handful of rounded entries, so 1e-6 leaves an order of magnitude of slack). Comparisons
between two float64 computations of the same formula use rtol 1e-12.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from difflab.schedules import (
    NoiseSchedule,
    ScheduleWarning,
    expand_like,
    extract,
    make_betas,
    validate_betas,
)

NAMES = ["constant", "linear", "quad", "sigmoid", "cosine"]
F32_RTOL = 1e-6  # float32 storage of float64 tables, see module docstring
F64_RTOL = 1e-12  # same float64 formula evaluated two ways


def _schedule(name: str = "linear", T: int = 100, **kw) -> NoiseSchedule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleWarning)
        return NoiseSchedule.from_name(name, T, **kw)


# ---------------------------------------------------------------- builders


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("T", [1, 2, 50, 1000])
def test_builder_shape_dtype_range(name, T):
    betas = make_betas(name, T)
    assert betas.shape == (T,)
    assert betas.dtype == torch.float64
    assert torch.isfinite(betas).all()
    assert (betas > 0).all() and (betas < 1).all()
    validate_betas(betas)  # must not raise


def test_constant_is_beta_end():
    assert torch.equal(
        make_betas("constant", 7, beta_end=0.03), torch.full((7,), 0.03, dtype=torch.float64)
    )


def test_linear_endpoints_and_spacing():
    betas = make_betas("linear", 1000, beta_start=1e-4, beta_end=0.02)
    assert float(betas[0]) == pytest.approx(1e-4, rel=F64_RTOL)
    assert float(betas[-1]) == pytest.approx(0.02, rel=F64_RTOL)
    diffs = betas.diff()
    # evenly spaced: every difference equals (end - start) / (T - 1) up to float64 rounding
    torch.testing.assert_close(
        diffs, torch.full_like(diffs, (0.02 - 1e-4) / 999), rtol=1e-9, atol=0
    )


def test_quad_is_linear_in_sqrt():
    betas = make_betas("quad", 200, beta_start=1e-4, beta_end=0.02)
    root = betas.sqrt()
    assert float(root[0]) == pytest.approx(1e-2, rel=F64_RTOL)
    assert float(root[-1]) == pytest.approx(0.02**0.5, rel=F64_RTOL)
    d = root.diff()
    torch.testing.assert_close(d, torch.full_like(d, float(d.mean())), rtol=1e-9, atol=0)


def test_sigmoid_formula():
    start, end, T = 1e-5, 1e-2, 100
    betas = make_betas("sigmoid", T, beta_start=start, beta_end=end)
    u = torch.linspace(-6, 6, T, dtype=torch.float64)
    expected = 1 / (1 + torch.exp(-u)) * (end - start) + start
    torch.testing.assert_close(betas, expected, rtol=F64_RTOL, atol=0)
    assert (betas.diff() > 0).all()  # monotone increasing


@pytest.mark.parametrize("T", [10, 100, 1000])
def test_cosine_alpha_bar_and_cap(T):
    s = 0.008
    betas = make_betas("cosine", T, cosine_s=s)
    assert float(betas.max()) <= 0.999
    # the last step hits alpha_bar(T) = cos^2(pi/2) = 0 so beta_T = 1, capped at max_beta
    assert float(betas[-1]) == pytest.approx(0.999, rel=F64_RTOL)

    def f(u):
        return math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2

    alpha_bar = torch.cumprod(1 - betas, 0)
    expected = torch.tensor([f(t + 1) / f(0) for t in range(T)], dtype=torch.float64)
    uncapped = betas < 0.999
    assert uncapped.sum() >= T - 1
    # cumulative product of T float64 ratios: relative error grows like T * 1e-16
    torch.testing.assert_close(alpha_bar[uncapped], expected[uncapped], rtol=1e-10, atol=1e-15)


def test_cosine_custom_cap():
    betas = make_betas("cosine", 50, max_beta=0.5)
    assert float(betas.max()) == pytest.approx(0.5)


# ---------------------------------------------------------------- tables


@pytest.mark.parametrize("name", NAMES)
def test_tables_consistent(name):
    T = 100
    sch = _schedule(name, T)
    b = make_betas(name, T)
    a = 1 - b
    abar = torch.cumprod(a, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])

    def close(table, ref, rtol=F32_RTOL, atol=0.0):
        torch.testing.assert_close(getattr(sch, table).double(), ref, rtol=rtol, atol=atol)

    close("betas", b)
    close("alphas", a)
    close("alphas_cumprod", abar)
    close("alphas_cumprod_prev", abar_prev)
    assert float(sch.alphas_cumprod_prev[0]) == 1.0
    torch.testing.assert_close(sch.alphas_cumprod_prev[1:], sch.alphas_cumprod[:-1], rtol=0, atol=0)
    close("sqrt_alphas", a.sqrt())
    close("sqrt_alphas_cumprod", abar.sqrt())
    close("sqrt_one_minus_alphas_cumprod", (1 - abar).sqrt())
    close("sqrt_recip_alphas_cumprod", 1 / abar.sqrt())
    close("log_betas", b.log())
    post_var = b * (1 - abar_prev) / (1 - abar)
    # atol 1e-30: posterior_variance[0] is exactly 0
    close("posterior_variance", post_var, atol=1e-30)
    assert float(sch.posterior_variance[0]) == 0.0
    close("posterior_log_variance_clipped", torch.cat([post_var[1:2], post_var[1:]]).log())
    close("snr", abar / (1 - abar))


@pytest.mark.parametrize("name", NAMES)
def test_posterior_coefficient_identities(name):
    """Two identities that follow from Bayes' rule (derived in the comments).

    (1) If x_{t-1} = sqrt(abar_{t-1}) x0 exactly (no noise) then x_t = sqrt(abar_t) x0 and the
        posterior mean must return x_{t-1}:  coef1 + coef2 sqrt(abar_t) = sqrt(abar_{t-1}).
    (2) Law of total variance for x_{t-1} | x0, conditioning on x_t:
        Var(x_{t-1}|x0) = Var(E[x_{t-1}|x_t,x0]) + E[Var(x_{t-1}|x_t,x0)], i.e.
        1 - abar_{t-1} = coef2^2 (1 - abar_t) + beta_tilde_t.
    Also: sqrt_recipm1_alphas_cumprod = 1 / sqrt(snr).
    """
    sch = _schedule(name, 100)
    d = {k: getattr(sch, k).double() for k in dict(sch.named_buffers())}
    lhs1 = d["posterior_mean_coef1"] + d["posterior_mean_coef2"] * d["sqrt_alphas_cumprod"]
    torch.testing.assert_close(lhs1, d["sqrt_alphas_cumprod_prev"], rtol=1e-5, atol=1e-6)
    lhs2 = d["posterior_mean_coef2"] ** 2 * (1 - d["alphas_cumprod"]) + d["posterior_variance"]
    # atol 1e-6: at t = 0 both sides are 0 up to float32 rounding of 1 - abar_prev
    torch.testing.assert_close(lhs2, 1 - d["alphas_cumprod_prev"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        d["sqrt_recipm1_alphas_cumprod"], d["snr"].rsqrt(), rtol=1e-5, atol=0
    )
    # at t = 0 the posterior is a point mass at x0: coef1 = 1, coef2 = 0
    assert float(d["posterior_mean_coef1"][0]) == pytest.approx(1.0, abs=1e-6)
    assert float(d["posterior_mean_coef2"][0]) == pytest.approx(0.0, abs=1e-6)
    assert (d["snr"].diff() < 0).all()  # snr decreases in t


def test_buffers_float32_move_and_not_in_state_dict():
    sch = _schedule("linear", 50)
    bufs = dict(sch.named_buffers())
    assert "betas" in bufs and "alphas_cumprod" in bufs and "snr" in bufs
    assert all(v.dtype == torch.float32 for v in bufs.values())
    assert sch.state_dict() == {}
    sch64 = sch.to(torch.float64)
    assert sch64.betas.dtype == torch.float64 and sch64.alphas_cumprod.dtype == torch.float64
    sch_meta = _schedule("linear", 50).to("meta")
    assert sch_meta.betas.device.type == "meta"
    assert sch.T == 50
    assert "T=50" in repr(sch)


def test_accepts_list_and_tensor():
    s1 = NoiseSchedule([0.1, 0.2, 0.3], warn=False)
    s2 = NoiseSchedule(torch.tensor([0.1, 0.2, 0.3]), warn=False)
    assert s1.T == 3
    torch.testing.assert_close(s1.alphas_cumprod, s2.alphas_cumprod, rtol=1e-6, atol=0)


def test_extract_and_expand_like():
    table = torch.arange(10, dtype=torch.float32)
    t = torch.tensor([3, 0, 9])
    x4 = torch.zeros(3, 2, 4, 5, dtype=torch.float64)
    out = extract(table, t, x4)
    assert out.shape == (3, 1, 1, 1) and out.dtype == torch.float64
    assert out.flatten().tolist() == [3.0, 0.0, 9.0]
    assert extract(table, t, torch.zeros(3, 2)).shape == (3, 1)
    assert expand_like(torch.ones(3), x4).shape == (3, 1, 1, 1)
    assert (extract(table, t, x4) + x4).shape == x4.shape


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "betas, match",
    [
        ([0.1, float("nan"), 0.2], "NaN"),
        ([0.1, float("inf")], "NaN or inf"),
        ([0.1, 0.0, 0.2], r"t=1"),
        ([0.1, 1.0], r"t=1"),
        ([-0.1, 0.2], r"t=0"),
        ([0.5, 1.5], r"\(0, 1\)"),
        ([], "T >= 1"),
        ([[0.1, 0.2]], "1-D"),
    ],
)
def test_validate_betas_errors(betas, match):
    with pytest.raises(ValueError, match=match):
        validate_betas(torch.tensor(betas, dtype=torch.float64))
    with pytest.raises(ValueError):
        NoiseSchedule(betas)


@pytest.mark.parametrize("T", [0, -3, 2.5])
def test_bad_T(T):
    with pytest.raises(ValueError, match="T"):
        make_betas("linear", T)


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="unknown schedule 'foo'") as info:
        make_betas("foo", 10)
    for name in NAMES:
        assert repr(name) in str(info.value)


def test_linear_with_beta_end_one_is_rejected():
    with pytest.raises(ValueError, match="beta_end"):
        NoiseSchedule.from_name("linear", 10, beta_end=1.0)


# ---------------------------------------------------------------- warnings


def test_warning_for_tutorial_sigmoid():
    with pytest.warns(ScheduleWarning, match="alpha_bar_T"):
        sch = NoiseSchedule.from_name("sigmoid", 100, beta_start=1e-5, beta_end=1e-2)
    # sum of betas ~ 100 * 0.5 * 1e-2 = 0.5, so alpha_bar_T ~ exp(-0.5) ~ 0.6
    assert float(sch.alphas_cumprod[-1]) == pytest.approx(0.6, abs=0.02)


@pytest.mark.parametrize(
    "name, T, kw",
    [
        ("linear", 1000, {"beta_start": 1e-4, "beta_end": 0.02}),
        ("cosine", 1000, {}),
        ("cosine", 50, {}),
    ],
)
def test_no_warning_for_good_schedules(name, T, kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScheduleWarning)
        NoiseSchedule.from_name(name, T, **kw)


def test_warn_false_silences():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScheduleWarning)
        NoiseSchedule.from_name("sigmoid", 100, beta_start=1e-5, beta_end=1e-2, warn=False)


def test_T_equals_one():
    with pytest.warns(ScheduleWarning):
        sch = NoiseSchedule.from_name("linear", 1)  # beta = beta_start = 1e-4: x_1 is mostly signal
    assert sch.T == 1
    assert float(sch.posterior_variance[0]) == 0.0
    # with a single step the clipped log-variance falls back to log beta_1
    assert float(sch.posterior_log_variance_clipped[0]) == pytest.approx(math.log(1e-4), rel=1e-6)
    for v in dict(sch.named_buffers()).values():
        assert v.shape == (1,)
        assert torch.isfinite(v).all()
    sch_c = NoiseSchedule.from_name("cosine", 1)  # beta capped at 0.999: no warning expected
    assert float(sch_c.betas[0]) == pytest.approx(0.999, rel=1e-6)
