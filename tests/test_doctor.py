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


def test_an_intact_run_passes_the_checks_and_writes_a_preview(tiny_run, capsys):
    """Everything about the tiny run is in order but its training: 30 steps sample a blob,
    which the samples check calls a problem (see the two tests at the end)."""
    code = main(["doctor", str(tiny_run), "--n", "200", "--quiet"])
    out = capsys.readouterr().out
    assert "[ok] data" in out and "[ok] schedule" in out and "[ok] checkpoint" in out
    assert "[ok] weights" in out and "raw" in out and "EMA" in out
    assert (tiny_run / "doctor" / "preview.png").stat().st_size > 0
    assert "[problem] samples" in out and code == 1


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


def test_sample_check_tells_data_from_a_blob_and_mixtures_in_between():
    """q = (d - floor) / (blob - floor) on the energy distance, a squared distance between
    laws: samples that are a mixture (1 - a) data + a blob score q = a^2 in expectation. Fresh
    data (a = 0) is ok, 80 % blob (q ~ 0.64) a warning, the blob itself (q ~ 1) a problem: the
    old check called all three ok (it allowed 20 floors; the blob sits about 6 away at n=500).
    Tolerance 0.2: fresh data's q has a spread of 0.06 at n = 1000 (docs/reliability.md)."""
    from difflab.app.config import DataConfig
    from difflab.app.datasets import build_dataset
    from difflab.app.doctor import _samples_finding
    from difflab.app.doctor_preview import judge, scales
    from difflab.data.toy import sample_toy

    n = 1000
    data = build_dataset(DataConfig(n_train=2000))
    sc = scales("swiss_roll", data, n, seed=0)
    assert sc.informative and sc.blob > 4 * sc.floor
    fit = sample_toy("swiss_roll", 20_000, seed=5)
    rng = np.random.default_rng(1)
    blob = rng.multivariate_normal(fit.mean(0), np.cov(fit.T), size=n)
    fresh = sample_toy("swiss_roll", n, seed=7)
    levels = {}
    for a in (0.0, 0.8, 1.0):
        mixed = np.where(rng.random((n, 1)) < a, blob, fresh)
        q, _ = judge("EMA", mixed, sc)
        assert q == pytest.approx(a**2, abs=0.2), (a, q)
        levels[a] = _samples_finding(None, {"raw": q, "EMA": q}, sc, "m").level
    assert levels == {0.0: "ok", 0.8: "warning", 1.0: "problem"}


def test_thirty_steps_of_training_sample_a_blob(tiny_run, capsys):
    assert main(["doctor", str(tiny_run), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "[problem] samples" in out and "no better than a blob" in out
