"""A trained run loaded from its directory: config, schedule, network and data description.

``load_run(run_dir)`` needs no flags: everything comes from ``config.json``, ``manifest.json``
and the newest complete checkpoint. A class-conditional run knows its classes from the
manifest; it samples the training data's class proportions unless given labels.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from difflab.app.build import (
    build_denoiser,
    build_formulation,
    build_model,
    build_schedule,
    generate,
)
from difflab.app.classes import DATA, sample_labels
from difflab.app.config import Config
from difflab.app.config_files import config_from_dict, config_from_json
from difflab.app.resources import check_sampling_fits
from difflab.app.schedule_file import TunedSchedule, fingerprint, read_schedule, schedule_path
from difflab.choices import parse_enum
from difflab.compiled import compile_network
from difflab.data.dataset import Classes, Dataset
from difflab.denoiser import Denoiser
from difflab.reverse import Variance
from difflab.samplers import ChainResult
from difflab.samplers._chain import Record
from difflab.schedules import NoiseSchedule
from difflab.training import checkpoint as ckpt
from difflab.training.distributed import GatheredForward, RowSplit
from difflab.training.manifest import read_manifest


@dataclass
class Run:
    """Everything needed to sample from or evaluate a trained run.

    ``split``: under torchrun, how the network's rows are shared among the processes (each
    runs its rows, all get every row: training/distributed.py); None in one process.
    """

    run_dir: Path
    config: Config
    schedule: NoiseSchedule
    model: nn.Module
    data: Dataset
    step: int
    checkpoint: Path
    weights_file: str = "ema.safetensors"
    split: RowSplit | None = None
    _compiled: dict[str, nn.Module] = field(default_factory=dict, repr=False)

    @property
    def writes(self) -> bool:
        """True on the process that writes files and prints: rank 0, or the only process."""
        return self.split is None or self.split.ctx.is_main

    @property
    def device(self) -> torch.device:
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    @property
    def classes(self) -> Classes | None:
        """The classes of a class-conditional run (from its manifest), else None."""
        return self.data.classes if self.config.model.class_conditional else None

    def default_labels(self, n: int) -> np.ndarray | None:
        """Labels for ``n`` samples of a class-conditional run in the training data's class
        proportions (app/classes.py), or None for other runs."""
        classes = self.classes
        return None if classes is None else sample_labels(DATA, classes, n)

    def denoiser(
        self,
        *,
        clip: bool | None = None,
        split: bool = True,
        labels: torch.Tensor | None = None,
    ) -> Denoiser:
        """The run's diffusion network behind a Denoiser (diffusion runs). ``clip``: clamp
        x0_hat to [-1, 1] (default: ``sample.clip_x0``); likelihoods are those of the unclipped
        model, since clipping is a sampling option. ``split``: under torchrun, each process
        runs the network on its rows (False: on every row, for callers that split otherwise).
        ``labels`` (B,): the classes of a class-conditional run's batch (None: its
        unconditional model)."""
        cfg = self.config
        if clip is not None and clip != cfg.sample.clip_x0:
            cfg = cfg.replace("sample", clip_x0=clip)
        if labels is not None:
            labels = labels.to(self.device)
        net = self.model if not split else self._split(self.model)
        return build_denoiser(cfg, net, self.schedule, labels=labels)

    def _split(self, net: nn.Module) -> nn.Module:
        return net if self.split is None else GatheredForward(net, self.split)

    def sampling_network(self) -> nn.Module:
        """The network samplers call: compiled once if ``sample.compile`` (eager, with a
        warning, where torch.compile cannot work), and split across processes under torchrun."""
        net = self.model
        if self.config.sample.compile:
            if "sample" not in self._compiled:
                self._compiled["sample"] = compile_network(
                    self.model, self.device, what="sample.compile"
                )
            net = self._compiled["sample"]
        return self._split(net)

    @property
    def sample_compile_s(self) -> float | None:
        """The compiled sampling network's first call (its warm-up), if it ran compiled."""
        net = self._compiled.get("sample")
        return getattr(net, "warmup_s", None) if getattr(net, "compiled", False) else None

    def generator(self, seed: int) -> torch.Generator:
        """A generator seeded with ``seed`` on the run's device."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def override_sampling(self, **given: Any) -> None:
        """Use other ``sample.*`` values than the run's config says (sampler, steps, eta,
        spacing, grid, sigma_min, ..., schedule; validated; None keeps the config's value)."""
        changes = {k: v for k, v in given.items() if v is not None}
        if changes:
            self.config = self.config.replace("sample", **changes)

    def process_name(self) -> str:
        """The run's noise process, as schedule files record it."""
        formulation = build_formulation(self.config)
        if formulation is not None:
            return formulation.process.describe()
        return f"discrete-{self.config.schedule.name}(T={self.schedule.T})"

    def fingerprint(self) -> str:
        """What identifies the trained model (schedule_file.fingerprint)."""
        data = read_manifest(self.run_dir).get("data", {})
        return fingerprint(self.config, data.get("sha256"))

    def weights_sha256(self) -> str | None:
        """The SHA-256 of the weights file this run was loaded from (as its checkpoint
        recorded it)."""
        return (ckpt.read_meta(self.checkpoint).get("sha256") or {}).get(self.weights_file)

    def tuned_schedule(self) -> TunedSchedule | None:
        """The schedule ``sample.schedule`` names ("tuned" or a file), checked against this
        run; None for "grid"."""
        value = self.config.sample.schedule
        if value == "grid":
            return None
        path = schedule_path(self.run_dir, value)
        return read_schedule(
            path, config=self.config, run_fingerprint=self.fingerprint(),
            process=self.process_name(), step=self.step, weights=self.weights_sha256(),
        )  # fmt: skip

    def override_variance(self, variance: str) -> None:
        """Use another fixed variance (small or large) than the run was configured with: an
        eps/x0/v network defines the mean only, so either fixed choice is a valid model."""
        fixed = [Variance.SMALL.value, Variance.LARGE.value]
        parse_enum(Variance, variance, "variance")
        if variance not in fixed:
            raise ValueError(
                f"--variance {variance!r}: only a fixed variance (small or large) can be chosen "
                "at evaluation; a learned variance must be trained"
            )
        if Variance(self.config.model.variance).is_learned:
            raise ValueError(
                f"this run learned its variance (model.variance = "
                f"{self.config.model.variance!r}); omit --variance"
            )
        self.config = self.config.replace("model", variance=variance)

    def sample(
        self,
        n: int,
        *,
        seed: int | None = 0,
        record: Record = None,
        progress: bool = False,
        labels: np.ndarray | None = None,
        guidance: float | None = None,
    ) -> tuple[np.ndarray, ChainResult]:
        """``n`` samples in the user's data space (normalisation undone) and the chain result
        (model space, trajectory recorded at the labels ``record`` picks). Class-conditional
        runs: the samples' classes ``labels`` (n,) (default :meth:`default_labels`) and the
        guidance scale (default ``sample.guidance``)."""
        check_sampling_fits(self.config, self.data.shape, n, self.device)
        if self.classes is None and (labels is not None or guidance is not None):
            raise ValueError("labels and guidance need a class-conditional run")
        if self.classes is not None and labels is None:
            labels = self.default_labels(n)
        generator = self.generator(seed) if seed is not None else None
        self.model.eval()
        cfg, tuned = self.config, self.tuned_schedule()
        if tuned is not None:
            cfg = cfg.replace("sample", sampler=tuned.sampler, steps=tuned.steps, **tuned.noise)
        result = generate(
            cfg,
            self.sampling_network(),
            self.schedule,
            (n, *self.data.shape),
            generator=generator,
            record=record,
            progress=progress,
            grid=None if tuned is None else tuned.times,
            labels=None if labels is None else torch.as_tensor(labels, dtype=torch.long),
            guidance=guidance,
        )
        return self.data.decode(result.x.cpu().numpy()), result


