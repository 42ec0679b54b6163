"""The sections of a run's report, one row each in :data:`SECTIONS`: what it shows, which files it
claims, the command that computes it and the kinds of run it applies to. A section whose render
returns None shows as missing, with that command. A new artifact is one render and one row.

The renders of results (evaluate, bench-samplers, doctor) are in ``report/results.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from difflab.app.registry import DIFFUSION, LOSSES
from difflab.app.report import html
from difflab.app.report.charts import Series, line_chart
from difflab.app.report.html import Raw, esc, fmt
from difflab.app.report.media import render_audio, render_figures, render_images, wav_files
from difflab.app.report.results import render_bench, render_doctor, render_evaluate
from difflab.app.report.rundir import RunDir


@dataclass(frozen=True)
class Section:
    """``render(run)`` -> HTML, or None when the run has not computed it: the page then says
    ``what`` is missing and ``command(run)`` computes it. ``claims``: files it shows (the
    figures and files sections leave them out); ``applies``: the kinds of run it is for;
    ``needs_checkpoint``: its command needs a trained checkpoint."""

    key: str
    title: str
    render: Callable[[RunDir], str | None]
    what: str
    command: Callable[[RunDir], str | None]
    claims: tuple[str, ...] = ()
    applies: Callable[[RunDir], bool] = lambda run: True
    needs_checkpoint: bool = True


def render_section(run: RunDir, section: Section) -> Raw:
    """The section's HTML with its heading, or its 'missing' box."""
    body = section.render(run)
    if body is None:
        if section.needs_checkpoint and run.step is None:
            body = html.missing(section.what, None) + html.note(
                "It needs a checkpoint, and the run has none yet (training writes one every "
                "train.checkpoint_minutes and at the end).",
                "warning",
            )
        else:
            body = html.missing(section.what, section.command(run))
    return html.section(f"{run.anchor}-{section.key}", section.title, body)


def is_diffusion(run: RunDir) -> bool:
    entry = LOSSES.get(str(run.get("loss.name")))
    return entry is None or entry.trains == DIFFUSION


def is_continuous(run: RunDir) -> bool:
    """A continuous-time formulation (EDM, flow matching, VP-SDE): no schedule.T, no bound."""
    entry = LOSSES.get(str(run.get("loss.name")))
    return entry is not None and entry.continuous


# -- training curves -------------------------------------------------------------------------

#: Logged columns drawn as curves: (column, title, y label, log axis: None picks one).
CURVES = (
    ("loss", "training loss (mean over the logging window)", "loss", None),
    ("grad_norm", "gradient norm before clipping", "norm", None),
    ("lr", "learning rate", "lr", False),
    ("steps_per_s", "training speed", "steps / s", False),
    ("skipped", "skipped non-finite steps (cumulative)", "steps", False),
)
NOT_CURVES = ("step", "elapsed_s")


def render_training(run: RunDir) -> str | None:
    """Charts of every logged column against the step, and a summary table."""
    log = run.metrics
    out = html.note(log.note, "warning") if log.note else ""
    if not log.rows:
        return None if not log.note else out + html.missing("training log rows", None)
    steps = log.column("step")
    known = {c for c, *_ in CURVES}
    extra = [c for c in log.columns if c not in known and c not in NOT_CURVES]
    charts = [
        line_chart(
            [Series(run.label, steps, log.column(c))],
            title=title,
            x_label="step",
            y_label=label,
            log_y=log_y,
        )
        for c, title, label, log_y in CURVES
        if c in log.columns
    ] + [
        line_chart([Series(run.label, steps, log.column(c))], title=c, x_label="step")
        for c in extra
    ]
    return out + training_summary(run) + f'<div class="grid">{"".join(charts)}</div>'


def training_time(elapsed: list[float]) -> float:
    """Total training time from the log's elapsed_s column, which restarts at every resume:
    the sum of each segment's last value."""
    total, last = 0.0, 0.0
    for value in elapsed:
        if not np.isfinite(value):
            continue
        if value < last:
            total += last
        last = value
    return total + last


def training_summary(run: RunDir) -> str:
    log = run.metrics
    rows = log.rows
    loss = np.asarray(log.column("loss"), dtype=float)
    finite = np.isfinite(loss)
    best = int(np.nanargmin(np.where(finite, loss, np.nan))) if finite.any() else None
    speeds = np.asarray(log.column("steps_per_s"), dtype=float)
    speeds = speeds[np.isfinite(speeds)]
    target = run.get("train.steps")
    items = [
        ("logged rows", f"{len(rows)} (every {fmt(run.get('train.log_every'))} steps)"),
        ("last logged step", f"{fmt(rows[-1].get('step'))} of train.steps = {fmt(target)}"),
        ("final loss", fmt(rows[-1].get("loss"))),
        (
            "lowest loss",
            "—" if best is None else f"{fmt(loss[best])} at step {rows[best]['step']:.0f}",
        ),
        ("training time", f"{training_time(log.column('elapsed_s')):.1f} s"),
        ("median speed", f"{np.median(speeds):.1f} steps/s" if speeds.size else "—"),
        ("skipped non-finite steps", fmt(rows[-1].get("skipped"))),
    ]
    return html.table(["", ""], items, cls="kv")


