"""WaveGrad on toy_speech, on this machine's CPU cores (run under the shared lock):

1. train the tiny model with configs/wavegrad.toml for at most ``--minutes`` (default 30; the
   trainer is stopped by SIGTERM at the deadline and checkpoints): its 6000 steps with the
   cosine learning rate take about 29 minutes on 2 quiet cores (``--steps`` overrides them);
2. ``difflab tune-schedule --steps 6`` on validation clips (``--search``: mantissas, the
   command's default, or compass);
3. ``difflab evaluate`` on ``--clips`` test clips: the vocoder at 6 (tuned), 12, 25 and 50
   iterations, Griffin-Lim at 8, 32 and 100 iterations; then the log-mel distance of 6 (tuned)
   against ``--full-steps`` (1000) iterations on the first ``--full-clips`` of those clips,
   same seed (1000 iterations cost about 3 minutes per clip on 2 cores);
4. the real-time factor of 6-iteration vocoding for the tiny model (from step 3) and for the
   base model (random weights: the cost does not depend on them) on ``--rtf-seconds`` of audio
   at 24 kHz (base's hop of 300), median of 3 runs after a warm-up.

``--screen`` (for comparing configs on a short budget, e.g. ``--steps 1500 --set ...``): step 3
with 6 (tuned) and 50 iterations and Griffin-Lim at 32 only, and neither the 1000-iteration row
nor the base model's real-time factor.

Targets (issue 14): the tuned 6-iteration schedule better than Griffin-Lim (32) on log-mel
distance, multi-resolution STFT and f0 RMSE; its log-mel distance within 10 % of 1000
iterations'; RTF <= 0.2 for tiny. Writes benchmarks/results/wavegrad.json.

    flock /tmp/difflab-cpu.lock .venv/bin/python benchmarks/bench_wavegrad.py --out /tmp/wg
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DIFFLAB = [sys.executable, "-m", "difflab"]


def _run(args: list[str], *, timeout: float | None = None) -> float:
    """Run a difflab command, echoing it; returns its wall seconds."""
    print("$ difflab " + " ".join(args), flush=True)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([*DIFFLAB, *args], env=env)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the trainer checkpoints and exits 143
        proc.wait()
    if proc.returncode not in (0, 143):
        raise SystemExit(f"difflab {args[0]} failed with exit code {proc.returncode}")
    return time.perf_counter() - start


def evaluate(run_dir: Path, clips: int, *, screen: bool = False) -> tuple[float, dict]:
    """``difflab evaluate`` of the run with the benchmark's iteration counts (in process)."""
    sys.path.insert(0, str(ROOT / "src"))
    from difflab.app.evaluate_audio import evaluate_audio_run, format_audio_report
    from difflab.app.run import load_run

    run = load_run(run_dir)
    steps, iters = ((6, 50), (32,)) if screen else ((6, 12, 25, 50), (8, 32, 100))
    run.config = run.config.replace("evaluate", vocode_steps=steps, griffin_lim_iters=iters)
    start = time.perf_counter()
    result = evaluate_audio_run(run, clips=clips)
    print("\n".join(format_audio_report(result)), flush=True)
    return time.perf_counter() - start, result


def few_vs_full(run_dir: Path, clips: int, full: int) -> dict:
    """Mean log-mel distance (dB) of 6 (tuned) and ``full`` iterations on the first ``clips``
    test clips, vocoded with evaluate's seed (no warm-up: no time is measured)."""
    from difflab.app.audio_data import audio_clips, mel_spectrogram
    from difflab.app.evaluate_audio import _vocoder
    from difflab.app.run import load_run
    from difflab.app.vocode import inference_schedule
    from difflab.audio.metrics import log_mel_distance

    run = load_run(run_dir)
    mel = mel_spectrogram(run.config)
    test = audio_clips(run.config, "test")[:clips]
    out = {"clips": len(test)}
    for steps in (6, full):
        synth = _vocoder(run, mel, inference_schedule(run, steps), run.config.evaluate.seed)
        start = time.perf_counter()
        dists = [log_mel_distance(c.audio, synth(c), mel) for c in test]
        out[str(steps)] = {"log_mel_db": statistics.fmean(dists), "per_clip": dists,
                           "wall_s": time.perf_counter() - start}  # fmt: skip
        print(f"{steps} iterations: log-mel {out[str(steps)]['log_mel_db']:.3f} dB", flush=True)
    return out


