"""A run directory read for the report: every file is optional and may be damaged.

Nothing here raises for a damaged file: what cannot be read becomes a visible note on the page
(``RunDir.notes``) and the section shows what is missing. Only a path that is not a run
directory at all is an error (one line, before anything is written).
"""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from difflab.app.registry import DATASETS
from difflab.app.run import require_run_dir
from difflab.training import checkpoint as ckpt


@dataclass
class MetricsTable:
    """The training log: ``rows`` (dicts of floats), the ``columns`` in file order, the file's
    name and a note when rows were cut off or damaged."""

    rows: list[dict[str, float]]
    columns: list[str]
    name: str | None
    note: str | None = None

    def column(self, key: str) -> list[float]:
        return [row.get(key, math.nan) for row in self.rows]


@dataclass
class RunDir:
    """One run of the report: ``label`` names it on the page, ``anchor`` prefixes its ids."""

    path: Path
    label: str
    anchor: str
    notes: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    claimed: set[str] = field(default_factory=set)  # files a section has shown

    def command(self, name: str, *args: str) -> str:
        """The shell command that computes something for this run."""
        return " ".join(["difflab", name, shlex.quote(str(self.path)), *args])

    def read_json(self, name: str, *, command: str | None = None) -> Any:
        """A JSON file of the run, or None when absent; a damaged one becomes a note."""
        path = self.path / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            fix = f"; run {command} again" if command else ""
            self.notes.append(("problem", f"{name} is unreadable ({_first_line(err)}){fix}"))
            return None

    @cached_property
    def config(self) -> dict[str, Any]:
        """config.json as written (an empty dict, with a note, when unreadable)."""
        value = self.read_json("config.json")
        if not isinstance(value, dict):
            if value is not None:
                self.notes.append(("problem", "config.json is not a JSON object"))
            return {}
        return value

    @cached_property
    def full_config(self) -> dict[str, Any]:
        """The config with today's defaults for keys added since the run was written (as
        written when it no longer validates), so runs of different versions compare."""
        from difflab.app.config_files import config_from_dict

        try:
            return config_from_dict(self.config).to_dict()
        except (ValueError, TypeError):
            return self.config

    @cached_property
    def manifest(self) -> dict[str, Any]:
        value = self.read_json("manifest.json")
        return value if isinstance(value, dict) else {}

    def get(self, key: str, default: Any = None) -> Any:
        """``section.key`` of the config."""
        section, name = key.split(".", 1)
        return self.full_config.get(section, {}).get(name, default)

    @cached_property
    def kind(self) -> str:
        """ "vector", "image" or "audio": the kind of data the run was trained on."""
        entry = DATASETS.get(str(self.get("data.name")))
        if entry is not None and entry.source in ("image", "audio"):
            return entry.source
        shape = self.manifest.get("data", {}).get("shape") or []
        return "image" if len(shape) == 3 else "vector"

    @cached_property
    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, directory) of the complete checkpoints, oldest first."""
        out = []
        for path in ckpt.checkpoint_dirs(self.path):
            try:
                out.append((int(ckpt.read_meta(path)["step"]), path))
            except (ValueError, KeyError, TypeError):
                self.notes.append(("problem", f"checkpoint {path.name}: meta.json is unreadable"))
        return out

    @property
    def step(self) -> int | None:
        """The newest checkpoint's step (None without a checkpoint)."""
        return self.checkpoints[-1][0] if self.checkpoints else None

    @cached_property
    def metrics(self) -> MetricsTable:
        fmt = self.get("train.log_format", "csv")
        names = [f"metrics.{fmt}"] + [f"metrics.{f}" for f in ("csv", "jsonl") if f != fmt]
        for name in names:
            path = self.path / name
            if path.is_file():
                try:
                    text = path.read_text()
                except (OSError, UnicodeDecodeError) as err:
                    note = f"{name} is unreadable ({_first_line(err)})"
                    return MetricsTable([], [], name, note)
                reader = read_csv_log if name.endswith(".csv") else read_jsonl_log
                return reader(text, name)
        return MetricsTable([], [], None)

    def stale(self, what: str, step: Any, command: str) -> None:
        """A note when ``what`` was computed at another step than the newest checkpoint."""
        if isinstance(step, int) and self.step is not None and step != self.step:
            self.notes.append(
                (
                    "warning",
                    f"{what} was computed at step {step}, but the newest checkpoint is step "
                    f"{self.step}: run {command} again",
                )
            )


def open_run(path: str | Path, label: str, index: int) -> RunDir:
    """A run directory for the report (a one-line error if ``path`` is not one)."""
    return RunDir(require_run_dir(path), label, f"run{index + 1}")


def read_csv_log(text: str, name: str) -> MetricsTable:
    """Rows of a CSV training log up to the last complete one: a row cut off mid-line (the
    file does not end in a newline) or a damaged row is left out and said so."""
    lines = text.split("\n")
    cut = bool(lines) and lines[-1] != ""  # the last line has no newline: cut off
    body = lines[:-1]
    if not body:
        return MetricsTable([], [], name, f"{name} is empty" if text else None)
    columns = next(csv.reader([body[0]]))
    rows, bad = [], 0
    for values in csv.reader(io.StringIO("\n".join(body[1:]))):
        row = _float_row(dict(zip(columns, values))) if len(values) == len(columns) else None
        if row is None:
            bad += 1
        else:
            rows.append(row)
    return MetricsTable(rows, columns, name, _log_note(name, rows, bad, cut))


def read_jsonl_log(text: str, name: str) -> MetricsTable:
    """Rows of a JSONL training log up to the last complete one (see :func:`read_csv_log`)."""
    lines = text.split("\n")
    cut = bool(lines) and lines[-1] != ""
    rows, bad, columns = [], 0, []
    for line in lines[:-1]:
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        row = _float_row(value) if isinstance(value, dict) else None
        if row is None:
            bad += 1
            continue
        rows.append(row)
        columns += [k for k in row if k not in columns]
    return MetricsTable(rows, columns, name, _log_note(name, rows, bad, cut))


def _float_row(values: dict[str, Any]) -> dict[str, float] | None:
    try:
        row = {k: float(v) for k, v in values.items() if k is not None}
    except (TypeError, ValueError):
        return None
    return row if "step" in row else None


def _log_note(name: str, rows: list[dict[str, float]], bad: int, cut: bool) -> str | None:
    parts = []
    last = f"step {rows[-1]['step']:.0f}" if rows else "no complete row"
    if cut:
        parts.append(f"{name} ends in a row cut off mid-line (left out); shown up to {last}")
    if bad:
        parts.append(f"{bad} damaged row{'s' if bad > 1 else ''} left out")
    return "; ".join(parts) or None


def _first_line(err: BaseException) -> str:
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__
