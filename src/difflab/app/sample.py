"""``difflab sample``: draw samples from a trained run and write them where the user reads them.

The output paths are checked before sampling (an existing file is replaced only with
``--overwrite``); samples that are not all finite are never written: the command ends with a
one-line error naming the likely cause (:func:`require_finite`), exit code 2.

Under ``torchrun`` every rank runs the network on its share of the samples and rank 0 writes
them: the same samples as one process with the same seed (``app/ranks.py``).

Class-conditional runs: ``--class`` picks the classes (app/classes.py), ``--guidance`` the
classifier-free guidance scale; samples are written with their labels (an .npz's ``labels``, a
.csv's ``label`` column; an image grid gets one row per class).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from difflab.app.classes import DATA, check_guidance, not_conditional, parse_classes, sample_labels
from difflab.app.config import untrained_output
from difflab.app.outputs import Outputs, check_writable
from difflab.app.ranks import load_split_run, on_every_rank
from difflab.app.registry import DIFFUSION, LOSSES, SAMPLERS, VOCODER
from difflab.app.run import Run
from difflab.app.sections import check_seed
from difflab.data.files import check_output_path, save_vectors
from difflab.data.images import check_image_output_path, save_image_array, to_user_space

#: Image samples drawn into a --grid PNG at most.
GRID_MAX = 400


class NonFiniteSamplesError(ValueError):
    """A sampler produced NaN/inf values (user-facing, one line, names the likely cause)."""


def save_samples(
    run: Run, samples: np.ndarray, path: str | Path, labels: np.ndarray | None = None
) -> None:
    """Write samples where the user reads them: images as .npy/.npz integers (N, H, W[, C]) in
    0..levels-1, like the input data; vectors as .npy, .npz or .csv (N, D); ``labels`` (N,)
    with them (not in an .npy)."""
    if run.data.is_image:
        assert run.data.levels is not None
        save_image_array(path, to_user_space(samples, run.data.levels), labels)
    else:
        save_vectors(path, samples, labels)


def requested_labels(run: Run, args: argparse.Namespace, n: int) -> np.ndarray | None:
    """The classes ``--class`` asks for (default: the data's proportions) for a conditional
    run, None for another; checks ``--class`` and ``--guidance`` against the run."""
    if run.classes is None:
        for flag, value in (("--class", args.classes), ("--guidance", args.guidance)):
            if value is not None:
                raise not_conditional(flag)
        return None
    if args.guidance is not None:
        check_guidance(args.guidance)
        run.config = run.config.replace("sample", guidance=args.guidance)
    spec = parse_classes(args.classes, run.classes) if args.classes is not None else DATA
    return sample_labels(spec, run.classes, n)


def nonfinite_cause(run: Run) -> str:
    """The likely reason the run's sampler produced NaN/inf values, and what to change."""
    cfg = run.config
    config_file = run.run_dir / "config.json"
    untrained = untrained_output(cfg)
    if untrained:
        return untrained
    sampler = SAMPLERS[cfg.sample.sampler]
    if sampler.needs != DIFFUSION:
        step = cfg.sample.step_size if cfg.sample.step_size is not None else "its default"
        return (
            f"the Langevin step (sample.step_size = {step}) is too large for this score model; "
            f"set a smaller sample.step_size (e.g. a tenth) in {config_file}"
        )
    if "snr" in sampler.keys:
        return (
            f"the corrector's step (sample.snr = {cfg.sample.snr}) is too large; lower "
            f"sample.snr in {config_file} or use --sampler ddpm"
        )
    return (
        "the network's predictions blow up along the chain (an undertrained or diverged model, "
        f"or a schedule whose x_T is not noise): see `difflab doctor {run.run_dir}`"
    )


def nonfinite_rows(samples: np.ndarray) -> int:
    """How many samples (rows of the first axis) hold a NaN or inf."""
    flat = np.asarray(samples).reshape(len(samples), -1)
    return int((~np.isfinite(flat)).any(axis=1).sum())


def require_finite(run: Run, samples: np.ndarray) -> None:
    """A one-line NonFiniteSamplesError, naming the likely cause, if any sample is NaN/inf."""
    bad = nonfinite_rows(samples)
    if bad:
        raise NonFiniteSamplesError(
            f"{bad} of {len(samples)} samples are NaN/inf ({run.config.sample.sampler} diverged), "
            f"so nothing was written; likely cause: {nonfinite_cause(run)}"
        )


def check_sampler_flags(
    run: Run,
    flags: dict[str, object],
    samplers: list[str] | None = None,
    *,
    sampler_flag: str = "--sampler",
) -> None:
    """A one-line error for a flag none of ``samplers`` reads (default: the run's sampler),
    e.g. --eta with heun: ``flags`` maps a sample.* key to the flag's value (None: not
    given); the fix names ``sampler_flag``."""
    names = samplers or [run.config.sample.sampler]
    for key, value in flags.items():
        if value is not None and not any(key in SAMPLERS[name].keys for name in names):
            readers = [name for name, r in SAMPLERS.items() if key in r.keys]
            which, flag = " or ".join(readers), key.replace("_", "-")
            plural = "s" if len(readers) > 1 else ""
            raise ValueError(
                f"--{flag} applies to the {which} sampler{plural} only, not "
                f"{', '.join(map(repr, names))}; add {sampler_flag} {readers[0]} or drop --{flag}"
            )


def noise_flags(args: argparse.Namespace) -> dict[str, float | None]:
    """The sample.* values of the samplers' noise flags, --eta and --sde-eta (None: not
    given)."""
    return {"eta": args.eta, "sde_eta": args.sde_eta}


def check_count(n: int | None, flag: str = "--n", *, least: int = 1) -> None:
    """A one-line error for a sample count below ``least``."""
    if n is not None and n < least:
        raise ValueError(f"{flag} must be >= {least}, got {n}")


def level_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The sample.* values of the noise-level and EDM flags that were given."""
    given = {
        "grid": args.noise_grid, "sigma_min": args.sigma_min, "sigma_max": args.sigma_max,
        "rho": args.rho, "final_step": args.final_step, "s_churn": args.s_churn,
        "s_tmin": args.s_tmin, "s_tmax": args.s_tmax, "s_noise": args.s_noise,
    }  # fmt: skip
    return {k: v for k, v in given.items() if v is not None}


def check_tuned_flags(tuned, args: argparse.Namespace) -> None:
    """A tuned schedule fixes the sampler, K, the grid and its noise: other --sampler /
    --steps, or any grid flag or tuned noise flag, is an error rather than silently ignored."""
    for flag, value, want in (("sampler", args.sampler, tuned.sampler),
                              ("steps", args.steps, tuned.steps)):  # fmt: skip
        if value is not None and value != want:
            raise ValueError(
                f"the tuned schedule is for --sampler {tuned.sampler} --steps {tuned.steps}; "
                f"drop --{flag} or tune again: difflab tune-schedule RUN --{flag} {value}"
            )
    fixed = {"spacing": args.spacing, **level_overrides(args), **noise_flags(args)}
    fixed = {k: v for k, v in fixed.items() if v is not None}
    fixed = {k: v for k, v in fixed.items() if not k.startswith("s_") or k in tuned.noise}
    if fixed:
        flag = next(iter(fixed)).replace("_", "-").replace("grid", "noise-grid")
        raise ValueError(
            f"--{flag} is fixed by the tuned schedule (its levels and noise were tuned); drop "
            "it, or sample without --schedule tuned"
        )


def command(args: argparse.Namespace) -> int:
    """``difflab sample`` (under torchrun on every rank)."""
    return on_every_rank(lambda: _sample(args))


def _sample(args: argparse.Namespace) -> int:
    check_count(args.n)
    check_seed(args.seed, "--seed")
    run, main = load_split_run(args.run_dir, args.device)
    if LOSSES[run.config.loss.name].trains == VOCODER:
        from difflab.app.vocode import sample_audio

        if args.grid:
            raise ValueError("--grid draws image samples; audio runs write WAV files")
        if run.split is not None:
            raise ValueError(
                "audio runs vocode on one process: run difflab sample without torchrun"
            )
        if args.schedule is not None or level_overrides(args):
            raise ValueError(
                "--schedule and the noise-level grid flags do not apply to an audio run: it "
                "vocodes on its tuned K-step schedule (difflab tune-schedule RUN --steps K) or "
                "on the training schedule respaced to --steps"
            )
        return sample_audio(run, args)
    levels = level_overrides(args)
    run.override_sampling(
        sampler=args.sampler, steps=args.steps, spacing=args.spacing, schedule=args.schedule,
        **noise_flags(args), **levels,
    )  # fmt: skip
    tuned = run.tuned_schedule()
    if tuned is not None:
        check_tuned_flags(tuned, args)
        run.override_sampling(sampler=tuned.sampler)
    flags = {**noise_flags(args), **{k: v for k, v in levels.items() if k.startswith("s_")}}
    check_sampler_flags(run, flags)
    n = args.n or run.config.sample.n
    labels = requested_labels(run, args, n)
    default = "samples.npy" if labels is None else "samples.npz"
    out = Path(args.out) if args.out else run.run_dir / default
    check_writable(out, overwrite=args.overwrite)
    (check_image_output_path if run.data.is_image else check_output_path)(out)
    if args.grid and not run.data.is_image:
        raise ValueError("--grid draws image samples; this run's data are vectors (use plot)")
    grid = Path(args.grid) if args.grid else None
    if grid is not None:
        if grid.suffix.lower() != ".png":
            raise ValueError(f"--grid {grid}: give a .png file")
        check_writable(grid, flag="--grid", overwrite=args.overwrite)
    if args.compile:
        run.config = run.config.replace("sample", compile=True)
    samples, _ = run.sample(n, seed=args.seed, progress=main and not args.quiet, labels=labels)
    if not main:
        return 0
    require_finite(run, samples)
    keep = labels if out.suffix.lower() != ".npy" else None
    with Outputs() as outputs:
        save_samples(run, samples, outputs.stage(out), keep)
        grid_line = save_grid(samples, labels, outputs.stage(grid)) if grid is not None else ""
    if run.sample_compile_s is not None:
        print(f"sample.compile: the first network call took {run.sample_compile_s:.1f} s (warm-up)")
    note = (
        " (an .npy holds no labels: use .npz or .csv to keep them)"
        if labels is not None and keep is None
        else ""
    )
    print(f"wrote {n} samples to {out}{note}")
    if grid is not None:
        print(f"{grid_line} to {grid}")
    return 0


def save_grid(samples: np.ndarray, labels: np.ndarray | None, path: Path) -> str:
    """Write a PNG grid of image samples to ``path`` (a staged output): one row per class for
    several classes, else at most GRID_MAX samples; returns what was written, for the line
    printed after the outputs are committed."""
    from difflab.image_plots import class_rows, save_image_grid  # matplotlib takes seconds

    if labels is not None and len(np.unique(labels)) > 1:
        images, ncol = class_rows(samples, labels)
        save_image_grid(images, path, ncol=ncol)
        return f"wrote a grid of {len(np.unique(labels))} classes x {ncol} samples"
    save_image_grid(samples[:GRID_MAX], path)
    return f"wrote a grid of {min(len(samples), GRID_MAX)} samples"
