"""``difflab doctor RUN_DIR``: the checks that help when samples look like noise.

Each check returns :class:`Finding` s with a level (ok, warning, problem), what was found and
what to change. The checks: data range and scaling in model space, the schedule's terminal
signal-to-noise ratio, the checkpoint's integrity and its agreement with config.json and the
data, the EMA's age against its decay, non-finite weights, and a preview that samples with the
raw and the EMA weights and compares both with the data (``RUN_DIR/doctor/preview.png``). The
findings are also saved in ``RUN_DIR/doctor.json`` for ``difflab report``.
"""

from __future__ import annotations

import argparse
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from difflab.app.build import build_schedule
from difflab.app.config import Config
from difflab.app.config_files import config_from_json
from difflab.app.datasets import build_dataset
from difflab.app.doctor_preview import Q_PROBLEM, Q_WARNING, Scales, judge, scales
from difflab.app.outputs import Outputs, check_folder_writable
from difflab.app.registry import LOSSES
from difflab.app.resources import check_sampling_fits
from difflab.app.run import load_run, model_config_differences, require_run_dir
from difflab.app.sample import check_count, nonfinite_cause
from difflab.app.sections import check_seed
from difflab.data.dataset import Dataset
from difflab.training import checkpoint as ckpt
from difflab.training.manifest import read_manifest

#: Terminal SNR (alpha_bar_T / (1 - alpha_bar_T), times the data's variance) above which x_T
#: is visibly not pure noise: sampling from N(0, I) then starts off the training distribution.
SNR_PROBLEM, SNR_WARNING = 1e-2, 1e-3
#: The same for a continuous formulation's grid top, whose start matches the marginal's mean
#: and variance, so only the data's shape at that noise level is left (docs/continuous.md).
GRID_SNR_PROBLEM, GRID_SNR_WARNING = 0.1, 0.02


@dataclass
class Finding:
    check: str
    level: str  # "ok" | "warning" | "problem"
    message: str
    fix: str = ""


def format_findings(findings: list[Finding]) -> list[str]:
    """``[level] check: message`` lines, each followed by ``fix: ...`` where there is one."""
    lines = []
    for f in findings:
        lines.append(f"[{f.level}] {f.check}: {f.message}")
        if f.fix:
            lines.append(f"    fix: {f.fix}")
    return lines


def check_data(cfg: Config, manifest: dict) -> tuple[list[Finding], Dataset | None]:
    """Data in model space should have roughly unit scale: the noise added has std 1."""
    try:
        data = build_dataset(cfg.data, seed=cfg.train.seed)
    except ValueError as err:
        return [Finding("data", "problem", str(err), "restore the data file")], None
    x = data.x.reshape(data.x.shape[0], -1).double()
    std, mean = x.std(0), x.mean(0)
    found = [
        f"{tuple(data.x.shape)} in model space, std {float(std.min()):.3g}..{float(std.max()):.3g},"
        f" |mean| <= {float(mean.abs().max()):.3g}"
    ]
    recorded = manifest.get("data", {}).get("sha256")
    out = []
    if recorded is not None:
        import hashlib

        now = hashlib.sha256(data.x.contiguous().numpy().tobytes()).hexdigest()
        if now != recorded:
            out.append(
                Finding(
                    "data",
                    "warning",
                    "the data differ from those the run was trained on",
                    "restore the data file the run was trained on",
                )
            )
    off = float(std.max()) > 5 or float(std.min()) < 0.05 or float(mean.abs().max()) > 3
    if off:
        fix = (
            "set data.normalize = 'standardize' (samples are mapped back to your units)"
            if cfg.data.normalize == "none"
            else "rescale the data to roughly unit range"
        )
        message = f"{found[0]}: far from unit scale, so the noise schedule does not fit the data"
        out.append(Finding("data", "problem", message, fix))
    else:
        out.append(Finding("data", "ok", found[0]))
    return out, data


