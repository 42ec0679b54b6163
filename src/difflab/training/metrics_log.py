"""The training log of a run: ``metrics.csv`` or ``metrics.jsonl``, one row every
``train.log_every`` steps; truncated on resume so a resumed run's rows follow on."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from difflab.training import checkpoint as ckpt


class MetricsLog:
    """Append rows to ``metrics.csv`` or ``metrics.jsonl`` in the run directory."""

    FIELDS = ("step", "loss", "lr", "grad_norm", "skipped", "steps_per_s", "elapsed_s")

    def __init__(self, run_dir: Path, fmt: str) -> None:
        self.path = run_dir / f"metrics.{fmt}"
        self.fmt = fmt
        new = not self.path.exists()
        self.handle = open(self.path, "a", newline="")  # noqa: SIM115 - closed by close()
        if fmt == "csv":
            self.writer = csv.DictWriter(self.handle, fieldnames=self.FIELDS)
            if new:
                self.writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self.writer.writerow(row)
        else:
            self.handle.write(json.dumps(row) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop logged rows after ``step`` (written after the checkpoint a run resumes from), so
    the resumed run's rows follow on without duplicates."""
    for path in (Path(run_dir) / "metrics.csv", Path(run_dir) / "metrics.jsonl"):
        if not path.exists():
            continue
        lines = path.read_text().splitlines(keepends=True)
        if path.suffix == ".csv":
            kept = lines[:1] + [ln for ln in lines[1:] if _row_step(ln.split(",")[0]) <= step]
        else:
            kept = [ln for ln in lines if _row_step(_json_step(ln)) <= step]
        ckpt.atomic_write_bytes(path, "".join(kept).encode())


def _json_step(line: str) -> Any:
    try:
        return json.loads(line).get("step")
    except (ValueError, AttributeError):
        return None


def _row_step(value: Any) -> float:
    """The step of a log row; a damaged row (cut off by a kill) sorts last and is dropped."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.inf


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """The training log of a run as a list of rows (CSV or JSONL, whichever exists)."""
    run_dir = Path(run_dir)
    if (run_dir / "metrics.csv").exists():
        with open(run_dir / "metrics.csv", newline="") as handle:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    if (run_dir / "metrics.jsonl").exists():
        return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return []
