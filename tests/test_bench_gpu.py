"""benchmarks/bench_gpu.py runs where no GPU is: its --quick mode on the CPU (tiny models, one
timed call) goes through every part, 1 vs 2 processes included (torchrun, gloo), so the script
a lent GPU will run does not rot. Its numbers are not checked here: timings live in benchmarks."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_gpu


def test_bench_gpu_runs_every_part_on_cpu(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    argv = ["--device", "cpu", "--quick", "--models", "digits", "--nproc", "2"]
    result = bench_gpu.main([*argv, "--scratch", str(tmp_path), "--out", str(out)])
    assert out.is_file()
    training, sampling, processes = result["training"], result["sampling"], result["processes"]
    assert [(r["model"], r["precision"]) for r in training] == [
        ("digits", "float32"),
        ("digits", "bfloat16"),
    ]
    assert len(sampling) == 2 and all(r["images_per_s"] > 0 for r in sampling)
    assert all(r["steps_per_s"] > 0 and r["peak_memory_mb"] > 0 for r in training)
    (many,) = processes
    assert many["processes"] == 2 and many["batch"] == 2 * training[0]["batch"]
    assert many["scaling_efficiency"] > 0
    assert "scaling efficiency" in capsys.readouterr().out