def check_schedule(cfg: Config, data: Dataset | None) -> list[Finding]:
    """x_T must be (nearly) pure noise, since sampling starts from N(0, I) (a continuous
    formulation: at its grid's top, from a Gaussian of the marginal's variance)."""
    if LOSSES[cfg.loss.name].continuous:
        return check_grid_top(cfg)
    schedule = build_schedule(cfg.schedule, warn=False)
    abar_T = float(schedule.alphas_cumprod[-1])
    var = 1.0 if data is None else float(data.x.double().var(0).mean())
    snr = abar_T / (1 - abar_T) * var
    message = f"terminal SNR {snr:.3g} (alpha_bar_T = {abar_T:.3g}, data variance {var:.3g})"
    fix = "raise schedule.T or schedule.beta_end, or use schedule.name = 'cosine'"
    if snr > SNR_PROBLEM:
        return [Finding("schedule", "problem", message + ": x_T still holds the data", fix)]
    if snr > SNR_WARNING:
        return [Finding("schedule", "warning", message + ": x_T holds a trace of the data", fix)]
    return [Finding("schedule", "ok", message)]


def check_grid_top(cfg: Config) -> list[Finding]:
    """The signal-to-noise ratio sigma_data^2 / sigma_max^2 where a continuous formulation's
    sampling starts (its default grid's top, or sample.sigma_max)."""
    from difflab.app.build import build_process, grid_range

    process = build_process(cfg, build_schedule(cfg.schedule, warn=False))
    sd = cfg.loss.sigma_data or 1.0
    top = grid_range(cfg, process)[1]
    snr = (sd / top) ** 2
    message = (
        f"{process.describe()}: sampling starts at noise level sigma_max = {top:.3g} "
        f"({top / sd:.3g} x sigma_data = {sd:.3g}), SNR there {snr:.3g}"
    )
    fix = f"raise sample.sigma_max (at most {process.sigma_bar_limit:.3g})"
    if snr > GRID_SNR_PROBLEM:
        return [Finding("schedule", "problem", message + ": the start still holds the data", fix)]
    if snr > GRID_SNR_WARNING:
        return [Finding("schedule", "warning", message + ": the start holds a trace of the data",
                        fix)]  # fmt: skip
    return [Finding("schedule", "ok", message)]


def check_checkpoint(cfg: Config, run_dir: Path) -> tuple[list[Finding], Path | None]:
    """The newest checkpoint: intact, trained with this config, loadable into its model."""
    found = ckpt.checkpoint_dirs(run_dir)
    if not found:
        return [Finding("checkpoint", "problem", "no checkpoint", "train the run")], None
    latest = found[-1]
    try:
        meta = ckpt.verify_checkpoint(latest)
    except ckpt.CheckpointError as err:
        fix = f"difflab train --resume {run_dir} falls back to the previous checkpoint"
        return [Finding("checkpoint", "problem", str(err), fix)], None
    diffs = model_config_differences(meta.get("config"), cfg)
    if diffs:
        message = f"{latest.name} was trained with another config: {'; '.join(diffs[:4])}"
        fix = "restore config.json to the values the checkpoint was trained with"
        return [Finding("checkpoint", "problem", message, fix)], None
    try:
        load_run(run_dir, use_ema=False, check_weights=False)  # weights: check_weights below
    except ckpt.CheckpointError as err:
        return [Finding("checkpoint", "problem", str(err), "use the run's own config.json")], None
    return [Finding("checkpoint", "ok", f"{latest.name} is intact and matches config.json")], latest


