"""The options of the ``difflab`` commands that draw from a trained run: ``sample``,
``vocode``, ``tune-schedule`` and ``bench-samplers``, and the sampler, noise-level-grid, class
and device options they share with ``evaluate`` (``app/cli.py`` builds the whole parser; this
module lives apart to keep that one short). No math here; help about names comes from the
registry.
"""

from __future__ import annotations

import argparse

from difflab.app import registry
from difflab.app.registry import DIFFUSION, LADDER, LOSSES, SAMPLERS, SCORE


def sample_parser(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="draw samples from a trained run",
        description="Draw samples from a run's newest checkpoint (EMA weights). Several "
        "processes: torchrun --nproc_per_node=N -m difflab sample RUN_DIR ... (each runs the "
        "network on its share; the same samples as one process). Class-conditional runs: "
        "--class picks the classes, --guidance the classifier-free guidance scale; the samples "
        "are written with their labels.",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument(
        "-n",
        "--n",
        type=int,
        help="number of samples (default: sample.n of the run); under torchrun write -n N "
        "(torchrun reads --n as its own --nnodes)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--out",
        help="output file, .npy, .npz or .csv (default: RUN_DIR/samples.npy, or samples.npz "
        "with a labels array for class-conditional runs); image runs write integer images "
        "(N, H, W[, C]) in 0..levels-1, like their input; audio runs vocode --n test clips into "
        "a folder of WAV files (default: RUN_DIR/samples)",
    )
    p.add_argument(
        "--grid", metavar="FILE.png", help="image runs: also write a PNG grid (a row per class)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out / --grid file (default: refuse, before sampling)",
    )
    _add_sampler_args(p)
    p.add_argument(
        "--steps",
        type=int,
        help="sampling steps K (discrete schedules: in [1, T], default all T; continuous: 18)",
    )
    _add_level_args(p)
    p.add_argument(
        "--schedule",
        help="grid (the default: --noise-grid / --spacing), tuned (RUN_DIR/tuned_schedule.json "
        "from `difflab tune-schedule`) or the path of a tuned schedule file",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="run the network through torch.compile (as sample.compile = true; a warm-up of "
        "seconds, worth it for many samples)",
    )
    add_device_arg(p)
    _add_class_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def vocode_parser(sub) -> None:
    p = sub.add_parser(
        "vocode",
        help="audio runs: re-synthesise a WAV/FLAC file from its own mel",
        description="Compute the input's log-mel with the run's analysis and turn it back into "
        "audio with the run's vocoder (EMA weights) in --steps iterations, on the run's tuned "
        "schedule of that length if `difflab tune-schedule` stored one, else on the training "
        "schedule respaced. An input at another sample rate is resampled to the run's (a note "
        "says so); the output is a 16-bit WAV at the run's rate, as long as the input.",
    )
    p.add_argument(
        "run_dir", help="an audio run directory (e.g. trained with configs/wavegrad.toml)"
    )
    p.add_argument("input", help="a WAV or FLAC file")
    p.add_argument("--out", required=True, help="the WAV file to write")
    p.add_argument("--steps", type=int, help="iterations K (default: sample.steps, else all T)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_sampler_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def tune_schedule_parser(sub) -> None:
    p = sub.add_parser(
        "tune-schedule",
        help="search the K noise levels of a sampler that minimise a held-out criterion",
        description="WaveGrad's schedule search, generalised: starting from the best fixed grid "
        "(karras, logsnr, time; every step spacing of a discrete run), a compass search over "
        "the K noise levels (and DDIM's eta, dpmpp2m_sde's sde_eta or EDM's s_churn) minimises "
        "a criterion on held-out data (toy: a fresh draw; file runs: --data; images: the "
        "validation split) with one fixed seed; "
        "the result is then checked on fresh seeds against an independent draw. Writes "
        "RUN_DIR/tuned_schedule.json; sample with `difflab sample RUN --schedule tuned`. "
        "Audio runs: the criterion is the log-mel distance of --clips validation clips vocoded "
        "with a fixed seed, the search WaveGrad's grid of betas m * 10^linspace(-6, -1, K) "
        "(--search mantissas, a coordinate search from the respaced training schedule, or "
        "--exhaustive) or the compass search over the noise levels (--search compass); the "
        "schedule is stored in RUN_DIR/schedules.json, where vocode, sample, evaluate and plot "
        "find it for K iterations.",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument("--steps", type=int, required=True, help="the number of steps K to tune")
    p.add_argument("--sampler", help="the sampler to tune for (default: sample.sampler of the run)")
    p.add_argument(
        "--criterion",
        help=f"{', '.join(f'{k} ({v.summary})' for k, v in registry.CRITERIA.items())}; "
        "audio runs: log_mel (log-mel distance of vocoded validation clips); "
        "default: the first that applies to the run's data",
    )
    p.add_argument(
        "--n",
        type=int,
        help="samples per evaluation (default 2000; 10,000 from --steps 10 on vector data, "
        "where 2000 is as noisy as the grids' differences)",
    )
    p.add_argument(
        "--budget", type=int, help="criterion evaluations of the compass search (default 150)"
    )
    p.add_argument("--seed", type=int, default=0, help="the search's sampling seed (default 0)")
    p.add_argument("--check-seeds", type=int, help="fresh seeds of the check (default 5)")
    p.add_argument("--data", help="held-out data, .npy/.npz/.csv (needed for file runs)")
    audio = p.add_argument_group("audio runs")
    audio.add_argument(
        "--search", choices=("mantissas", "compass"), help="WaveGrad's grid (default) or compass"
    )
    audio.add_argument("--clips", type=int, help="validation clips scored (default 4)")
    audio.add_argument("--mantissas", help="mantissas per step, comma-separated (default 1,2,5)")
    audio.add_argument("--passes", type=int, help="coordinate sweeps of the grid (default 2)")
    audio.add_argument("--exhaustive", action="store_true", help="score the whole grid instead")
    audio.add_argument("--quiet", action="store_true", help="do not list the schedules scored")


def bench_samplers_parser(sub) -> None:
    p = sub.add_parser(
        "bench-samplers",
        help="compare the samplers' quality and cost on a trained run",
        description="Each sampler at K in {5, 10, 20, 50, 100, 1000} (K <= T): network "
        "evaluations, wall time, and energy-distance and MMD ratios to their noise floors (toy "
        "data). Prints a table and writes RUN_DIR/bench_samplers.json and "
        "RUN_DIR/plots/bench_samplers.png.",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument(
        "--samplers",
        help="comma-separated samplers (default: "
        f"{','.join(registry.names(SAMPLERS, needs=DIFFUSION, grid=True, bench=True))})",
    )
    p.add_argument("--steps", help="comma-separated step counts K (default: 5,10,20,50,100,1000)")
    p.add_argument("--n", type=int, default=5000, help="samples per row (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--floor-draws", type=int, default=5, help="data draws for the noise floors (default 5)"
    )
    p.add_argument("--eta", type=float, help="DDIM's eta in [0, 1] (default: sample.eta)")
    _add_sde_eta(p)
    p.add_argument(
        "--spacing", help="step spacing: linspace, leading, trailing, quadratic (default: run's)"
    )
    _add_level_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_class_args(p, classes=False)

    p = sub.add_parser(
        "bench-guidance",
        help="class-conditional runs: accuracy against diversity over guidance scales",
        description="Samples at each classifier-free guidance scale s (default 0,1,2,3,4) in the "
        "data's class proportions: class accuracy (toy data: under the exact p(c | x); digits: "
        "the digits classifier), the worst class's, each class's spread relative to the data "
        "(diversity) and its energy-distance or Frechet ratio to the noise floor. Prints a table "
        "and writes RUN_DIR/bench_guidance.json, bench_guidance.csv and "
        "plots/bench_guidance.png.",
    )
    p.add_argument("run_dir", help="a class-conditional run directory")
    p.add_argument("--scales", help="comma-separated guidance scales (default: 0,1,2,3,4)")
    p.add_argument("--n", type=int, default=2000, help="samples per scale (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--floor-draws", type=int, default=5, help="data draws for the noise floors (default 5)"
    )
    _add_sampler_args(p)
    p.add_argument("--steps", type=int, help="sampling steps K in [1, T] (default: the run's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="cpu",
        help="where the network runs: cpu (default), cuda, cuda:N or auto; under torchrun each "
        "rank uses GPU LOCAL_RANK",
    )


def _sampler_help() -> str:
    """The --sampler help, from the registry: samplers by the kind of model they run."""
    diffusion = ", ".join(registry.names(SAMPLERS, needs=DIFFUSION))
    score = ", ".join(registry.names(SAMPLERS, needs=SCORE))
    ladder = ", ".join(registry.names(SAMPLERS, needs=LADDER))
    score_losses = ", ".join(registry.names(LOSSES, trains=SCORE))
    return (
        f"sampler (default: sample.sampler of the run): {diffusion} for diffusion models; "
        f"{score} for score models ({score_losses}), {ladder} for NCSN"
    )


def _add_class_args(p: argparse.ArgumentParser, *, classes: bool = True) -> None:
    """--class and --guidance (class-conditional runs)."""
    if classes:
        p.add_argument(
            "--class",
            dest="classes",
            metavar="CLASS",
            help="class-conditional runs: a class (index or name), a comma-separated list or "
            "'all' (an equal share of each), or 'data' (default: the training data's "
            "proportions); samples are written with their labels (.npz or .csv)",
        )
    p.add_argument(
        "--guidance",
        type=float,
        metavar="S",
        help="class-conditional runs: classifier-free guidance scale s >= 0, eps = eps_u + "
        "s (eps_c - eps_u): 1 conditional (default: sample.guidance), 0 unconditional, > 1 "
        "stronger classes (the paper's w = s - 1)",
    )


def _add_sde_eta(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sde-eta",
        type=float,
        help="dpmpp2m_sde only: its noise scale in [0, 1] (1 the reverse SDE, default; 0 the "
        "probability-flow ODE)",
    )


def _add_sampler_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampler", help=_sampler_help())
    eta_readers = " or ".join(n for n, r in SAMPLERS.items() if "eta" in r.keys)
    p.add_argument(
        "--eta",
        type=float,
        help=f"{eta_readers} only: noise scale in [0, 1] (0 deterministic, default)",
    )
    _add_sde_eta(p)
    p.add_argument(
        "--spacing",
        help="which K of the T steps: linspace (default), leading, trailing, quadratic",
    )


def _add_level_args(p: argparse.ArgumentParser) -> None:
    """Flags of the noise-level grid (sample.grid, sigma_min, ...) and of EDM's sampler."""
    p.add_argument(
        "--noise-grid",
        dest="noise_grid",
        help="noise-level grid: karras, logsnr, time (sample.grid; continuous runs: karras)",
    )
    p.add_argument("--sigma-min", type=float, help="the grid's smallest noise level")
    p.add_argument("--sigma-max", type=float, help="the grid's largest noise level")
    p.add_argument("--rho", type=float, help="the Karras grid's rho (default 7)")
    p.add_argument(
        "--final-step", help="denoise (a last step to the data, default) or none (stop there)"
    )
    p.add_argument("--s-churn", type=float, help="edm only: S_churn (default 0: deterministic)")
    p.add_argument("--s-tmin", type=float, help="edm only: the churn's lowest noise level")
    p.add_argument("--s-tmax", type=float, help="edm only: the churn's highest noise level")
    p.add_argument("--s-noise", type=float, help="edm only: S_noise (default 1)")
