"""The WaveGrad network: shapes for any layout, hop = product of the factors, the paper's size
for "base", and a noise-level encoding that tells nearby levels apart."""

from __future__ import annotations

import math

import pytest
import torch

from difflab.models.embeddings import SinusoidalEmbedding
from difflab.models.wavegrad import LAYOUTS, FiLM, LogSigmaEncoding, WaveGrad, layout_for


@pytest.mark.parametrize(
    "layout",
    [
        {},
        {"upsample_factors": (4, 4, 4), "upsample_channels": (16, 8, 8),
         "downsample_channels": (4, 8, 8), "mel_channels": 16},
        {"upsample_factors": (3,), "upsample_channels": (8,), "downsample_channels": (4,)},
        {"level_encoding": "log_sigma", "time_dim": 16},
        {"upsample_factors": (3,), "upsample_channels": (8,), "downsample_channels": (5,),
         "level_encoding": "log_sigma", "time_dim": 8},
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


def _level(sigma: float) -> torch.Tensor:
    return torch.tensor([math.sqrt(1.0 - sigma * sigma)], dtype=torch.float32)


def test_log_sigma_encoding_separates_small_noise_levels_the_papers_cannot():
    """Where few-step vocoding ends (sigma 1e-3 .. 1e-2), l = sqrt(1 - sigma^2) is within 5e-5
    of 1: the paper's encoding of 5000 l at the tiny model's full-rate width (8 channels) gives
    sigma = 1e-3 and 3e-3 encodings within 2% of each other, while -ln(sigma) * 100 differs by
    110 between them and the log_sigma encoding tells them apart; at large sigma both do."""
    paper = SinusoidalEmbedding(8, scale=5000.0)
    log_sigma = LogSigmaEncoding(16)

    def ours(level):
        return log_sigma.sinusoid(log_sigma.neg_log_sigma(level))

    def rel(enc, s1, s2):
        a, b = enc(_level(s1)), enc(_level(s2))
        return float((a - b).norm() / a.norm())

    assert rel(paper, 1e-3, 3e-3) < 0.02
    assert rel(ours, 1e-3, 3e-3) > 0.3
    assert rel(ours, 3e-3, 1e-2) > 0.3
    assert rel(paper, 0.5, 0.6) > 0.3 and rel(ours, 0.5, 0.6) > 0.3


def test_log_sigma_encoding_is_finite_at_the_ends():
    """l = 1 (sigma 0, floored at 1e-4) and l = 0 (sigma 1) give finite encodings; sigma below
    the floor encodes as the floor."""
    enc = LogSigmaEncoding(8)
    out = enc(torch.tensor([1.0, 0.0, math.sqrt(1 - 1e-10)]))
    assert out.shape == (3, 32) and torch.isfinite(out).all()
    assert torch.equal(out[0], out[2])
    got = enc.neg_log_sigma(_level(1e-3))
    assert abs(float(got) - math.log(1e3)) < 0.03  # float32 level, sigma within 3%


def test_the_default_encoding_keeps_the_papers_weights():
    """Runs trained before ``model.level_encoding`` existed load: the default is the paper's
    encoding, whose state dict has no encoder weights; log_sigma adds the shared encoder and
    one projection per FiLM."""
    paper = WaveGrad(80).state_dict()
    ours = WaveGrad(80, level_encoding="log_sigma").state_dict()
    assert not any(k.startswith("encoder.") for k in paper)
    assert set(paper) <= set(ours)
    assert {k for k in ours if k.startswith("encoder.")} and "films.0.encoding.weight" in ours
    with pytest.raises(ValueError, match="model.level_encoding"):
        WaveGrad(80, level_encoding="index")