def ema_mean_age(steps: int, decay: float, *, warmup: bool = True) -> float:
    """Mean age in steps of the weights in an EMA after ``steps`` updates (ema.py's rule:
    d_n = min(decay, (1 + n) / (10 + n)) with warm-up); the initial weights count as age
    ``steps``."""
    if steps == 0:
        return 0.0
    n = np.arange(steps, dtype=np.float64)
    d = np.minimum(decay, (1 + n) / (10 + n)) if warmup else np.full(steps, decay)
    # weight of update i: (1 - d_i) * prod_{j > i} d_j; of the initial weights: prod_j d_j
    log_tail = np.concatenate([np.cumsum(np.log(d)[::-1])[::-1][1:], [0.0]])
    weights = (1 - d) * np.exp(log_tail)
    age = steps - 1 - n
    initial = math.exp(float(np.sum(np.log(d))))
    return float(np.sum(weights * age) + initial * steps)


def check_ema(cfg: Config, step: int) -> list[Finding]:
    """An EMA whose average reaches back over most of training samples from early weights."""
    decay = cfg.train.ema_decay
    age = ema_mean_age(step, decay)
    horizon = 1 / (1 - decay) if decay < 1 else math.inf
    message = (
        f"after {step} steps the EMA weights are on average {age:.0f} steps old "
        f"(train.ema_decay = {decay}, horizon {horizon:.0f} steps)"
    )
    if step and age > 0.25 * step:
        fix = (
            f"lower train.ema_decay (to about {max(0.0, 1 - 20 / step):.4g}), train longer, "
            "or sample the raw weights with --set sample.use_ema=false"
        )
        level = "problem" if cfg.sample.use_ema else "warning"
        return [Finding("ema", level, message + ": it still averages early weights", fix)]
    return [Finding("ema", "ok", message)]


def check_weights(latest: Path) -> list[Finding]:
    """Non-finite values in the live or EMA weights."""
    out = []
    for name in ("model", "ema"):
        bad = ckpt.nonfinite_weights(ckpt.load_weights(latest / f"{name}.safetensors"))
        if bad:
            message = (
                f"{sum(bad.values())} non-finite {name} weights (in {', '.join(list(bad)[:3])})"
            )
            fix = "resume from an earlier checkpoint with a lower train.lr and train.grad_clip > 0"
            out.append(Finding("weights", "problem", message, fix))
    return out or [Finding("weights", "ok", "all weights are finite")]


def check_preview(
    run_dir: Path, cfg: Config, data: Dataset | None, *, n: int, seed: int, progress: bool
) -> list[Finding]:
    """Sample with raw and EMA weights and judge each against the data, a noise floor and a
    Gaussian blob (``app/doctor_preview.py``); RUN_DIR/doctor/preview.png shows them."""
    if data is None:
        return []
    check_sampling_fits(cfg, data.shape, n, "cpu", copies=20)  # the blob is fitted to 20 n points
    sc = scales(cfg.data.name, data, n, seed=seed)
    n = sc.n
    panels, q, texts, run = [("data", sc.ref[:n])], {}, [], None
    for label, use_ema in (("raw", False), ("EMA", True)):
        run = load_run(run_dir, use_ema=use_ema)
        samples, _ = run.sample(n, seed=seed, progress=progress)
        q[label], text = judge(label, samples, sc)
        texts.append(text)
        flat = samples.reshape(n, -1)
        panels.append((f"{label} samples", flat[np.isfinite(flat).all(axis=1)]))
    message = (
        f"energy distance to the data: {', '.join(texts)}; two data draws {sc.floor:.3g}, "
        f"a Gaussian blob with the data's mean and covariance {sc.blob:.3g}"
    )
    message += f"; see {_write_preview(run_dir, panels, data)}"
    return [_samples_finding(run, q, sc, message)]