# -- config, manifest, other files -----------------------------------------------------------


def render_config(run: RunDir) -> str | None:
    """The resolved config by section (values that differ from the defaults in bold; keys that
    config.json lacks are today's defaults), and the manifest."""
    from difflab.app.config import Config

    if not run.full_config:
        return None
    defaults = Config().to_dict()
    tables = []
    for section, values in run.full_config.items():
        written = run.config.get(section, {})
        rows = []
        for key, value in values.items():
            text = esc(fmt(value))
            if key not in written:
                text += ' <span class="dim">(not in config.json: today\'s default)</span>'
            elif value != defaults.get(section, {}).get(key, value):
                text = f'<span class="nondefault">{text}</span>'
            rows.append((f"{section}.{key}", Raw(text)))
        tables.append(html.table(["key", "value"], rows, cls="kv", caption=f"[{section}]"))
    out = html.note("Values in bold differ from the built-in defaults.")
    out += f'<div class="grid">{"".join(tables)}</div>'
    if run.manifest:
        rows = [(k, _short(v)) for k, v in flatten(run.manifest).items()]
        out += html.table(["manifest.json", ""], rows, cls="kv")
    return out


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``a.b`` keys."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _short(value: Any, limit: int = 8) -> str:
    if isinstance(value, list) and len(value) > limit:
        return fmt(value[:limit])[:-1] + f", ... ({len(value)} values)]"
    return fmt(value)


#: Files that a section shows or that are the run itself.
KNOWN_FILES = {
    "config.json",
    "manifest.json",
    "metrics.csv",
    "metrics.jsonl",
    "evaluate.json",
    "bound_terms.csv",
    "bench_samplers.json",
    "doctor.json",
    "report.html",
}


#: Files of a run directory looked at for "other files" at most.
MAX_FILES = 2000


def render_files(run: RunDir) -> str | None:
    """Results no section knows (JSON, CSV and PNG files, e.g. of newer commands), and a list
    of the run directory's files."""
    out = []
    for path in sorted(run.path.rglob("*"))[:MAX_FILES]:
        rel = path.relative_to(run.path).as_posix()
        if not path.is_file() or rel in KNOWN_FILES or rel in run.claimed:
            continue
        if rel.startswith(("checkpoints/", "plots/", "tensorboard/")) or path.name.startswith("."):
            continue
        if path.suffix == ".json":
            text = path.read_text(errors="replace")
            out.append(
                html.details(f"{rel} ({len(text)} bytes)", f"<pre>{esc(text[:20000])}</pre>")
            )
        elif path.suffix == ".png":
            out.append(html.image_file(path, rel, caption=rel))
    return "".join(out) + file_list(run)


def file_list(run: RunDir) -> Raw:
    rows = []
    for path in sorted(run.path.iterdir()):
        if path.is_dir():
            files = [p for p in path.rglob("*") if p.is_file()]
            size = sum(p.stat().st_size for p in files)
            rows.append((path.name + "/", f"{len(files)} files", _size(size)))
        else:
            rows.append((path.name, "", _size(path.stat().st_size)))
    return html.details(f"files in {run.path}", html.table(["name", "", "size"], rows))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _no_command(run: RunDir) -> None:
    return None


def _training_command(run: RunDir) -> str | None:
    return run.command("train --resume") if run.step is not None else None


#: The sections of every run's report, in page order.
SECTIONS = (
    Section(
        "training",
        "Training curves",
        render_training,
        "the training log (no logged rows yet)",
        _training_command,
        needs_checkpoint=False,
    ),
    Section(
        "images",
        "Image grids",
        render_images,
        "image grids of data and samples",
        lambda run: run.command("plot"),
        claims=("plots/data.png", "plots/samples.png", "samples.npy"),
        applies=lambda run: run.kind == "image",
    ),
    Section(
        "audio",
        "Audio",
        render_audio,
        "audio players (input vs vocoded)",
        lambda run: run.command("vocode"),
        applies=lambda run: run.kind == "audio" or bool(wav_files(run)),
    ),
    Section(
        "figures",
        "Figures",
        render_figures,
        "the figures of difflab plot",
        lambda run: run.command("plot"),
    ),
    Section(
        "evaluate",
        "Likelihood and sample quality",
        render_evaluate,
        "the likelihood (the bound, the ODE NLL or bits/dim) and sample metrics",
        lambda run: run.command("evaluate"),
        claims=("plots/bound_terms.png",),
        applies=is_diffusion,
    ),
    Section(
        "bench",
        "Samplers: quality vs cost",
        render_bench,
        "the sampler benchmark",
        lambda run: run.command("bench-samplers"),
        claims=("plots/bench_samplers.png",),
        applies=is_diffusion,
    ),
    Section(
        "doctor",
        "Doctor",
        render_doctor,
        "the health checks",
        lambda run: run.command("doctor"),
        claims=("doctor/preview.png",),
        needs_checkpoint=False,
    ),
    Section(
        "config",
        "Config and manifest",
        render_config,
        "a readable config.json",
        _no_command,
        needs_checkpoint=False,
    ),
    Section(
        "files", "Other files", render_files, "other files", _no_command, needs_checkpoint=False
    ),
)
