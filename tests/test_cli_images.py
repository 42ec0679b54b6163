"""Image runs end to end through the CLI: train on digits, sample to .npy and a PNG grid, plot
grids and trajectories, and the digits demo with its quality metric."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from safetensors.torch import save_file

from conftest import run_cli, tiny_args
from difflab import digits_quality as dq
from difflab.app.cli import main

DIGITS_TINY = (
    "data.name=digits",
    "model.name=unet",
    "model.channels=8",
    "schedule.T=20",
    "sample.clip_x0=true",
)


def test_digits_train_sample_grid_plot(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *tiny_args(*DIGITS_TINY), "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["levels"] == 17 and manifest["data"]["shape"] == [1, 8, 8]
    grid = tmp_path / "grid.png"
    npy = tmp_path / "s.npy"
    args = ["sample", str(out), "--n", "12", "--out", str(npy), "--grid", str(grid), "--quiet"]
    assert main(args) == 0
    samples = np.load(npy)
    assert samples.shape == (12, 8, 8) and samples.dtype == np.uint8 and samples.max() <= 16
    with Image.open(grid) as img:  # 4 x 3 cells of 8 pixels + 1 pixel gaps, enlarged 4x
        assert img.size == (4 * (4 * 9 + 1), 4 * (3 * 9 + 1))
    assert main(["plot", str(out), "--n", "16"]) == 0
    names = {p.name for p in (out / "plots").iterdir()}
    assert names == {"data.png", "forward.png", "reverse.png", "samples.png", "loss.png"}
    with Image.open(out / "plots" / "reverse.png") as img:  # 8 rows, 10 labelled times (T = 20)
        assert img.format == "PNG" and img.size[0] > img.size[1]  # titles: tests/test_plots.py
    capsys.readouterr()
    bad = main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "s.csv"), "--quiet"])
    assert bad == 2 and "name the file *.npy" in capsys.readouterr().err


def test_grid_on_a_vector_run_is_an_error(tiny_run, tmp_path):
    result = run_cli("sample", str(tiny_run), "--n", "4", "--grid", str(tmp_path / "g.png"))
    assert result.returncode == 2
    assert result.stderr.startswith("difflab: error: --grid draws image samples")
    assert result.stderr.count("\n") == 1


def test_digits_demo_reports_frechet_ratio_and_classes(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    quick = dq.train_classifier(epochs=2)
    save_file(
        {k: v.contiguous() for k, v in quick.state_dict().items()}, cache / dq.CLASSIFIER_FILE
    )
    monkeypatch.setenv("DIFFLAB_CACHE_DIR", str(cache))
    out = tmp_path / "demo"
    assert main(["demo", *tiny_args(*DIGITS_TINY), "--n", "40", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    fd = summary["metrics"]["frechet_distance"]
    assert fd["value"] > 0 and fd["floor"] > 0 and fd["ratio"] == fd["value"] / fd["floor"]
    assert sum(summary["metrics"]["class_histogram"]) == 40
    assert np.load(out / "samples.npy").shape == (40, 8, 8)
    text = capsys.readouterr().out
    assert "Frechet distance" in text and "predicted classes 0-9" in text

    assert main(["evaluate", str(out), "--n", "20"]) == 0
    result = json.loads((out / "evaluate.json").read_text())
    bpd = result["bits_per_dim"]
    assert bpd["n_images"] == 359 and bpd["levels"] == 17 and bpd["split"] == "test"
    assert bpd["bits_per_dim_bound"] > 0 and sum(result["sample_metrics"]["class_histogram"]) == 20
    assert "test bits/dim (bound)" in capsys.readouterr().out


def test_rgb_folder_run_samples_rgb_images(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        pixels = rng.integers(0, 256, (6 + i % 2, 6, 3), dtype=np.uint8)  # mixed sizes
        Image.fromarray(pixels).save(folder / f"{i}.png")
    out = tmp_path / "run"
    sets = tiny_args(
        "data.name=images",
        f"data.path={folder}",
        "data.image_size=8",
        "model.name=unet",
        "model.channels=8",
        "schedule.T=10",
        "train.steps=3",
    )
    assert main(["train", *sets, "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "manifest.json").read_text())["data"]["levels"] == 256
    assert main(["sample", str(out), "--n", "5", "--quiet"]) == 0
    samples = np.load(out / "samples.npy")
    assert samples.shape == (5, 8, 8, 3) and samples.dtype == np.uint8
