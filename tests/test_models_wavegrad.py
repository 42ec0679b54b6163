"""The WaveGrad network: shapes for any layout, hop = product of the factors, the paper's size
for "base", and a noise-level encoding that tells nearby levels apart."""

from __future__ import annotations

import math

import pytest
import torch

from difflab.models.wavegrad import LAYOUTS, FiLM, WaveGrad, layout_for


@pytest.mark.parametrize(
    "layout",
    [
        {},
        {"upsample_factors": (4, 4, 4), "upsample_channels": (16, 8, 8),
         "downsample_channels": (4, 8, 8), "mel_channels": 16},
        {"upsample_factors": (3,), "upsample_channels": (8,), "downsample_channels": (4,)},
    ],
)  # fmt: skip
def test_output_length_is_hop_times_frames(layout):
    torch.manual_seed(0)
    net = WaveGrad(12, **layout)
    hop = math.prod(net.layout.upsample_factors)
    assert net.hop_length == hop
    mel = torch.randn(3, 12, 5)
    out = net(torch.randn(3, 1, 5 * hop), torch.rand(3), mel)
    assert out.shape == (3, 1, 5 * hop)
    out.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_a_waveform_of_the_wrong_length_is_refused():
    net = WaveGrad(8)
    with pytest.raises(ValueError, match=r"\(B, 1, 800\) for 4 mel frames and hop 200"):
        net(torch.randn(1, 1, 799), torch.rand(1), torch.randn(1, 8, 4))


def test_base_follows_the_papers_layout():
    """About 15M parameters (Chen et al. 2020, Table 1: WaveGrad Base 15M); counted without
    allocating them."""
    with torch.device("meta"):
        net = WaveGrad(128, size="base")
    n = sum(p.numel() for p in net.parameters())
    assert 14e6 < n < 17e6
    assert net.hop_length == 300 and LAYOUTS["base"].upsample_channels == (512, 512, 256, 128, 128)


def test_tiny_is_small():
    n = sum(p.numel() for p in WaveGrad(80).parameters())
    assert n < 200_000


def test_layout_errors_name_the_key():
    with pytest.raises(ValueError, match=r"model.upsample_channels = \[8\]: give 4 channel"):
        layout_for("tiny", upsample_channels=(8,))
    with pytest.raises(ValueError, match="model.size = 'huge'"):
        layout_for("huge")


def test_the_noise_level_encoding_separates_nearby_levels():
    """Scaled by 5000, levels 1e-3 apart differ by 5 in the encoding's argument: the fastest
    sinusoid turns by almost a whole period, so the FiLM outputs differ clearly; without the
    scale (1.0) they are nearly identical."""
    torch.manual_seed(0)
    h = torch.randn(1, 16, 50)
    for scale, far_apart in ((5000.0, True), (1.0, False)):
        film = FiLM(16, 8, noise_scale=scale)
        a = film(h, torch.tensor([0.500]))[0]
        b = film(h, torch.tensor([0.501]))[0]
        rel = float((a - b).norm() / a.norm())
        assert (rel > 0.05) is far_apart, (scale, rel)
