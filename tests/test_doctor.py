"""difflab doctor: each check finds what it should and says what to change."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import torch

from conftest import tiny_args
from difflab.app.cli import main
from difflab.app.doctor import diagnose, ema_mean_age
from difflab.training import checkpoint as ckpt


def _levels(findings):
    return {f.check: f.level for f in findings}


def test_healthy_run_is_ok_and_writes_a_preview(tiny_run, capsys):
    code = main(["doctor", str(tiny_run), "--n", "100"])
    out = capsys.readouterr().out
    assert "[ok] data" in out and "[ok] schedule" in out and "[ok] checkpoint" in out
    assert "[ok] weights" in out and "raw" in out and "EMA" in out
    assert (tiny_run / "doctor" / "preview.png").stat().st_size > 0
    assert code == 0


def test_badly_scaled_data_and_short_linear_schedule_are_problems(tmp_path, capsys):
    x = np.random.default_rng(0).normal([100.0, -5.0], [10.0, 2.0], size=(300, 2))
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    out = tmp_path / "run"
    args = tiny_args("data.name=file", f"data.path={tmp_path / 'x.npy'}", "schedule.name=linear")
    assert main(["train", *args, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["doctor", str(out), "--no-preview"]) == 1
    text = capsys.readouterr().out
    assert "[problem] data" in text and "data.normalize = 'standardize'" in text
    assert "[problem] schedule" in text and "schedule.name = 'cosine'" in text


def test_nonfinite_weights_and_edited_config_are_found(tiny_run):
    latest = ckpt.checkpoint_dirs(tiny_run)[-1]
    state = safetensors.torch.load_file(str(latest / "model.safetensors"))
    first = next(iter(state))
    state[first][0] = float("nan")
    ckpt.save_checkpoint(
        tiny_run,
        step=31,
        model=_Holder(state),
        ema_state=state,
        optimizer_state={},
        state={"step": 31},
        config=json.loads((tiny_run / "config.json").read_text()),
    )
    findings = diagnose(tiny_run, preview=False)
    assert _levels(findings)["weights"] == "problem"
    assert first in next(f.message for f in findings if f.check == "weights")
    cfg = json.loads((tiny_run / "config.json").read_text())
    cfg["model"]["width"] = 48
    (tiny_run / "config.json").write_text(json.dumps(cfg))
    found = next(f for f in diagnose(tiny_run, preview=False) if f.check == "checkpoint")
    assert found.level == "problem" and "model.width: 32 -> 48" in found.message


def test_corrupt_checkpoint_is_a_problem_naming_the_fallback(tiny_run):
    latest = ckpt.checkpoint_dirs(tiny_run)[-1]
    (latest / "ema.safetensors").write_bytes(b"cut")
    found = next(f for f in diagnose(tiny_run) if f.check == "checkpoint")
    assert found.level == "problem" and "corrupt" in found.message and "--resume" in found.fix


class _Holder(torch.nn.Module):
    def __init__(self, state):
        super().__init__()
        self._state = state

    def state_dict(self, *args, **kwargs):
        return self._state


@pytest.mark.parametrize("decay", [0.9, 0.99])
def test_ema_mean_age_without_warmup_is_the_geometric_mean_age(decay):
    """For many updates the weights are geometric: mean age d / (1 - d)."""
    assert ema_mean_age(5000, decay, warmup=False) == pytest.approx(decay / (1 - decay), rel=1e-6)
    # with few updates the initial weights (age = steps) still dominate
    assert ema_mean_age(5, 0.99, warmup=False) > 4.5
