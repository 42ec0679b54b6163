"""GPU benchmark (issue 16): one short command on a machine with an accelerator.

For the digits U-Net (configs/digits.toml: 8x8x1, batch 128) and a 32x32 RGB U-Net (channels
64, channel_mult [1, 2, 2], two residual blocks per level, attention; batch 128), each at
float32 and bfloat16 (autocast):

1. training: steps/s and images/s of the Trainer's own step (objective, backward, clipping,
   fused AdamW, EMA) after a warm-up, and the peak memory; ``--compile`` adds rows with
   train.compile (its warm-up reported apart);
2. sampling: network evaluations per second and images per second of a 50-step DPM-Solver++(2M)
   chain (``--sample-batch`` images), and its peak memory;
3. 1 vs N processes: the same training step under torchrun with N processes (DDP over NCCL,
   one GPU each; the global batch is N x batch), images/s against N times one process's
   (scaling efficiency). Skipped with fewer than 2 GPUs unless ``--nproc`` says otherwise.

Training data: the digits for the digits U-Net, random 8-bit images for the 32x32 one (the
speed does not depend on the pixel values). Every number is a median over ``--repeats``
timed windows of ``--seconds`` each. Prints a table and writes ``--out`` (JSON).

Usage (about 3 minutes on one recent GPU; ``--device cpu --quick`` checks it on a CPU):
  python benchmarks/bench_gpu.py --out benchmarks/results/gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from difflab.app.build import build_model, build_objective, build_schedule, generate
from difflab.app.config import Config
from difflab.app.config_files import load_config
from difflab.app.datasets import build_dataset
from difflab.data.dataset import Dataset
from difflab.training.distributed import init_distributed, shutdown_distributed
from difflab.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]

#: The 32x32 U-Net, over configs/digits.toml (a CIFAR-10-sized model, smaller than DDPM's).
UNET32 = [
    "model.channels=64",
    "model.channel_mult=[1, 2, 2]",
    "model.num_res_blocks=2",
    "model.attention=true",
    "schedule.T=1000",
]
#: --quick: tiny models and budgets, to check the script itself (e.g. in the test suite).
QUICK = ["model.channels=8", "model.channel_mult=[1, 2]", "model.num_res_blocks=1"]


def model_config(name: str, *, batch: int, quick: bool, extra: list[str] = ()) -> Config:
    """The config of model ``name`` ("digits" or "unet32") with batch size ``batch``."""
    overrides = [*(UNET32 if name == "unet32" else []), *(QUICK if quick else []), *extra]
    overrides.append(f"train.batch_size={batch}")
    return load_config(ROOT / "configs" / "digits.toml", overrides)


def training_data(name: str, cfg: Config) -> Dataset:
    if name == "digits":
        return build_dataset(cfg.data)
    levels = torch.randint(0, 256, (1024, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    return Dataset("random_32x32", levels.float() / 127.5 - 1.0, levels=256)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated since the last reset, or this process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def timed_windows(step, device: torch.device, *, seconds: float, repeats: int) -> list[float]:
    """Calls of ``step`` per second in ``repeats`` windows of about ``seconds`` each."""
    rates = []
    for _ in range(repeats):
        _sync(device)
        t0, calls = time.perf_counter(), 0
        while True:
            step()
            calls += 1
            if calls % 5 == 0 or seconds == 0:
                _sync(device)
                if time.perf_counter() - t0 >= seconds:
                    break
        rates.append(calls / (time.perf_counter() - t0))
    return rates


def bench_training(
    name: str,
    precision: str,
    args: argparse.Namespace,
    *,
    compile_: bool,
    dist_ctx: Any = None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Steps/s, images/s and peak memory of the Trainer's step for one model and precision."""
    device = device or torch.device(args.device)
    world = dist_ctx.world_size if dist_ctx is not None else 1
    extra = [f"train.precision={precision}", f"train.compile={str(compile_).lower()}"]
    cfg = model_config(name, batch=args.batch * world, quick=args.quick, extra=extra)
    torch.manual_seed(0)
    data = training_data(name, cfg)
    model = build_model(cfg, data.shape)
    objective = build_objective(cfg, build_schedule(cfg.schedule), levels=data.levels)
    trainer = Trainer(
        model, objective, data, cfg.train, device=device, progress=False, dist_ctx=dist_ctx
    )
    _reset_peak(device)
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        trainer.train_step()
    _sync(device)
    warmup_s = time.perf_counter() - t0
    rates = timed_windows(trainer.train_step, device, seconds=args.seconds, repeats=args.repeats)
    steps_per_s = statistics.median(rates)
    return {
        "model": name,
        "precision": precision,
        "compile": compile_,
        "processes": world,
        "batch": cfg.train.batch_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "warmup_s": round(warmup_s, 2),
        "steps_per_s": round(steps_per_s, 2),
        "images_per_s": round(steps_per_s * cfg.train.batch_size, 1),
        "steps_per_s_windows": [round(r, 2) for r in rates],
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }


