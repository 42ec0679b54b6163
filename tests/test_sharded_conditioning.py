"""Under DDP every rank runs the network on its shard of the batch: a per-example conditioning
(a mel) passed beside x and t is cut to the same shard (training/distributed.ShardedForward)."""

from __future__ import annotations

import torch

from difflab.training.distributed import DistContext, ShardedForward


class _Echo(torch.nn.Module):
    def forward(self, y, level, mel, *, scale=1.0):
        assert y.shape[0] == level.shape[0] == mel.shape[0]
        return y + level[:, None, None] + mel.mean(dim=(1, 2))[:, None, None] * scale


def test_conditioning_rows_follow_the_shard():
    y, level, mel = torch.randn(6, 1, 4), torch.rand(6), torch.randn(6, 3, 2)
    whole = _Echo()(y, level, mel, scale=2.0)
    for rank in range(3):
        ctx = DistContext(rank, 3, 0)
        out = ShardedForward(_Echo(), ctx)(y, level, mel, scale=2.0)
        part = ctx.shard(6)
        torch.testing.assert_close(out[part], whole[part])
        assert float(out[: part.start].abs().sum() + out[part.stop :].abs().sum()) == 0.0
