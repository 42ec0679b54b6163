"""configs/digits_likelihood.toml (issue 16) trains through the CLI and its bound evaluates: a
few steps of the shipped recipe, so a renamed key or an invalid combination fails here."""

from __future__ import annotations

import math
from pathlib import Path

from difflab.app.cli import main
from difflab.app.config_files import load_config
from difflab.app.evaluate_images import split_bits_per_dim
from difflab.app.run import load_run

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "digits_likelihood.toml"


def test_digits_likelihood_config_trains_and_its_bound_evaluates(tmp_path):
    cfg = load_config(CONFIG)
    assert cfg.data.name == "digits" and cfg.model.variance in ("learned_range", "learned")
    out = tmp_path / "run"
    fast = ["--set", "train.steps=3", "--set", "train.batch_size=16", "--set", "train.log_every=1"]
    assert main(["train", str(CONFIG), *fast, "--out", str(out), "--quiet"]) == 0
    run = load_run(out)
    assert run.step == 3 and run.config.schedule.T == cfg.schedule.T
    # 2 validation images through all T terms of the bound with the learned variance; an
    # untrained network's bound is large but finite and, as an NLL of 17-level data, positive.
    bpd = split_bits_per_dim(run, split="val", max_images=2)
    parts = bpd["prior"] + bpd["decoder"] + bpd["kl"]
    assert math.isfinite(bpd["bits_per_dim_bound"]) and bpd["bits_per_dim_bound"] > 0
    assert math.isclose(parts, bpd["bits_per_dim_bound"], rel_tol=1e-6)