def bench_sampling(name: str, precision: str, args: argparse.Namespace) -> dict[str, Any]:
    """Network evaluations/s and images/s of a ``--sample-steps`` DPM-Solver++(2M) chain."""
    device = torch.device(args.device)
    cfg = model_config(name, batch=args.batch, quick=args.quick)
    cfg = cfg.replace("sample", sampler="dpmpp2m", steps=args.sample_steps)
    torch.manual_seed(0)
    shape = training_data(name, cfg).shape
    net = build_model(cfg, shape).to(device).eval()
    schedule = build_schedule(cfg.schedule).to(device)
    generator = torch.Generator(device=device)
    dtype = torch.bfloat16 if precision == "bfloat16" else None

    def chain() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            generate(cfg, net, schedule, (args.sample_batch, *shape), generator=generator)

    _reset_peak(device)
    chain()  # warm-up
    rates = timed_windows(chain, device, seconds=args.seconds, repeats=args.repeats)
    chains_per_s = statistics.median(rates)
    return {
        "model": name,
        "precision": precision,
        "batch": args.sample_batch,
        "steps": args.sample_steps,
        "evaluations_per_s": round(chains_per_s * args.sample_steps, 1),
        "images_per_s": round(chains_per_s * args.sample_batch, 1),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }


def bench_processes(name: str, args: argparse.Namespace, nproc: int) -> dict[str, Any]:
    """The float32 training step under ``torchrun --nproc_per_node=nproc`` (this script's
    ``--worker`` mode); rank 0 writes its result."""
    out = Path(args.scratch) / f"procs_{name}_{nproc}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", __file__, "--worker", name, "--worker-out", str(out)]
    cmd += ["--device", args.device, "--batch", str(args.batch), "--seconds", str(args.seconds)]
    cmd += ["--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    cmd += ["--quick"] if args.quick else []
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if args.device == "cpu":
        env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def worker(args: argparse.Namespace) -> None:
    """One torchrun rank of :func:`bench_processes`."""
    ctx, device = init_distributed(args.device)
    try:
        row = bench_training(args.worker, "float32", args, compile_=False, dist_ctx=ctx,
                             device=torch.device(device))  # fmt: skip
        if ctx.is_main:
            Path(args.worker_out).write_text(json.dumps(row))
    finally:
        shutdown_distributed()


def environment(device: torch.device) -> dict[str, Any]:
    info = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpus"] = torch.cuda.device_count()
        info["cuda"] = torch.version.cuda
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    else:
        info["cpu_threads"] = torch.get_num_threads()
    return info


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    result: dict[str, Any] = {"environment": environment(device), "training": [], "sampling": []}
    precisions = ["float32", "bfloat16"]
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        precisions, result["note"] = ["float32"], "this GPU has no bfloat16: float32 only"
    for name in args.models.split(","):
        for precision in precisions:
            for compile_ in (False, True) if args.compile else (False,):
                row = bench_training(name, precision, args, compile_=compile_)
                result["training"].append(row)
                print(json.dumps(row), flush=True)
            row = bench_sampling(name, precision, args)
            result["sampling"].append(row)
            print(json.dumps(row), flush=True)
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    nproc = args.nproc if args.nproc is not None else gpus
    result["processes"] = []
    if nproc < 2:
        result["processes_note"] = f"1 vs N processes skipped: {gpus} GPU(s) (set --nproc)"
    for name in args.models.split(",") if nproc >= 2 else ():
        one = next(r for r in result["training"] if r["model"] == name and not r["compile"])
        many = bench_processes(name, args, nproc)
        many["scaling_efficiency"] = round(many["images_per_s"] / (nproc * one["images_per_s"]), 3)
        result["processes"].append(many)
        print(json.dumps(many), flush=True)
    return result


def print_table(result: dict[str, Any]) -> None:
    print(json.dumps(result["environment"]))
    print(
        f"{'training':<26}{'batch':>6}{'steps/s':>9}{'images/s':>10}{'peak MB':>9}{'warm-up s':>10}"
    )
    for r in result["training"] + result["processes"]:
        what = f"{r['model']} {r['precision']}" + (" compiled" if r["compile"] else "")
        what += f" x{r['processes']}" if r["processes"] > 1 else ""
        print(f"{what:<26}{r['batch']:>6}{r['steps_per_s']:>9}{r['images_per_s']:>10}"
              f"{r['peak_memory_mb']:>9}{r['warmup_s']:>10}")  # fmt: skip
    for r in result["processes"]:
        print(f"{r['model']}: {r['processes']} processes, scaling efficiency "
              f"{r['scaling_efficiency']}")  # fmt: skip
    print(result.get("processes_note", ""))
    print(f"{'sampling (dpmpp2m)':<26}{'batch':>6}{'evals/s':>9}{'images/s':>10}{'peak MB':>9}")
    for r in result["sampling"]:
        print(f"{r['model'] + ' ' + r['precision']:<26}{r['batch']:>6}{r['evaluations_per_s']:>9}"
              f"{r['images_per_s']:>10}{r['peak_memory_mb']:>9}")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--models", default="digits,unet32", help="digits and/or unet32")
    parser.add_argument("--batch", type=int, default=128, help="training batch per process")
    parser.add_argument("--sample-batch", type=int, default=1000)
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0, help="per timed window")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10, help="untimed training steps")
    parser.add_argument("--compile", action="store_true", help="also with train.compile")
    parser.add_argument("--nproc", type=int, help="processes for part 3 (default: GPUs)")
    parser.add_argument("--quick", action="store_true", help="tiny models and budgets")
    parser.add_argument("--scratch", default="/tmp", help="where the torchrun part writes")
    parser.add_argument("--out", help="write the results as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not set(args.models.split(",")) <= {"digits", "unet32"}:
        parser.error(f"--models {args.models!r}: choose from digits, unet32")
    if args.quick:
        args.batch, args.sample_batch, args.sample_steps = 8, 8, 3
        args.seconds, args.repeats, args.warmup = 0.0, 1, 1
    return args


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return None
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA device here; run it where a GPU is lent")
    result = run_all(args)
    print_table(result)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
