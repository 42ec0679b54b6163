"""Foundation benchmark (issue 2), on this machine:

1. wall time of the default `difflab train` plus `difflab sample --n 5000` (target <= 90 s);
2. energy distance of those samples to fresh swiss-roll data, against its noise floor
   (target ratio <= 1.0), plus the ratio for a few more sample seeds to show its spread;
3. the trainer's throughput against a bare PyTorch loop with the same model, batch and
   optimiser, measured side by side in interleaved repeats (target >= 90%).

Usage: python benchmarks/bench_foundation.py [--repeats 5] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from difflab.app.build import build_model, build_objective, build_schedule
from difflab.app.config import Config
from difflab.app.datasets import REFERENCE_SEED, build_dataset
from difflab.app.run import load_run
from difflab.data.toy import sample_toy
from difflab.metrics import compare_to_reference
from difflab.training.trainer import Trainer


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def end_to_end(tmp: Path) -> dict:
    run_dir = tmp / "run"
    exe = [sys.executable, "-m", "difflab"]
    train_s = timed([*exe, "train", "--out", str(run_dir), "--quiet"])
    sample_s = timed(
        [*exe, "sample", str(run_dir), "--n", "5000", "--out", str(tmp / "s.npy"), "--quiet"]
    )
    samples = np.load(tmp / "s.npy")
    reference = sample_toy("swiss_roll", 5000, seed=REFERENCE_SEED)
    floors = [sample_toy("swiss_roll", 5000, seed=REFERENCE_SEED + 1 + k) for k in range(10)]
    headline = compare_to_reference(samples, reference, floors)
    run = load_run(run_dir)
    more = []
    for seed in range(1, 6):
        extra, _ = run.sample(5000, seed=seed)
        more.append(compare_to_reference(extra, reference, floors)["energy_distance"]["ratio"])
    return {
        "train_s": train_s,
        "sample_s": sample_s,
        "total_s": train_s + sample_s,
        "energy_distance": headline["energy_distance"],
        "mmd": headline["mmd"],
        "energy_ratio_other_seeds": more,
        "energy_ratio_median_all_seeds": statistics.median(
            [headline["energy_distance"]["ratio"], *more]
        ),
    }


def bare_loop(cfg: Config, steps: int, *, with_clip_and_ema: bool = False) -> float:
    """Steps/s of the plainest loop: same model, batch, optimiser and loss, nothing else; with
    ``with_clip_and_ema`` it also clips gradients and updates an EMA as the config asks (the same
    arithmetic as the trainer, without its bookkeeping)."""
    torch.manual_seed(0)
    data = build_dataset(cfg.data).x
    schedule = build_schedule(cfg.schedule)
    model = build_model(cfg, (2,))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    params = list(model.parameters())
    shadow = [p.detach().clone() for p in params]
    sab, s1mab = schedule.sqrt_alphas_cumprod, schedule.sqrt_one_minus_alphas_cumprod
    t0 = time.perf_counter()
    for _ in range(steps):
        x0 = data[torch.randint(0, data.shape[0], (cfg.train.batch_size,))]
        t = torch.randint(0, schedule.T, (cfg.train.batch_size,))
        eps = torch.randn_like(x0)
        x_t = sab[t, None] * x0 + s1mab[t, None] * eps
        loss = ((model(x_t, t) - eps) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        if with_clip_and_ema:
            torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
        opt.step()
        if with_clip_and_ema:
            with torch.no_grad():
                torch._foreach_lerp_(shadow, params, 1.0 - cfg.train.ema_decay)
    return steps / (time.perf_counter() - t0)


def trainer_loop(cfg: Config, steps: int) -> float:
    torch.manual_seed(0)
    dataset = build_dataset(cfg.data)
    schedule = build_schedule(cfg.schedule)
    model = build_model(cfg, dataset.shape)
    train_cfg = cfg.replace("train", steps=steps, log_every=50).train
    trainer = Trainer(model, build_objective(cfg, schedule), dataset, train_cfg, progress=True)
    return trainer.fit().steps_per_s


def throughput(repeats: int, steps: int) -> dict:
    cfg = Config()
    bare, full, ours = [], [], []
    for _ in range(repeats):  # interleaved so all see the same machine load
        bare.append(bare_loop(cfg, steps))
        full.append(bare_loop(cfg, steps, with_clip_and_ema=True))
        ours.append(trainer_loop(cfg, steps))
    ratios = [o / b for o, b in zip(ours, bare)]
    ratios_full = [o / b for o, b in zip(ours, full)]
    return {
        "bare_steps_per_s": statistics.median(bare),
        "bare_with_clip_and_ema_steps_per_s": statistics.median(full),
        "trainer_steps_per_s": statistics.median(ours),
        "ratio_median": statistics.median(ratios),
        "ratio_vs_clip_and_ema_median": statistics.median(ratios_full),
        "ratios": ratios,
        "ratios_vs_clip_and_ema": ratios_full,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", default="benchmarks/results/foundation.json")
    parser.add_argument("--skip-end-to-end", action="store_true", help="throughput only")
    args = parser.parse_args()
    result = {}
    if not args.skip_end_to_end:
        with tempfile.TemporaryDirectory() as tmp:
            result["end_to_end"] = end_to_end(Path(tmp))
    result["throughput"] = throughput(args.repeats, args.steps)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
