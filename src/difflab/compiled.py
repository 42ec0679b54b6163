"""A network through ``torch.compile``, and eager wherever compiling cannot work.

:func:`compile_network` returns a module that calls the compiled network; its parameters,
gradients and state are the network's own (checkpoints save the network, never the wrapper).
Where torch.compile cannot work (no ``torch.compile``, a Python or platform that TorchDynamo
does not support, no C++ compiler for the CPU backend, no Triton for a GPU) it warns once with
one line and the network runs eagerly; a compilation that fails later, at the first call or a
recompile, does the same and the call is repeated eagerly. The first call's wall time (the
warm-up: tracing and code generation) is kept in ``warmup_s`` for progress output.

Also: fused AdamW where the device has the kernel (:func:`fused_optimizer_supported`), and
the check that a device can run bfloat16 autocast (:func:`bfloat16_unsupported`).
"""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from typing import Any

import torch
from torch import nn


class CompileWarning(UserWarning):
    """torch.compile was asked for but cannot work here: the network runs eagerly."""


def compile_unavailable(device: torch.device | str) -> str | None:
    """Why torch.compile cannot work on ``device`` here, or None if it can (as far as can be
    told before compiling: a failure at the first call is handled by :class:`CompiledNetwork`)."""
    device = torch.device(device)
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile (it needs torch >= 2.0)"
    from torch import _dynamo

    supported = getattr(_dynamo, "is_dynamo_supported", None)
    if supported is not None and not supported():
        return f"TorchDynamo does not support Python {sys.version.split()[0]} on {sys.platform}"
    if device.type == "cpu":
        return _cpp_compiler_missing()
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "the GPU backend needs Triton, which is not installed"
    return f"device {device.type!r} has no torch.compile backend here"


def _cpp_compiler_missing() -> str | None:
    """The CPU backend (Inductor) compiles C++: None if it finds a compiler."""
    try:
        from torch._inductor import exc
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # another torch layout: look for the usual names
        found = any(shutil.which(name) for name in ("g++", "c++", "clang++"))
        return None if found else "no C++ compiler (g++ or clang++) for the CPU backend"
    try:
        get_cpp_compiler()
    except (exc.InvalidCxxCompiler, OSError, RuntimeError):
        return "no C++ compiler for the CPU backend (install g++ or clang++, or set CXX)"
    return None


class CompiledNetwork(nn.Module):
    """``net`` called through ``torch.compile(net)``, falling back to eager (see module doc).

    The compiled callable is kept outside the module tree, so ``parameters()`` and
    ``state_dict()`` are exactly those of ``net`` under the prefix ``net.``.
    """

    def __init__(self, net: nn.Module, *, what: str = "train.compile") -> None:
        super().__init__()
        self.net = net
        self.what = what
        self.warmup_s: float | None = None
        self._compiled: list[Any] = [torch.compile(net)]

    @property
    def compiled(self) -> bool:
        """False once compiling failed and the network runs eagerly."""
        return bool(self._compiled)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self._compiled:
            return self.net(*args, **kwargs)
        t0 = time.perf_counter()
        try:
            out = self._compiled[0](*args, **kwargs)
        except Exception as err:  # compiling failed: the same call, eagerly
            self._compiled.clear()
            reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"
            warn_eager(self.what, f"compiling failed ({reason[:200]})")
            return self.net(*args, **kwargs)
        if self.warmup_s is None:
            self.warmup_s = time.perf_counter() - t0
        return out


def warn_eager(what: str, reason: str) -> None:
    """The one-line warning of a compile request that runs eagerly."""
    warnings.warn(f"{what} = true: {reason}; running eagerly", CompileWarning, stacklevel=3)


def compile_network(net: nn.Module, device: torch.device | str, *, what: str) -> nn.Module:
    """``net`` compiled (a :class:`CompiledNetwork`), or ``net`` itself with a warning where
    torch.compile cannot work on ``device``. ``what`` names the config key in the warning."""
    reason = compile_unavailable(device)
    if reason is not None:
        warn_eager(what, reason)
        return net
    return CompiledNetwork(net, what=what)


def fused_optimizer_supported(device: torch.device | str) -> bool:
    """True where torch has a fused Adam/AdamW kernel for ``device`` (one kernel for all
    parameters instead of a few per tensor)."""
    device = torch.device(device)
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
    except ImportError:
        return device.type == "cuda"
    return device.type in _get_fused_kernels_supported_devices()


def bfloat16_unsupported(device: torch.device | str) -> str | None:
    """Why ``device`` cannot run bfloat16 autocast, or None if it can (every CPU can; a GPU
    needs compute capability 8.0, Ampere, or newer)."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name(device)
        return f"the GPU {name!r} does not support bfloat16 (it needs an Ampere or newer GPU)"
    return None