def _samples_finding(run, q: dict[str, float], sc: Scales, message: str) -> Finding:
    """The samples finding from the q of raw and EMA samples (0: like data, 1: like a blob)."""
    more = "act on the findings above; otherwise train longer (train.steps) or widen the model"
    if math.isinf(max(q.values())):
        return Finding("samples", "problem", message, nonfinite_cause(run))
    if not sc.informative:
        note = ": a Gaussian blob is as close at this n, so this check cannot judge; raise --n"
        return Finding("samples", "warning", message + note, "rerun with --n 2000")
    best = min(q.values())
    if best >= Q_PROBLEM:
        note = ": the samples are no better than a blob with the data's mean and covariance"
        return Finding("samples", "problem", message + note, more)
    if q["EMA"] >= Q_WARNING and q["EMA"] > 2 * q["raw"]:
        fix = "lower train.ema_decay or train longer (see the ema finding)"
        return Finding("samples", "warning", message + ": EMA samples lag the raw ones", fix)
    if best >= Q_WARNING:
        return Finding("samples", "warning", message + ": samples are far from the data", more)
    return Finding("samples", "ok", message)


def _write_preview(run_dir: Path, panels, data: Dataset) -> Path:
    """doctor/preview.png: scatter panels of data, raw and EMA samples (images: a grid of EMA
    samples), written atomically."""
    path = run_dir / "doctor" / "preview.png"
    with Outputs() as outputs:
        if data.is_image:
            from difflab.image_plots import plot_image_grid

            images = data.encode(panels[-1][1]).reshape(-1, *data.shape)[:64]
            plot_image_grid(images, outputs.stage(path), title="EMA samples")
        else:
            from difflab.plots import plot_panels

            plot_panels(panels, outputs.stage(path), "raw vs EMA samples")
    return path


def diagnose(
    run_dir: str | Path,
    *,
    n: int = 1000,
    seed: int = 0,
    preview: bool = True,
    progress: bool = False,
) -> list[Finding]:
    """Every check on a run directory, in order; returns the findings."""
    path = require_run_dir(run_dir)
    cfg = config_from_json(path / "config.json")
    manifest = read_manifest(path)
    audio = cfg.data.is_audio
    if audio:
        from difflab.app.doctor_audio import check_audio_data, check_audio_preview

        findings, data = check_audio_data(cfg, Finding)
    else:
        findings, data = check_data(cfg, manifest)
    findings += check_schedule(cfg, data)
    checked, latest = check_checkpoint(cfg, path)
    findings += checked
    if latest is None:
        return findings
    step = ckpt.read_meta(latest)["step"]
    findings += check_ema(cfg, step)
    findings += check_weights(latest)
    if preview and all(f.level != "problem" or f.check != "weights" for f in findings):
        check_folder_writable(path / "doctor", flag=f"doctor {path}")
        if audio:
            findings += check_audio_preview(path, Finding, seed=seed)
        else:
            findings += check_preview(path, cfg, data, n=n, seed=seed, progress=progress)
    return findings


def command(args: argparse.Namespace) -> int:
    """``difflab doctor``: exit code 1 when a finding is a problem."""
    check_count(args.n, least=2)
    check_seed(args.seed, "--seed")
    findings = diagnose(
        args.run_dir, n=args.n, seed=args.seed, preview=not args.no_preview, progress=not args.quiet
    )
    for line in format_findings(findings):
        print(line)
    save_findings(Path(args.run_dir), findings, preview=not args.no_preview)
    return 1 if any(f.level == "problem" for f in findings) else 0


def save_findings(run_dir: Path, findings: list[Finding], *, preview: bool) -> None:
    """``RUN_DIR/doctor.json``: the findings, the step of the newest checkpoint they are about,
    and whether the sample preview ran (``difflab report`` shows them)."""
    found = ckpt.checkpoint_dirs(run_dir)
    try:
        step = ckpt.read_meta(found[-1])["step"] if found else None
    except ckpt.CheckpointError:
        step = None
    record = {"step": step, "preview": preview, "findings": [vars(f) for f in findings]}
    try:
        ckpt.atomic_write_json(run_dir / "doctor.json", record)
    except OSError as err:
        warnings.warn(f"could not write {run_dir / 'doctor.json'}: {err}", stacklevel=2)