def base_rtf(seconds: float, steps: int = 6) -> float:
    """Median real-time factor of the base model's ``steps``-iteration vocoding."""
    from difflab.models.wavegrad import WaveGrad
    from difflab.vocoder import vocode

    torch.manual_seed(0)
    net = WaveGrad(80, size="base").eval()
    frames = int(seconds * 24000) // net.hop_length
    mel = torch.randn(1, 80, frames) * 0.3 - 0.5
    betas = [1e-4, 1e-3, 1e-2, 5e-2, 0.2, 0.5][:steps]
    vocode(net, mel, betas)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        vocode(net, mel, betas)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / (frames * net.hop_length / 24000)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="a folder for the run")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train.steps (default: the config's, sized for --minutes with its cosine "
        "learning rate); the time budget stops it first",
    )
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--rtf-seconds", type=float, default=4.0)
    p.add_argument("--tune-clips", type=int, default=4)
    p.add_argument(
        "--search",
        choices=("mantissas", "compass"),
        default="mantissas",
        help="tune-schedule's search (default: its default, WaveGrad's grid of mantissas)",
    )
    p.add_argument("--full-steps", type=int, default=1000, help="the 'all iterations' row")
    p.add_argument("--full-clips", type=int, default=2, help="clips for 6 vs --full-steps")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a config override for training (repeatable), e.g. --set train.lr=0.004",
    )
    p.add_argument("--skip-train", action="store_true", help="reuse OUT/run")
    p.add_argument(
        "--screen",
        action="store_true",
        help="6 and 50 iterations and Griffin-Lim 32 only; no 1000-iteration row, no base RTF",
    )
    p.add_argument("--results", type=Path, help="default: benchmarks/results/wavegrad.json")
    args = p.parse_args()
    run = args.out / "run"
    load = os.getloadavg()
    result: dict = {"load_average_at_start": load, "threads": torch.get_num_threads(),
                    "overrides": args.overrides, "search": args.search}  # fmt: skip
    if not args.skip_train:
        args.out.mkdir(parents=True, exist_ok=True)
        sets = ["--set", "train.checkpoint_minutes=5"]
        if args.steps is not None:
            sets += ["--set", f"train.steps={args.steps}"]
        sets += [arg for item in args.overrides for arg in ("--set", item)]
        result["train_wall_s"] = _run(
            ["train", str(ROOT / "configs/wavegrad.toml"), *sets, "--out", str(run), "--quiet"],
            timeout=args.minutes * 60,
        )
    rows = [r.split(",") for r in (run / "metrics.csv").read_text().splitlines()]
    result["train_steps"], result["final_loss"] = int(rows[-1][0]), float(rows[-1][1])
    result["tune_wall_s"] = _run(
        ["tune-schedule", str(run), "--steps", "6", "--clips", str(args.tune_clips),
         "--search", args.search, "--quiet"]
    )  # fmt: skip
    result["evaluate_wall_s"], evaluated = evaluate(run, args.clips, screen=args.screen)
    result["evaluate"] = evaluated
    result["schedules"] = json.loads((run / "schedules.json").read_text())
    by = {(r["method"], r["iterations"]): r for r in evaluated["rows"]}
    wg6 = by[("wavegrad", 6)]
    gl32 = by[("griffin_lim", 32)]
    result["targets"] = {
        "log_mel_6_vs_gl32": [wg6["log_mel_db"], gl32["log_mel_db"]],
        "mr_stft_6_vs_gl32": [wg6["mr_stft"], gl32["mr_stft"]],
        "f0_rmse_6_vs_gl32": [wg6["f0_rmse_hz"], gl32["f0_rmse_hz"]],
        "tiny_rtf_6": wg6["rtf"],
    }
    if not args.screen:
        result["few_vs_full"] = full = few_vs_full(run, args.full_clips, args.full_steps)
        result["base_rtf_6"] = base_rtf(args.rtf_seconds)
        six, all_steps = full["6"]["log_mel_db"], full[str(args.full_steps)]["log_mel_db"]
        result["targets"]["log_mel_6_over_1000"] = six / all_steps
        result["targets"]["base_rtf_6"] = result["base_rtf_6"]
    result["load_average_at_end"] = os.getloadavg()
    out = args.results or ROOT / "benchmarks" / "results" / "wavegrad.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["targets"], indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
