"""train.compile / sample.compile (compiled.py): the compiled network computes what the eager
one does, a compiled run resumes bitwise on CPU, and where torch.compile cannot work the run
is eager with one warning line. Fused AdamW, and the bfloat16 device check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import safetensors.torch
import torch

from conftest import tiny_args
from difflab import compiled
from difflab.app.cli import main
from difflab.app.config import Config
from difflab.app.run import load_run
from difflab.app.train import build_training
from difflab.compiled import CompiledNetwork, CompileWarning, compile_network
from difflab.models import MLP
from difflab.training import checkpoint as ckpt
from difflab.training.trainer import Trainer, build_optimizer

#: Inductor fuses the elementwise work of the MLP (SiLU, the time features' adds) into C++
#: kernels that may round in another order than eager PyTorch, so float32 results may differ in
#: their last bits (measured: the same loss, weights after one step within 4.5e-8); 1e-5
#: relative (and 1e-6 absolute on weights that an Adam step moves by about lr = 2e-3) would
#: still catch a wrong wiring (another network, parameters or batch), which changes them by O(1).
COMPILED_RTOL = 1e-5


def _small(**changes) -> Config:
    cfg = Config().replace("train", batch_size=64, warmup_steps=0, **changes)
    return cfg.replace("model", width=16, depth=1).replace("data", n_train=256)


def _first_step(compile_: bool) -> tuple[float, dict[str, torch.Tensor]]:
    cfg = _small(compile=compile_)
    dataset, _, model, objective = build_training(cfg)
    trainer = Trainer(model, objective, dataset, cfg.train, progress=False)
    loss, _ = trainer.train_step()
    return float(loss), {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_compiled_and_eager_steps_give_the_same_loss_and_update():
    """One optimiser step on the same seeded batch: same loss, same updated weights."""
    eager_loss, eager_weights = _first_step(False)
    compiled_loss, compiled_weights = _first_step(True)
    assert compiled_loss == pytest.approx(eager_loss, rel=COMPILED_RTOL)
    for key, value in eager_weights.items():
        torch.testing.assert_close(compiled_weights[key], value, rtol=0, atol=1e-6)


def test_compiled_run_resumes_bitwise(tmp_path, capsys):
    """train.compile = true: 40 steps straight and 20 + resume 20 end with bitwise the same
    weights, EMA and optimiser state (the compiled kernels are deterministic on CPU)."""
    run = [*tiny_args("train.steps=40", "train.checkpoint_every=20", "train.compile=true")]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", *run, "--out", str(straight), "--quiet"]) == 0
    assert "torch.compile warm-up" in capsys.readouterr().out
    assert main(["train", *run, "--set", "train.steps=20", "--out", str(split), "--quiet"]) == 0
    assert main(["train", "--resume", str(split), "--set", "train.steps=40", "--quiet"]) == 0
    a, b = ckpt.checkpoint_dirs(straight)[-1], ckpt.checkpoint_dirs(split)[-1]
    assert a.name == b.name == "step_00000040"
    for name in ("model", "ema"):
        wa = safetensors.torch.load_file(str(a / f"{name}.safetensors"))
        wb = safetensors.torch.load_file(str(b / f"{name}.safetensors"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    oa, ob = ckpt.load_torch(a / "optimizer.pt"), ckpt.load_torch(b / "optimizer.pt")
    for i, state in oa["state"].items():
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(ob["state"][i][k]))
                   for k, v in state.items())  # fmt: skip
    # checkpoints hold the network's own keys, loadable without torch.compile
    assert not any(k.startswith(("net.", "_orig_mod")) for k in wa)


def test_sample_compile_gives_the_eager_samples(tiny_run, tmp_path, capsys):
    """`difflab sample --compile`: the same ancestral chain (50 steps) as eager sampling,
    within float32 rounding of the fused kernels (measured 4.8e-7 after 50 steps; 1e-5 allows
    that and catches any other network or noise), with the warm-up shown."""
    eager, fast = tmp_path / "eager.npy", tmp_path / "compiled.npy"
    assert main(["sample", str(tiny_run), "-n", "64", "--out", str(eager), "--quiet"]) == 0
    capsys.readouterr()
    argv = ["sample", str(tiny_run), "-n", "64", "--out", str(fast), "--quiet", "--compile"]
    assert main(argv) == 0
    assert "sample.compile: the first network call took" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(fast), np.load(eager), rtol=0, atol=1e-5)


def test_compile_failing_at_the_first_call_falls_back_to_eager_once(monkeypatch):
    """A compiler error at the first call (as from a broken toolchain): one warning, the call
    repeated eagerly with the same result, and no second attempt."""

    def broken_compile(net, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("simulated: the C++ compiler crashed\ndetails on line 2")

        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    net = MLP(2, 2, width=8, depth=1)
    wrapped = CompiledNetwork(net, what="sample.compile")
    x, t = torch.randn(4, 2), torch.arange(4)
    with pytest.warns(CompileWarning) as caught:
        out = wrapped(x, t)
    (warning,) = caught
    text = str(warning.message)
    assert text.startswith("sample.compile = true: compiling failed (RuntimeError: simulated")
    assert "\n" not in text and text.endswith("running eagerly")
    assert torch.equal(out, net(x, t))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        assert torch.equal(wrapped(x, t), net(x, t))
    assert not wrapped.compiled


@pytest.fixture
def no_cpp_compiler():
    """Inductor's C++ compiler search pointed at a compiler that does not exist."""
    from torch._inductor import config as inductor_config
    from torch._inductor.cpp_builder import cpp_compiler_search

    cpp_compiler_search.cache_clear()
    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/g++")}):
        yield
    cpp_compiler_search.cache_clear()


def test_no_cpp_compiler_trains_eagerly_with_a_one_line_warning(no_cpp_compiler, tmp_path, capsys):
    assert "C++ compiler" in compiled.compile_unavailable("cpu")
    out = tmp_path / "run"
    assert main(["train", *tiny_args("train.compile=true"), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "difflab: warning: train.compile = true: no C++ compiler for the CPU backend (install "
        "g++ or clang++, or set CXX); running eagerly"
    ]
    assert load_run(out).step == 30


def test_compile_network_is_the_network_where_compiling_cannot_work(no_cpp_compiler):
    net = MLP(2, 2, width=8, depth=1)
    with pytest.warns(CompileWarning, match="no C.. compiler"):
        assert compile_network(net, "cpu", what="train.compile") is net


def test_fused_adamw_where_the_device_has_it():
    model = MLP(2, 2, width=8, depth=1)
    cfg = Config().train
    assert build_optimizer(model, cfg, "cpu").defaults["fused"] is True  # torch >= 2.4 on CPU
    off = Config().replace("train", fused_optimizer=False).train
    assert not build_optimizer(model, off, "cpu").defaults["fused"]


def test_bfloat16_on_a_gpu_without_it_is_a_one_line_error(monkeypatch):
    """A pre-Ampere GPU (simulated): train.precision = 'bfloat16' names the fix."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    assert compiled.bfloat16_unsupported("cpu") is None
    cfg = _small(precision="bfloat16")
    dataset, _, model, objective = build_training(cfg)
    with pytest.raises(ValueError) as err:  # raised before anything is moved to the GPU
        Trainer(model, objective, dataset, cfg.train, device="cuda", progress=False)
    assert str(err.value) == (
        "train.precision = 'bfloat16': the GPU 'Tesla V100' does not support bfloat16 (it needs "
        "an Ampere or newer GPU); set train.precision = 'float32' or train on a device that has "
        "bfloat16"
    )
