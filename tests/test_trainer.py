"""Trainer guards: non-finite steps are skipped and counted, too many in a row stop the run
with the last good checkpoint kept; bfloat16 autocast; signals stop between steps."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from difflab.app.build import build_model, build_objective, build_schedule
from difflab.app.cli import main
from difflab.app.config import Config
from difflab.app.config_files import config_from_dict
from difflab.app.datasets import build_dataset
from difflab.losses.base import LossOutput
from difflab.training import checkpoint as ckpt
from difflab.training.trainer import NonFiniteError, Trainer

RAW = {
    "schedule": {"T": 50},
    "model": {"width": 16, "depth": 2},
    "data": {"name": "moons", "n_train": 128},
    "train": {"steps": 10, "batch_size": 16, "warmup_steps": 0, "log_every": 5},
}


class NaNOn:
    """Wraps an objective; the calls numbered in ``bad`` return NaN losses."""

    def __init__(self, inner, bad) -> None:
        self.inner, self.bad, self.calls = inner, bad, 0
        self.schedule, self.timesteps = inner.schedule, inner.timesteps

    def __call__(self, model, x0, *, generator=None):
        out = self.inner(model, x0, generator=generator)
        self.calls += 1
        if self.bad(self.calls - 1):
            return LossOutput(out.loss * float("nan"), out.terms)
        return out


def _trainer(cfg: Config, bad, run_dir=None) -> Trainer:
    torch.manual_seed(0)
    data = build_dataset(cfg.data)
    schedule = build_schedule(cfg.schedule)
    model = build_model(cfg, data.shape)
    objective = NaNOn(build_objective(cfg, schedule), bad)
    return Trainer(model, objective, data, cfg.train, run_dir=run_dir, progress=False)


def test_nonfinite_step_is_skipped_and_leaves_the_state_alone():
    trainer = _trainer(config_from_dict(RAW), lambda i: i in (3, 4))
    for _ in range(3):
        trainer.train_step()
    params = [p.detach().clone() for p in trainer.model.parameters()]
    shadow = [v.clone() for v in trainer.ema.shadow.values()]
    trainer.train_step()
    assert not trainer.applied and trainer.step == 3 and trainer.skipped_steps == 1
    assert all(torch.equal(a, b) for a, b in zip(params, trainer.model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(shadow, trainer.ema.shadow.values()))
    assert trainer.ema.num_updates == 3
    summary = trainer.fit()
    assert summary.steps == 10 and summary.skipped_steps == 2
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_too_many_nonfinite_steps_stop_keeping_the_last_good_checkpoint(tmp_path):
    raw = {**RAW, "train": {**RAW["train"], "checkpoint_every": 2, "max_nonfinite": 3}}
    trainer = _trainer(config_from_dict(raw), lambda i: i >= 5, run_dir=tmp_path)
    with pytest.raises(NonFiniteError) as err:
        trainer.fit()
    message = str(err.value)
    assert "3 steps in a row" in message and "step_00000004" in message
    assert "\n" not in message
    assert [p.name for p in ckpt.checkpoint_dirs(tmp_path)] == ["step_00000002", "step_00000004"]
    ckpt.load_training_state(ckpt.checkpoint_dirs(tmp_path)[-1])  # intact


def test_nonfinite_stop_through_the_cli(tmp_path, monkeypatch, capsys):
    import difflab.app.train as experiment

    real = experiment.build_objective
    monkeypatch.setattr(
        experiment,
        "build_objective",
        lambda c, s, **kw: NaNOn(real(c, s, **kw), lambda i: True),
    )
    args = [a for k, v in RAW["train"].items() for a in ("--set", f"train.{k}={v}")]
    code = main(
        ["train", *args, "--set", "schedule.T=50", "--set", "data.name=moons"]
        + ["--out", str(tmp_path / "r"), "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("difflab: error: training stopped at step 0")
    assert len(err.strip().splitlines()) == 1


def test_bfloat16_autocast_runs_the_network_in_bfloat16():
    cfg = config_from_dict({**RAW, "train": {**RAW["train"], "precision": "bfloat16"}})
    trainer = _trainer(cfg, lambda i: False)
    dtypes = []
    trainer.model.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    summary = trainer.fit()
    assert set(dtypes) == {torch.bfloat16}
    assert summary.steps == 10 and all(p.dtype == torch.float32 for p in trainer.model.parameters())
    reference = _trainer(config_from_dict(RAW), lambda i: False)
    reference.fit()
    drift = max(
        float((a - b).detach().abs().max())
        for a, b in zip(trainer.model.parameters(), reference.model.parameters())
    )
    assert drift < 0.05  # 10 Adam steps of lr 2e-3 move a weight by at most 0.02 each way


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_signal_stops_between_steps_with_a_checkpoint(tmp_path, sig):
    trainer = _trainer(config_from_dict(RAW), lambda i: False, run_dir=tmp_path)
    real_step = trainer.train_step

    def step_then_signal():
        out = real_step()
        if trainer.step == 4:
            os.kill(os.getpid(), sig)
        return out

    trainer.train_step = step_then_signal
    # the handlers fit() must restore: usually SIG_DFL and default_int_handler, but a suite
    # started in the background (nohup, `&`) inherits SIGINT ignored, and that is restored too
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    summary = trainer.fit()
    assert summary.interrupted == sig.name
    # the flag is seen at the end of step 5's train_step, so the checkpoint is at step 5
    assert summary.steps == 5 and summary.checkpoint.name == "step_00000005"
    assert {s: signal.getsignal(s) for s in before} == before
    trainer.load_checkpoint(ckpt.load_training_state(summary.checkpoint))
    assert trainer.step == 5


def test_checkpoints_are_written_by_default_every_few_minutes(tmp_path, monkeypatch):
    """Default: a checkpoint each ``train.checkpoint_minutes`` (5) of training, so a long run
    killed late keeps most of its work. The trainer's clock is replaced by one that advances
    a minute each time it is read (about once a step), so checkpoints come every few steps."""
    from difflab.training import trainer as trainer_module

    assert config_from_dict({}).train.checkpoint_minutes == 5.0
    clock = iter(range(0, 10_000, 60))
    monkeypatch.setattr(trainer_module.time, "monotonic", lambda: float(next(clock)))
    trainer = _trainer(config_from_dict(RAW), lambda i: False, run_dir=tmp_path)
    trainer.fit()
    steps = [int(p.name.split("_")[1]) for p in ckpt.checkpoint_dirs(tmp_path)]
    assert steps[-1] == 10 and len(steps) >= 2 and all(s < 10 for s in steps[:-1])
    # and 0 turns it off: only the final checkpoint
    off = {**RAW, "train": {**RAW["train"], "checkpoint_minutes": 0}}
    (tmp_path / "off").mkdir()
    trainer = _trainer(config_from_dict(off), lambda i: False, run_dir=tmp_path / "off")
    trainer.fit()
    assert [p.name for p in ckpt.checkpoint_dirs(tmp_path / "off")] == ["step_00000010"]
