"""The U-Net: shapes at the sizes it must support, time conditioning, and config wiring."""

from __future__ import annotations

import pytest
import torch

from difflab.app.build import build_model
from difflab.app.config import Config, DataConfig, ModelConfig, ScheduleConfig
from difflab.models.unet import UNet, norm_groups


@pytest.mark.parametrize(
    "size, channels, mult, attention",
    [
        (8, 1, (1, 2), True),
        (28, 1, (1, 2, 2), True),
        (32, 3, (1, 2, 2), False),
        (7, 1, (1, 2), True),
    ],
)
def test_shapes_at_supported_sizes(size, channels, mult, attention):
    net = UNet(channels, 2 * channels, channels=8, channel_mult=mult, attention=attention)
    x = torch.randn(3, channels, size, size)
    out = net(x, torch.tensor([0, 5, 99]))
    assert out.shape == (3, 2 * channels, size, size)


def test_output_starts_at_zero_then_depends_on_x_and_t():
    torch.manual_seed(0)
    net = UNet(1, channels=8, channel_mult=(1, 2), attention=True)
    x = torch.randn(4, 1, 8, 8)
    t = torch.tensor([1, 1, 50, 50])
    assert torch.count_nonzero(net(x, t)) == 0  # zero-initialised last layer
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(3):  # a few steps towards a target that depends on x
        loss = (net(x, t) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        a = net(x, t)
        assert not torch.allclose(a, net(x, torch.tensor([1, 1, 50, 50]) + 40))  # time matters
        assert not torch.allclose(a[0], a[1])  # the input matters
    assert all(p.grad is not None for p in net.parameters())


def test_norm_groups_divide_channels():
    for c in (1, 3, 8, 32, 48, 64, 96, 128):
        g = norm_groups(c)
        assert c % g == 0 and (g == 1 or c // g >= 4)


def test_build_model_from_config_with_learned_variance():
    model = ModelConfig(name="unet", channels=8, channel_mult=(1, 2), variance="learned_range")
    cfg = Config(data=DataConfig(name="digits"), model=model, schedule=ScheduleConfig(T=100))
    net = build_model(cfg, (3, 8, 8))
    assert net(torch.randn(2, 3, 8, 8), torch.tensor([0, 99])).shape == (2, 6, 8, 8)
    with pytest.raises(ValueError, match="takes images"):
        build_model(cfg, (2,))
    # the config itself refuses a vector network on images, and the other way round
    with pytest.raises(ValueError, match="model.name = 'mlp' takes vector data"):
        Config(data=DataConfig(name="digits"))
    with pytest.raises(ValueError, match="model.name = 'unet' takes image data"):
        Config(model=model)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"channel_mult": ()}, "model.channel_mult"),
        ({"channel_mult": (1, 0)}, "model.channel_mult"),
        ({"channels": 0}, "model.channels"),
        ({"num_res_blocks": 0}, "model.num_res_blocks"),
        ({"dropout": 1.0}, "model.dropout"),
    ],
)
def test_unet_config_errors(values, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(name="unet", **values)
