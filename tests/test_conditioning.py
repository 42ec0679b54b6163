"""Class conditioning in training: label dropout at its rate, labels reaching the network row by
row (also through the multi-process ShardedForward), class-conditional MLP and U-Net, exact
resume of a conditional run, and 2 processes matching 1."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import safetensors.torch
import torch

from conftest import SRC
from difflab.app.build import build_model, build_objective, build_schedule
from difflab.app.cli import main
from difflab.app.config_files import config_from_dict
from difflab.app.datasets import build_dataset
from difflab.conditioning import WithLabels, drop_labels, null_labels, num_classes_of
from difflab.models import MLP
from difflab.models.unet import UNet
from difflab.training import checkpoint as ckpt
from difflab.training.distributed import DistContext, ShardedForward
from difflab.training.trainer import Trainer

RAW = {
    "schedule": {"T": 50},
    "model": {"width": 16, "depth": 2, "class_conditional": True},
    "data": {"name": "8gaussians", "n_train": 512},
    "train": {"steps": 40, "batch_size": 256, "warmup_steps": 0, "log_every": 10},
}


def test_drop_labels_keeps_the_null_class_at_its_rate():
    """200000 labels: the null fraction is binomial, se = sqrt(p (1 - p) / n) ~ 7e-4 at p = 0.1;
    5 se allowed. Kept labels are unchanged; p = 0 draws nothing from the generator."""
    n, k = 200_000, 8
    labels = torch.arange(n) % k
    for p in (0.1, 0.2):
        out = drop_labels(labels, p, k, generator=torch.Generator().manual_seed(0))
        null = out == k
        assert abs(null.float().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
        assert torch.equal(out[~null], labels[~null])
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert drop_labels(labels, 0.0, k, generator=g) is labels
    assert torch.equal(g.get_state(), state)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        drop_labels(labels, 1.0, k)


class Recording(torch.nn.Module):
    """A class-conditional MLP that records the labels of every call."""

    def __init__(self, net: MLP) -> None:
        super().__init__()
        self.net, self.num_classes, self.seen = net, net.num_classes, []

    def forward(self, x, t, labels=None):
        self.seen.append(labels.clone())
        return self.net(x, t, labels)


def _trainer(raw, *, wrap=None, run_dir=None) -> Trainer:
    cfg = config_from_dict(raw)
    torch.manual_seed(0)
    data = build_dataset(cfg.data, labels=True)
    model = build_model(cfg, data.shape, num_classes=data.num_classes)
    model = wrap(model) if wrap else model
    objective = build_objective(cfg, build_schedule(cfg.schedule))
    return Trainer(model, objective, data, cfg.train, run_dir=run_dir, progress=False)


@pytest.mark.parametrize("p", [0.0, 0.2])
def test_trainer_feeds_each_rows_label_with_dropout_at_the_set_rate(p):
    """40 steps of 256 rows: the null fraction is within 5 binomial se of p (se 0.0035 at 0.2);
    every other label is the label of the batch's row (the trainer's indices pick them)."""
    raw = {**RAW, "train": {**RAW["train"], "label_dropout": p}}
    trainer = _trainer(raw, wrap=Recording)
    trainer.fit()
    seen = torch.cat(trainer.model.seen)
    null = seen == 8
    assert seen.shape == (40 * 256,)
    assert abs(null.float().mean().item() - p) < 5 * math.sqrt(max(p * (1 - p), 1e-12) / len(seen))
    # replay the generator: the same batch indices and drops, so labels match row by row
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 512, (256,), generator=g)
    first = trainer.labels[idx]
    kept = ~null[:256]
    assert torch.equal(trainer.model.seen[0][kept], first[kept])


def test_class_conditional_networks_use_the_label_and_a_null_class():
    torch.manual_seed(0)
    x, t = torch.randn(6, 2), torch.full((6,), 7)
    mlp = MLP(2, 2, width=16, depth=2, num_classes=3)
    images, ti = torch.randn(6, 1, 8, 8), torch.full((6,), 7)
    unet = UNet(1, 1, channels=8, channel_mult=(1, 2), num_classes=3)
    for param in unet.parameters():  # its zero-initialised convolutions would hide the labels
        torch.nn.init.normal_(param, std=0.2)
    for net, inp, time in ((mlp, x, t), (unet, images, ti)):
        a = net(inp, time, torch.zeros(6, dtype=torch.long))
        b = net(inp, time, torch.ones(6, dtype=torch.long))
        assert not torch.allclose(a, b)  # the label changes the output
        torch.testing.assert_close(net(inp, time), net(inp, time, null_labels(6, 3)))
        shared = torch.tensor([2]).expand(6)  # stride 0, looked up once
        torch.testing.assert_close(net(inp, time, shared), net(inp, time, torch.full((6,), 2)))
        with pytest.raises(ValueError, match="int64 of shape"):
            net(inp, time, torch.zeros(5, dtype=torch.long))
        assert num_classes_of(net) == 3
    with pytest.raises(ValueError, match="not class-conditional"):
        MLP(2, 2, width=8, depth=1)(x, t, torch.zeros(6, dtype=torch.long))
    assert num_classes_of(MLP(2, 2, width=8, depth=1)) is None


def test_with_labels_and_sharded_forward_keep_labels_on_their_rows():
    torch.manual_seed(0)
    net = MLP(2, 2, width=16, depth=2, num_classes=4)
    x, t, labels = torch.randn(8, 2), torch.randint(0, 50, (8,)), torch.randint(0, 5, (8,))
    full = net(x, t, labels)
    for rank in range(2):
        ctx = DistContext(rank=rank, world_size=2)
        out = WithLabels(ShardedForward(net, ctx), labels)(x, t)
        mine = ctx.shard(8)
        torch.testing.assert_close(out[mine], full[mine], rtol=0, atol=1e-6)
    assert num_classes_of(ShardedForward(net, DistContext())) == 4
    with pytest.raises(ValueError, match="batch has 8 labels"):
        WithLabels(net, labels)(x[:4], t[:4])


def test_conditional_resume_is_bitwise_exact(tmp_path):
    """20 steps, a checkpoint, 20 more from it == 40 straight (label dropout draws included)."""
    raw = {**RAW, "train": {**RAW["train"], "label_dropout": 0.3, "checkpoint_every": 20}}
    straight = _trainer(raw)
    straight.fit()
    first = _trainer(raw, run_dir=tmp_path)  # the same LR schedule, stopped at step 20
    while first.step < 20:
        first.train_step()
    first.save()
    resumed = _trainer(raw, run_dir=tmp_path)
    resumed.load_checkpoint(ckpt.latest_good_checkpoint(tmp_path))
    resumed.fit()
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_two_processes_match_one_process_with_labels(tmp_path):
    """torchrun with 2 gloo processes vs 1 process, class-conditional with label dropout: the
    same labels, drops and noise reach the same rows; weights differ by float summation order
    only (< 1e-5, as in tests/test_distributed.py)."""
    run = [
        "train.steps=20", "train.batch_size=64", "schedule.T=50", "model.width=16",
        "model.depth=2", "data.name=8gaussians", "data.n_train=500",
        "model.class_conditional=true", "train.label_dropout=0.3",
    ]  # fmt: skip
    args = [a for item in run for a in ("--set", item)]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", *args, "--out", str(one), "--quiet"]) == 0
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "difflab", "train", *args, "--out", str(two), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = safetensors.torch.load_file(str(ckpt.checkpoint_dirs(one)[-1] / "model.safetensors"))
    b = safetensors.torch.load_file(str(ckpt.checkpoint_dirs(two)[-1] / "model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
