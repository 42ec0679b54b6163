"""Resource limits: memory estimates from the registry's model row and the data shape, made on the
meta device and checked before anything is allocated; the thread count."""

from __future__ import annotations

import os
import resource

import pytest
import torch

from conftest import SRC, tiny_args
from difflab.app import registry, resources
from difflab.app.build import build_model, count_parameters
from difflab.app.cli import main
from difflab.app.config_files import load_config
from difflab.training import checkpoint as ckpt

#: A config per registry model and the shape of one example it takes.
MODEL_CASES = {
    "mlp": ([], (2,)),
    "conditional_linear": (["model.name=conditional_linear"], (2,)),
    "score_mlp": (["loss.name=dsm"], (2,)),
    "score_mlp-ncsn": (["loss.name=ncsn"], (2,)),
    "unet": (["data.name=digits", "model.channels=8"], (1, 8, 8)),
    # a 4-frame segment with its mel context (n_fft / 2 before, n_fft / 2 - hop after)
    "wavegrad": (
        ["data.name=toy_speech", "model.name=wavegrad", "loss.name=wavegrad",
         "data.segment_frames=4"],
        (1, 512 + 4 * 200 + 312),
    ),
}  # fmt: skip


def test_every_registry_model_has_a_case():
    assert set(registry.MODELS) <= {name.split("-")[0] for name in MODEL_CASES}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_meta_device_estimate_sees_what_a_real_forward_pass_produces(case):
    """The activations counted on the meta device (no storage) equal those of a real forward
    pass on the CPU, counted by the same hooks: the estimate is not a fallback of zero."""
    overrides, shape = MODEL_CASES[case]
    cfg = load_config(None, overrides)
    meta = resources.activation_floats(cfg, shape)
    net = build_model(cfg, shape)
    seen = [0]

    def count(module, inputs, output):
        seen[0] += output.numel()

    hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    x = torch.zeros(1, *shape)
    if registry.MODELS[cfg.model.name].kind == registry.DIFFUSION:
        net(x, torch.zeros(1, dtype=torch.long))
    elif registry.MODELS[cfg.model.name].kind == registry.VOCODER:
        net(*resources.vocoder_inputs(cfg))
    elif cfg.loss.name == "ncsn":
        net(x, torch.ones(1))
    else:
        net(x)
    for hook in hooks:
        hook.remove()
    assert meta == seen[0] > 0
    assert count_parameters(cfg, shape) == sum(p.numel() for p in net.parameters())


def test_the_estimate_adds_up_its_parts(monkeypatch):
    cfg = load_config(None, ["model.width=64", "train.batch_size=100", "data.n_train=1000"])
    parts = resources.training_bytes(cfg, (2,), 1000)
    params = count_parameters(cfg, (2,))
    acts = resources.activation_floats(cfg, (2,))
    assert parts["params"] == params * 20  # weights, gradients, two Adam moments, EMA (float32)
    assert parts["activations"] == 100 * acts * 8
    assert parts["data"] == 1000 * 2 * 4 * 2
    assert parts["total"] == pytest.approx(parts["params"] + parts["activations"] + parts["data"])
    monkeypatch.setattr(resources, "available_bytes", lambda device="cpu": parts["total"] / 2)
    with pytest.raises(ValueError, match=r"needs about .* GiB of memory but .* GiB are available"):
        resources.check_training_fits(cfg, (2,), 1000, "cpu")


def _limit_address_space() -> None:  # in the child: 6 GiB of address space
    resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["model.width=100000"], "with 5e+10 parameters"),
        (["data.name=image_file", "data.path=IMAGES", "data.image_size=100000"], "data.image_size"),
    ],
)
def test_what_cannot_fit_is_refused_before_it_is_allocated(overrides, needle, tmp_path):
    """Under a 6 GiB address-space limit, allocating first would end in a MemoryError
    traceback (the issue: memory grew without bound, or 5e10 parameters passed --dry-run)."""
    import subprocess
    import sys

    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((20, 8, 8), dtype=np.uint8))
    args = [o.replace("IMAGES", str(tmp_path / "x.npy")) for o in overrides]
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("DIFFLAB_DEBUG", None)
    cmd = [sys.executable, "-m", "difflab", "train", "--dry-run"]
    cmd += [a for o in args for a in ("--set", o)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, preexec_fn=_limit_address_space, timeout=300
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("difflab: error: ") and needle in proc.stderr
    assert "needs about" in proc.stderr and proc.stderr.count("\n") == 1


def test_dry_run_reports_the_estimate(capsys):
    assert main(["train", "--dry-run", *tiny_args()]) == 0
    assert "of memory to train" in capsys.readouterr().out


def test_choose_threads(monkeypatch):
    """Requested > 0 wins; then $OMP_NUM_THREADS; else the idle CPUs, rounded, at least 1, at
    most the usable CPUs and torch's default."""
    assert resources.choose_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert resources.choose_threads(0) == 2
    assert resources.choose_threads(0, recorded=3) == 2  # the environment wins
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert resources.choose_threads(0, recorded=3) == 3  # a resumed run keeps its count
    monkeypatch.setattr(resources.os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(resources, "_cgroup_cpus", lambda: None)
    monkeypatch.setattr(resources, "TORCH_DEFAULT_THREADS", 6)
    for idle, expected in ((8.0, 6), (4.6, 5), (1.4, 1), (0.0, 1)):
        monkeypatch.setattr(resources, "idle_cpus", lambda idle=idle: idle)
        assert resources.choose_threads(0) == expected, idle
    monkeypatch.setattr(resources, "_cgroup_cpus", lambda: 2)  # a container's CPU quota
    monkeypatch.setattr(resources, "idle_cpus", lambda: 8.0)
    assert resources.choose_threads(0) == 2


def test_idle_cpus_sees_a_busy_core(monkeypatch):
    """/proc/stat over the window: one of two CPUs fully busy, the other idle -> 1 idle."""
    readings = iter(
        [
            "cpu  0 0 0 0 0 0 0 0\ncpu0 100 0 0 0 0 0 0 0\ncpu1 0 0 0 100 0 0 0 0\n",
            "cpu  0 0 0 0 0 0 0 0\ncpu0 200 0 0 0 0 0 0 0\ncpu1 0 0 0 200 0 0 0 0\n",
        ]
    )
    monkeypatch.setattr(resources.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(resources, "_cgroup_cpus", lambda: None)
    monkeypatch.setattr(resources.Path, "read_text", lambda self: next(readings))
    assert resources.idle_cpus(window_s=0.0) == pytest.approx(1.0)


def test_train_threads_is_applied_recorded_and_kept_on_resume(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS")
    out = tmp_path / "run"
    try:
        assert main(["train", *tiny_args("train.threads=2"), "--out", str(out), "--quiet"]) == 0
        assert torch.get_num_threads() == 2
        state = ckpt.load_torch(ckpt.checkpoint_dirs(out)[-1] / "state.pt")
        assert state["threads"] == 2
        cfg_path = out / "config.json"
        cfg_path.write_text(cfg_path.read_text().replace('"threads": 2', '"threads": 0'))
        torch.set_num_threads(1)
        resume = ["train", "--resume", str(out), "--set", "train.steps=40", "--quiet"]
        assert main(resume) == 0
        assert torch.get_num_threads() == 2  # the count the checkpoint was written with
    finally:
        torch.set_num_threads(1)