def require_run_dir(run_dir: str | Path) -> Path:
    """The run directory as a Path, or a one-line error if it is not a run."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ckpt.CheckpointError(
            f"run directory {str(path)!r} does not exist; train one with `difflab train --out DIR`"
        )
    if not (path / "config.json").is_file():
        raise ckpt.CheckpointError(
            f"{str(path)!r} has no config.json: it is not a difflab run directory"
        )
    return path


#: Config keys that may change after training without changing the model: how it trains on,
#: samples and is evaluated, and where the data file lives (its values are checked by SHA-256).
FREE_AFTER_TRAINING = ("train.", "sample.", "evaluate.", "data.path:")


def recorded_config_differences(recorded: dict[str, Any] | None, cfg: Config) -> list[str]:
    """``section.key: recorded -> now`` between a checkpoint's recorded config (filled with
    today's defaults for keys added since it was written) and ``cfg``."""
    if not isinstance(recorded, dict):
        return []
    with contextlib.suppress(ValueError):  # else compare as written: the diffs name the keys
        recorded = config_from_dict(recorded).to_dict()
    return ckpt.config_differences(recorded, cfg.to_dict())


def model_config_differences(recorded: dict[str, Any] | None, cfg: Config) -> list[str]:
    """The differences that change the model (data, schedule, network, loss)."""
    diffs = recorded_config_differences(recorded, cfg)
    return [d for d in diffs if not d.startswith(FREE_AFTER_TRAINING)]


def check_matches_checkpoint(cfg: Config, meta: dict[str, Any], checkpoint: Path) -> None:
    """A one-line error when config.json describes another model than the checkpoint's own
    record of its training config (T, schedule or prediction edited by hand, say)."""
    diffs = model_config_differences(meta.get("config"), cfg)
    if diffs:
        run_dir = checkpoint.parent.parent
        raise ckpt.CheckpointError(
            f"{run_dir / 'config.json'} no longer matches checkpoint {checkpoint.name}, which "
            f"was trained with other values ({'; '.join(diffs[:3])}); restore config.json "
            "(the checkpoint's meta.json records the training config)"
        )


def load_run(
    run_dir: str | Path,
    *,
    use_ema: bool | None = None,
    device: str = "cpu",
    check_weights: bool = True,
) -> Run:
    """Load a run's newest complete checkpoint (EMA weights unless ``sample.use_ema`` is false),
    after checking that config.json, the manifest and the checkpoint agree and (unless
    ``check_weights`` is false) that the weights are finite."""
    path = require_run_dir(run_dir)
    config = config_from_json(path / "config.json")
    manifest = read_manifest(path)
    data = Dataset.from_info(manifest["data"])
    found = ckpt.checkpoint_dirs(path)
    if not found:
        raise ckpt.CheckpointError(f"{path} has no complete checkpoint; train it first")
    latest = found[-1]
    meta = ckpt.verify_checkpoint(latest)
    check_matches_checkpoint(config, meta, latest)
    schedule = build_schedule(config.schedule, warn=False)
    model = build_model(config, data.shape, num_classes=data.num_classes)
    use_ema = config.sample.use_ema if use_ema is None else use_ema
    weights_file = latest / ("ema.safetensors" if use_ema else "model.safetensors")
    weights = ckpt.load_weights(weights_file)
    if check_weights:
        ckpt.check_finite_weights(weights, weights_file)
    ckpt.load_model_weights(model, weights, weights_file)
    step = meta["step"]
    return Run(
        path, config, schedule.to(device), model.to(device).eval(), data, step, latest,
        weights_file.name,
    )  # fmt: skip
