"""Tests for difflab.models: MLP, ConditionalLinearNet, SinusoidalEmbedding.

Exact comparisons only (no numerical tolerance needed) except the embedding's closed form,
which is checked at float32 resolution (atol 1e-5 on values in [-1, 1]; arguments up to ~1e3
lose ~1e-4 relative precision in float32's sin/cos argument, hence small t values there).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from difflab.models import MLP, ConditionalLinearNet, SinusoidalEmbedding

ACTIVATIONS = ["silu", "relu", "gelu", "softplus", "tanh"]


def _inputs(B=5, D=2, T=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, generator=g), torch.randint(0, T, (B,), generator=g)


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("width", [8, 32])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mlp_shapes_and_options(depth, width, activation):
    x, t = _inputs(D=3)
    net = MLP(3, width=width, depth=depth, activation=activation, time_dim=16)
    out = net(x, t)
    assert out.shape == (5, 3)
    assert torch.isfinite(out).all()
    # hidden width: the output layer reads `width` features
    assert net.out.in_features == width
    assert sum(isinstance(m, nn.Linear) for m in net.modules()) >= depth + 1


def test_mlp_train_and_eval_agree():
    """Eval mode may share work across repeated t; the function must not change.
    atol 1e-6: same float32 ops on differently sized batches may round differently."""
    torch.manual_seed(0)
    net = MLP(2, width=16, depth=3)
    x = torch.randn(6, 2)
    t = torch.tensor([3, 3, 0, 7, 3, 0])
    train_out = net.train()(x, t)
    eval_out = net.eval()(x, t)
    torch.testing.assert_close(eval_out, train_out, rtol=0, atol=1e-6)
    same_t = torch.full((6,), 5)
    torch.testing.assert_close(net.eval()(x, same_t), net.train()(x, same_t), rtol=0, atol=1e-6)


def test_mlp_out_dim_and_float_t():
    x, t = _inputs()
    net = MLP(2, out_dim=4, width=16, depth=2)
    assert net(x, t).shape == (5, 4)
    assert net(x, t.float() / 3).shape == (5, 4)  # continuous time works for the MLP


def test_mlp_depends_on_t():
    torch.manual_seed(0)
    net = MLP(2, width=16, depth=2)
    x = torch.zeros(2, 2)
    out = net(x, torch.tensor([0, 10]))
    assert not torch.equal(out[0], out[1])


@pytest.mark.parametrize("cls, kw", [(MLP, {}), (ConditionalLinearNet, {"T": 20})])
def test_invalid_activation_lists_choices(cls, kw):
    with pytest.raises(ValueError, match=r"model\.activation") as info:
        cls(2, activation="swishy", **kw)
    for name in ACTIVATIONS:
        assert repr(name) in str(info.value)


@pytest.mark.parametrize("cls, kw", [(MLP, {}), (ConditionalLinearNet, {"T": 20})])
@pytest.mark.parametrize("bad", [{"depth": 0}, {"width": 0}])
def test_invalid_depth_width(cls, kw, bad):
    with pytest.raises(ValueError, match="depth"):
        cls(2, **bad, **kw)


@pytest.mark.parametrize("depth", [1, 3])
def test_conditional_linear_net(depth):
    x, t = _inputs(T=20)
    net = ConditionalLinearNet(2, T=20, width=16, depth=depth)
    assert net(x, t).shape == (5, 2)
    assert ConditionalLinearNet(2, 6, T=20, width=16)(x, t).shape == (5, 6)
    assert len(net.layers) == depth


def test_conditional_linear_net_needs_integer_t():
    x, t = _inputs(T=20)
    net = ConditionalLinearNet(2, T=20, width=8)
    with pytest.raises((RuntimeError, IndexError, TypeError)):
        net(x, t.float())
    with pytest.raises((RuntimeError, IndexError)):
        net(x, torch.full((5,), 20))  # out of range: t must be in {0..T-1}


@pytest.mark.parametrize("dim", [2, 8, 64])
def test_sinusoidal_embedding(dim):
    emb = SinusoidalEmbedding(dim)
    t = torch.tensor([0, 1, 7, 99])
    e = emb(t)
    assert e.shape == (4, dim) and e.dtype == torch.float32
    # t = 0: cos = 1, sin = 0
    assert torch.equal(e[0], torch.cat([torch.ones(dim // 2), torch.zeros(dim // 2)]))
    half = dim // 2
    freqs = torch.tensor(
        [math.exp(-math.log(1e4) * i / half) for i in range(half)], dtype=torch.float64
    )
    args = t.double()[:, None] * freqs
    ref = torch.cat([args.cos(), args.sin()], 1).float()
    torch.testing.assert_close(e, ref, rtol=0, atol=1e-5)
    # scale multiplies t
    torch.testing.assert_close(
        SinusoidalEmbedding(dim, scale=2.0)(t), emb(2 * t), rtol=0, atol=1e-5
    )
    assert emb.state_dict() == {}


@pytest.mark.parametrize("dim", [0, 1, 3, 7])
def test_sinusoidal_embedding_odd_dim(dim):
    with pytest.raises(ValueError, match="even"):
        SinusoidalEmbedding(dim)


@pytest.mark.parametrize(
    "net", [MLP(2, width=16, depth=3), ConditionalLinearNet(2, T=20, width=16, depth=2)]
)
def test_gradients_flow(net: nn.Module):
    x, t = _inputs(B=16, T=20, seed=1)
    x.requires_grad_(True)
    net(x, t).pow(2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in net.named_parameters():
        if isinstance(net, ConditionalLinearNet) and "embed" in name:
            # only the rows of the embedding for the drawn t get gradient
            assert p.grad[t].abs().sum() > 0, name
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
