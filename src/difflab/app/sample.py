"""``difflab sample``: draw samples from a trained run and write them where the user reads them."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from difflab.app.registry import SAMPLERS
from difflab.app.run import Run, load_run
from difflab.data.files import check_output_path, save_vectors
from difflab.data.images import check_image_output_path, save_image_array, to_user_space

#: Image samples drawn into a --grid PNG at most.
GRID_MAX = 400


def save_samples(run: Run, samples: np.ndarray, path: str | Path) -> None:
    """Write samples where the user reads them: images as .npy integers (N, H, W[, C]) in
    0..levels-1, like the input data; vectors as .npy or .csv (N, D)."""
    if run.data.is_image:
        assert run.data.levels is not None
        save_image_array(path, to_user_space(samples, run.data.levels))
    else:
        save_vectors(path, samples)


def check_sampler_flags(run: Run, flags: dict[str, object]) -> None:
    """A one-line error for a flag the run's sampler does not read (e.g. --eta with heun):
    ``flags`` maps a sample.* key to the flag's value (None: not given)."""
    sampler = run.config.sample.sampler
    row = SAMPLERS[sampler]
    for key, value in flags.items():
        if value is not None and key not in row.keys:
            readers = [name for name, r in SAMPLERS.items() if key in r.keys]
            which, flag = " or ".join(readers), key.replace("_", "-")
            raise ValueError(
                f"--{flag} applies to the {which} sampler{'s' if len(readers) > 1 else ''} only, "
                f"not {sampler!r}; add --sampler {readers[0]} or drop --{flag}"
            )


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
    fixed = {"spacing": args.spacing, **level_overrides(args), "eta": args.eta}
    fixed = {k: v for k, v in fixed.items() if v is not None}
    fixed = {k: v for k, v in fixed.items() if not k.startswith("s_") or k in tuned.noise}
    if fixed:
        flag = next(iter(fixed)).replace("_", "-").replace("grid", "noise-grid")
        raise ValueError(
            f"--{flag} is fixed by the tuned schedule (its levels and noise were tuned); drop "
            "it, or sample without --schedule tuned"
        )


def command(args: argparse.Namespace) -> int:
    """``difflab sample``."""
    from difflab.plots import save_image_grid  # matplotlib takes seconds to import

    if args.n is not None and args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    run = load_run(args.run_dir)
    out = Path(args.out) if args.out else run.run_dir / "samples.npy"
    (check_image_output_path if run.data.is_image else check_output_path)(out)
    if args.grid and not run.data.is_image:
        raise ValueError("--grid draws image samples; this run's data are vectors (use plot)")
    grid = Path(args.grid) if args.grid else None
    if grid is not None and (grid.suffix.lower() != ".png" or not grid.parent.is_dir()):
        raise ValueError(f"--grid {grid}: give a .png file in an existing directory")
    levels = level_overrides(args)
    run.override_sampling(
        sampler=args.sampler, steps=args.steps, eta=args.eta, spacing=args.spacing,
        schedule=args.schedule, **levels,
    )  # fmt: skip
    tuned = run.tuned_schedule()
    if tuned is not None:
        check_tuned_flags(tuned, args)
        run.override_sampling(sampler=tuned.sampler)
    flags = {"eta": args.eta, **{k: v for k, v in levels.items() if k.startswith("s_")}}
    check_sampler_flags(run, flags)
    n = args.n or run.config.sample.n
    samples, _ = run.sample(n, seed=args.seed, progress=not args.quiet)
    save_samples(run, samples, out)
    print(f"wrote {n} samples to {out}")
    if grid is not None:
        save_image_grid(samples[:GRID_MAX], grid)
        print(f"wrote a grid of {min(n, GRID_MAX)} samples to {grid}")
    return 0
