"""The machine's resources: memory estimates checked before the work, and the thread count.

Memory: :func:`training_bytes` and :func:`sampling_bytes` estimate what a run needs from the
registry's model row and the data shape alone, building the network on PyTorch's meta device
(shapes, no storage; a small vector-data network for real, which is faster) and adding up its
parameters and the activations of one example
(:func:`activation_floats`). :func:`require_memory` compares an estimate with what the device
has available and refuses, in one line with both numbers, what cannot fit, so that a typo
(``model.width = 100000``, ``--n 10000000000``) fails at once instead of swapping the machine
to a halt. Estimates err on the high side by small factors; they are not exact.

Threads: :func:`choose_threads` picks the number of intra-op threads (``train.threads``; 0:
automatic: the cores idle at start), see docs/performance.md.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

from difflab.app.config import Config
from difflab.app.registry import DIFFUSION, LADDER, LOSSES, MODELS, VOCODER

GIB = 2**30
#: torch's own default thread count (physical cores), read before anything changes it.
TORCH_DEFAULT_THREADS = torch.get_num_threads()
#: Bytes per parameter while training: weights, gradients, Adam's two moments, the EMA copy.
TRAIN_BYTES_PER_PARAM = 4 * 5
#: Saved activations and their gradients per forward activation value (float32) when training.
TRAIN_ACTIVATION_FACTOR = 2 * 4
#: Copies of the state a sampler keeps per example (x_t, x0_hat, eps_hat, mean, noise, ...).
SAMPLER_STATE_COPIES = 16


def vocoder_inputs(cfg: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One training segment's inputs of a vocoder: noisy audio (1, 1, F * hop), its noise
    level (1,) and mel features (1, n_mels, F) with F = ``data.segment_frames``."""
    frames = cfg.data.segment_frames
    return (
        torch.zeros(1, 1, frames * cfg.mel.hop_length),
        torch.zeros(1),
        torch.zeros(1, cfg.mel.n_mels, frames),
    )


