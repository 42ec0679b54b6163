"""Checkpoints and run directories: round trips, pruning, corrupt files, mismatched models."""

from __future__ import annotations

import json

import pytest
import torch

from difflab.app.run import load_run
from difflab.models import MLP
from difflab.training import checkpoint as ckpt


def _save(tmp_path, model, step, keep=3):
    return ckpt.save_checkpoint(
        tmp_path,
        step=step,
        model=model,
        ema_state=model.state_dict(),
        optimizer_state={"state": {}, "param_groups": []},
        state={"step": step, "generator": torch.Generator().manual_seed(step).get_state()},
        keep=keep,
    )


def test_round_trip_and_pruning(tmp_path):
    torch.manual_seed(0)
    model = MLP(2, 2, width=16, depth=2)
    for step in (1, 2, 3, 4):
        _save(tmp_path, model, step, keep=2)
    found = ckpt.checkpoint_dirs(tmp_path)
    assert [p.name for p in found] == ["step_00000003", "step_00000004"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
    weights = ckpt.load_weights(found[-1] / "model.safetensors")
    other = MLP(2, 2, width=16, depth=2)
    ckpt.load_model_weights(other, weights, found[-1])
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    state = ckpt.load_torch(found[-1] / "state.pt")
    assert state["step"] == 4
    assert torch.equal(state["generator"], torch.Generator().manual_seed(4).get_state())


def test_incomplete_checkpoint_is_ignored(tmp_path):
    model = MLP(2, 2, width=8, depth=1)
    _save(tmp_path, model, 1)
    half = tmp_path / "checkpoints" / "step_00000002"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")
    assert [p.name for p in ckpt.checkpoint_dirs(tmp_path)] == ["step_00000001"]


def test_corrupt_files_give_checkpoint_errors(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.load_weights(bad)
    pt = tmp_path / "state.pt"
    pt.write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.load_torch(pt)


def test_another_model_says_what_differs(tmp_path):
    model = MLP(2, 2, width=16, depth=2)
    other = MLP(2, 2, width=32, depth=2)
    with pytest.raises(ckpt.CheckpointError, match="shapes differ") as err:
        ckpt.load_model_weights(other, model.state_dict(), tmp_path / "x")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("model", "width", 48),  # the weights would not even fit
        ("schedule", "T", 80),  # these would load and sample garbage without a word
        ("schedule", "name", "linear"),
        ("model", "prediction", "eps"),
    ],
)
def test_load_run_detects_edited_config(tiny_run, section, key, value):
    """config.json edited by hand after training: the checkpoint's own record of its training
    config (meta.json) disagrees, and every command that loads the run says so."""
    cfg = json.loads((tiny_run / "config.json").read_text())
    cfg[section][key] = value
    (tiny_run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ckpt.CheckpointError, match=f"no longer matches.*{section}.{key}"):
        load_run(tiny_run)


def test_sampling_settings_may_change_after_training(tiny_run):
    cfg = json.loads((tiny_run / "config.json").read_text())
    cfg["sample"]["sampler"], cfg["evaluate"]["n"] = "ddim", 50
    cfg["data"]["path"] = None  # where the data lives may change; its SHA-256 is checked
    (tiny_run / "config.json").write_text(json.dumps(cfg))
    assert load_run(tiny_run).config.sample.sampler == "ddim"


def test_weights_of_another_model_without_a_recorded_config(tiny_run):
    """A checkpoint that records no config (older or hand-made) still fails on the shapes."""
    latest = ckpt.checkpoint_dirs(tiny_run)[-1]
    meta = json.loads((latest / "meta.json").read_text())
    (latest / "meta.json").write_text(json.dumps({**meta, "config": None}))
    cfg = json.loads((tiny_run / "config.json").read_text())
    cfg["model"]["width"] = 48
    (tiny_run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ckpt.CheckpointError, match="another model"):
        load_run(tiny_run)


def test_load_run_uses_ema_by_default(tiny_run):
    ema = load_run(tiny_run)
    raw = load_run(tiny_run, use_ema=False)
    assert ema.step == raw.step == 30
    assert any(
        not torch.equal(a, b) for a, b in zip(ema.model.parameters(), raw.model.parameters())
    )


def test_atomic_write_leaves_no_temp_files(tmp_path):
    ckpt.atomic_write_json(tmp_path / "a.json", {"x": 1})
    ckpt.atomic_write_json(tmp_path / "a.json", {"x": 2})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