def activation_floats(cfg: Config, data_shape: tuple[int, ...]) -> int:
    """Values produced by the network's leaf modules for one example (meta device: nothing
    is allocated; small vector networks are built for real, see ``build.estimate_device``);
    0 if the network cannot run on the meta device."""
    row = MODELS[cfg.model.name]
    total = [0]

    def count(module, inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            total[0] += output.numel()

    from difflab.app.build import build_model, estimate_context  # build imports our callers

    with estimate_context(cfg, data_shape):
        net = build_model(cfg, data_shape, num_classes=estimate_classes(cfg))
        hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
        x = torch.zeros(1, *data_shape)
        if row.kind == DIFFUSION:
            args: tuple = (x, torch.zeros(1, dtype=torch.long))
        elif row.kind == VOCODER:
            args = vocoder_inputs(cfg)
        elif LOSSES[cfg.loss.name].trains == LADDER:
            args = (x, torch.ones(1))
        else:
            args = (x,)
        try:
            with torch.no_grad():
                net(*args)
        except (NotImplementedError, RuntimeError, TypeError, ValueError):
            return 0  # an op without a meta kernel: the estimate counts the parameters only
        finally:
            for hook in hooks:
                hook.remove()
    return total[0]


#: The number of classes the estimates assume for a class-conditional network (its label
#: embedding, a few rows of the time embedding's width, is a negligible part of its memory).
ESTIMATE_CLASSES = 10


def estimate_classes(cfg: Config) -> int | None:
    """The number of classes the memory estimates build a class-conditional network with."""
    return ESTIMATE_CLASSES if cfg.model.class_conditional else None


def parameter_count(cfg: Config, data_shape: tuple[int, ...]) -> int:
    from difflab.app.build import count_parameters

    return count_parameters(cfg, data_shape, num_classes=estimate_classes(cfg))


def training_bytes(cfg: Config, data_shape: tuple[int, ...], n_train: int) -> dict[str, float]:
    """Estimated bytes to train: ``params`` (weights, gradients, Adam, EMA), ``activations``
    (one batch of ``train.batch_size``, with their gradients), ``data`` (the training set
    in memory as float32, twice: as read and as a tensor) and ``total``."""
    per_example = activation_floats(cfg, data_shape)
    parts = {
        "params": float(parameter_count(cfg, data_shape) * TRAIN_BYTES_PER_PARAM),
        "activations": float(cfg.train.batch_size * per_example * TRAIN_ACTIVATION_FACTOR),
        "data": float(n_train * math.prod(data_shape) * 4 * 2),
    }
    parts["total"] = sum(parts.values())
    return parts


def sampling_bytes(cfg: Config, data_shape: tuple[int, ...], n: int) -> float:
    """Estimated bytes to draw ``n`` samples in one batch: the sampler's state and the
    network's activations for every example, plus the weights."""
    per_example = SAMPLER_STATE_COPIES * math.prod(data_shape) + activation_floats(cfg, data_shape)
    return float(n * per_example * 4 + parameter_count(cfg, data_shape) * 4)


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def available_bytes(device: torch.device | str = "cpu") -> float:
    """Memory this process can still use on ``device``: free GPU memory, or on the CPU the
    smaller of the kernel's MemAvailable and the cgroup's limit minus its usage."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free)
    candidates = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:
            candidates.append(limit - usage)
    if not candidates:
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        candidates.append(pages * size)
    return float(max(0, min(candidates)))


def gib(nbytes: float) -> str:
    return f"{nbytes / GIB:.3g} GiB"


def require_memory(needed: float, *, what: str, fix: str, device: torch.device | str = "cpu"):
    """A one-line ValueError when ``needed`` bytes exceed what ``device`` has available."""
    have = available_bytes(device)
    if needed > have:
        raise ValueError(
            f"{what} needs about {gib(needed)} of memory but {gib(have)} are available on "
            f"{torch.device(device).type}; {fix}"
        )


def check_training_fits(cfg: Config, data_shape: tuple[int, ...], n_train: int, device) -> dict:
    """Refuse a training run whose estimate exceeds the available memory; returns the
    estimate (bytes by part)."""
    parts = training_bytes(cfg, data_shape, n_train)
    params = parameter_count(cfg, data_shape)
    require_memory(
        parts["total"],
        what=(
            f"training {cfg.model.name} with {params:.3g} parameters ({gib(parts['params'])} "
            f"for weights, gradients, Adam and EMA; {gib(parts['activations'])} for a batch of "
            f"{cfg.train.batch_size}; {gib(parts['data'])} for the data)"
        ),
        fix="make the model smaller (model.width, model.channels, model.depth) or lower "
        "train.batch_size",
        device=device,
    )
    return parts


def check_sampling_fits(
    cfg: Config, data_shape: tuple[int, ...], n: int, device, *, copies: float = 1.0
) -> None:
    """Refuse to draw ``n`` samples at once when they cannot fit in memory (``copies``: the
    command also holds that many times as many points, e.g. reference data)."""
    needed = sampling_bytes(cfg, data_shape, math.ceil(copies * n))
    have = available_bytes(device)
    if needed > have:
        at_most = max(1, int(n * have / needed))
        raise ValueError(
            f"{n} samples at once need about {gib(needed)} of memory but {gib(have)} are "
            f"available; use a smaller --n (at most about {at_most})"
        )


def choose_threads(requested: int = 0, *, recorded: int | None = None) -> int:
    """The number of intra-op threads: ``requested`` if > 0; else $OMP_NUM_THREADS if set;
    else ``recorded`` (the count a resumed checkpoint was trained with, so that the resumed
    run stays bitwise the same); else the idle CPUs among those this process may run on
    (:func:`idle_cpus`), rounded, at least 1 and at most torch's default (the physical cores).
    A thread on a busy core holds every other thread up at each parallel region's barrier
    (docs/performance.md)."""
    if requested > 0:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if recorded:
        return int(recorded)
    cpus = usable_cpus()
    return max(1, min(cpus, int(idle_cpus() + 0.5), TORCH_DEFAULT_THREADS))


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity set, within the cgroup's CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, _cgroup_cpus() or 1 << 30))


def idle_cpus(window_s: float = 0.2) -> float:
    """How many of this process's CPUs are idle now: the idle share of each over a short
    ``window_s`` (/proc/stat), summed; without /proc, the CPUs minus the 1-minute load."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    first = _cpu_times(cpus)
    if first is None:
        try:
            return usable_cpus() - os.getloadavg()[0]
        except OSError:
            return float(usable_cpus())
    time.sleep(window_s)
    second = _cpu_times(cpus) or first
    idle = 0.0
    for (idle_a, total_a), (idle_b, total_b) in zip(first, second):
        idle += (idle_b - idle_a) / max(total_b - total_a, 1)
    return min(idle, float(usable_cpus()))


def _cpu_times(cpus: list[int]) -> list[tuple[int, int]] | None:
    """(idle + iowait, total) jiffies of each CPU in ``cpus`` from /proc/stat, or None."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    times = {}
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            numbers = [int(v) for v in values]
            times[int(name[3:])] = (numbers[3] + numbers[4], sum(numbers[:8]))
    picked = [times[c] for c in cpus if c in times]
    return picked or None


def _cgroup_cpus() -> int | None:
    """The cgroup v2 CPU quota in whole CPUs (rounded up), or None without a quota."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))
