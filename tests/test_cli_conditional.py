"""Class-conditional runs end to end through the CLI: train, sample classes with guidance (labels
in every output format, per-class grid rows), evaluate, bench-samplers, bench-guidance and plot;
every bad input a one-line error with exit code 2 that writes nothing and keeps what was there."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import save_file

from conftest import tiny_args
from difflab import digits_quality as dq
from difflab.app.cli import main
from difflab.data.files import load_labelled_vectors

COND = ("data.name=8gaussians", "model.class_conditional=true", "evaluate.n_samples=160")


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cond") / "run"
    assert main(["train", *tiny_args(*COND), "--out", str(out), "--quiet"]) == 0
    return out


def _fails(capsys, argv: list[str], needle: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("difflab: error: ") and len(err.splitlines()) == 1, err
    assert needle in err, err


def test_manifest_records_the_classes(cond_run):
    data = json.loads((cond_run / "manifest.json").read_text())["data"]
    assert data["classes"]["names"] == [str(c) for c in range(8)]
    assert sum(data["classes"]["counts"]) == 500 and "labels_sha256" in data


@pytest.mark.parametrize(
    "classes, needle",
    [
        ("a list", "'classes' must be an object"),
        ({"names": [], "counts": []}, "'classes.names' must be a non-empty list"),
        ({"names": ["0", "1"], "counts": [3]}, "'classes.counts' must be a list of 2 integers"),
        ({"names": ["0"], "counts": [-1]}, "'classes.counts' must be a list of 1 integers"),
    ],
)
def test_a_damaged_classes_entry_is_a_one_line_error(cond_run, tmp_path, classes, needle):
    from difflab.training.checkpoint import CheckpointError
    from difflab.training.manifest import check_manifest

    manifest = json.loads((cond_run / "manifest.json").read_text())
    manifest["data"]["classes"] = classes
    with pytest.raises(CheckpointError, match="bad 'data' entry") as err:
        check_manifest(manifest, tmp_path / "manifest.json")
    assert needle in str(err.value) and "\n" not in str(err.value)
    del manifest["data"]["classes"]  # optional: unlabelled runs (and older ones) have none
    check_manifest(manifest, tmp_path / "manifest.json")


def test_sample_classes_with_their_labels(cond_run, tmp_path, capsys):
    out = tmp_path / "three.npz"
    assert main(["sample", str(cond_run), "--n", "24", "--class", "3", "--guidance", "2",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    with np.load(out) as z:
        assert z["x"].shape == (24, 2) and set(z["labels"].tolist()) == {3}
    csv = tmp_path / "all.csv"
    assert main(["sample", str(cond_run), "--n", "20", "--class", "all", "--out", str(csv),
                 "--quiet"]) == 0  # fmt: skip
    x, labels = load_labelled_vectors(csv)
    assert x.shape == (20, 2) and np.bincount(labels).tolist() == [3, 3, 3, 3, 2, 2, 2, 2]
    assert csv.read_text().splitlines()[0] == "x0,x1,label"  # issue 11's header, then the label
    assert main(["sample", str(cond_run), "--n", "9", "--class", "1,6", "--quiet"]) == 0
    with np.load(cond_run / "samples.npz") as z:  # the default output keeps the labels
        assert z["labels"].tolist() == [1] * 5 + [6] * 4
    npy = tmp_path / "plain.npy"
    assert main(["sample", str(cond_run), "--n", "8", "--out", str(npy), "--quiet"]) == 0
    assert np.load(npy).shape == (8, 2) and "an .npy holds no labels" in capsys.readouterr().out


def test_bad_class_and_guidance_flags(cond_run, tiny_run, tmp_path, capsys):
    keep = tmp_path / "keep.npz"
    np.savez(keep, x=np.ones((2, 2)))
    before = keep.read_bytes()
    run, out = str(cond_run), ["--out", str(keep), "--n", "4"]
    _fails(capsys, ["sample", run, "--class", "8", *out], "this run's classes are 0..7")
    _fails(capsys, ["sample", run, "--class", "dog", *out], "is not a class of this run")
    _fails(capsys, ["sample", run, "--guidance", "-1", *out], "finite number >= 0")
    _fails(capsys, ["sample", run, "--guidance", "nan", *out], "finite number >= 0")
    _fails(capsys, ["sample", run, "--guidance", "inf", *out], "finite number >= 0")
    assert keep.read_bytes() == before  # nothing written is lost
    npy = ["--out", str(tmp_path / "u.npy")]
    _fails(capsys, ["sample", str(tiny_run), "--class", "3", *npy], "needs a class-conditional run")
    _fails(capsys, ["sample", str(tiny_run), "--guidance", "2", *npy], "class-conditional run")
    _fails(capsys, ["bench-guidance", str(tiny_run)], "class-conditional run")
    assert not (tmp_path / "u.npy").exists()


def test_config_checks_for_conditioning(tmp_path, capsys):
    out = ["--out", str(tmp_path / "x"), "--quiet"]
    _fails(capsys, ["train", *tiny_args("train.label_dropout=0.3"), *out],
           "train.label_dropout = 0.3 is read only by class-conditional runs")  # fmt: skip
    _fails(capsys, ["train", *tiny_args("sample.guidance=2"), *out], "sample.guidance = 2.0")
    _fails(capsys, ["train", *tiny_args(*COND, "model.name=conditional_linear"), *out],
           "use model.name = 'mlp', 'unet'")  # fmt: skip
    _fails(capsys, ["train", *tiny_args(*COND, "data.name=swiss_roll"), *out], "has no classes")
    _fails(capsys, ["train", *tiny_args(*COND, "train.label_dropout=0", "sample.guidance=3"),
                    *out], "train.label_dropout = 0 never trains")  # fmt: skip
    assert not (tmp_path / "x").exists()


def test_a_run_without_its_unconditional_model_refuses_guidance(tmp_path, capsys):
    out = tmp_path / "p0"
    assert main(["train", *tiny_args(*COND, "train.label_dropout=0", "train.steps=5"),
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    _fails(capsys, ["sample", str(out), "--guidance", "2", "--n", "4"], "label_dropout = 0")
    assert main(["sample", str(out), "--n", "4", "--quiet"]) == 0  # guidance 1 works


def test_evaluate_bench_and_plot_report_class_metrics(cond_run, capsys):
    run = str(cond_run)
    assert main(["evaluate", run, "--n", "100"]) == 0
    result = json.loads((cond_run / "evaluate.json").read_text())
    assert result["conditional"] and np.isfinite(result["true_entropy_nats"])
    cond = result["sample_metrics"]["conditional"]
    assert len(cond["per_class"]) == 8 and 0 <= cond["accuracy"] <= 1
    assert {"energy_ratio", "neg_log_p", "true_entropy", "spread_ratio"} <= set(
        cond["per_class"][0]
    )
    assert "class accuracy of the samples" in capsys.readouterr().out

    assert main(["bench-samplers", run, "--samplers", "ddim", "--steps", "5", "--n", "80",
                 "--floor-draws", "1", "--guidance", "2", "--quiet"]) == 0  # fmt: skip
    row = json.loads((cond_run / "bench_samplers.json").read_text())["rows"][0]
    assert row["guidance"] == 2.0 and row["passes"] == 2 and 0 <= row["accuracy"] <= 1

    assert main(["bench-guidance", run, "--scales", "0,1,3", "--n", "80", "--sampler", "ddim",
                 "--steps", "5", "--floor-draws", "1", "--quiet"]) == 0  # fmt: skip
    table = (cond_run / "bench_guidance.csv").read_text().splitlines()
    assert table[0].startswith("guidance,accuracy,min_class_accuracy,mean_spread_ratio")
    assert [line.split(",")[0] for line in table[1:]] == ["0", "1", "3"]
    assert (cond_run / "plots" / "bench_guidance.png").is_file()
    _fails(capsys, ["bench-guidance", run, "--scales", "1,-2"], "finite number >= 0")

    assert main(["plot", run, "--n", "80"]) == 0
    names = {p.name for p in (cond_run / "plots").iterdir()}
    assert {"samples_by_class.png", "guidance.png"} <= names


def test_digits_classes_in_grid_rows_and_class_metrics(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    quick = dq.train_classifier(epochs=2)
    save_file(
        {k: v.contiguous() for k, v in quick.state_dict().items()}, cache / dq.CLASSIFIER_FILE
    )
    monkeypatch.setenv("DIFFLAB_CACHE_DIR", str(cache))
    out = tmp_path / "digits"
    digits = ("data.name=digits", "model.name=unet", "model.channels=8", "schedule.T=10",
              "sample.clip_x0=true", "model.class_conditional=true", "train.steps=5")  # fmt: skip
    assert main(["train", *tiny_args(*digits), "--out", str(out), "--quiet"]) == 0
    grid, npz = tmp_path / "g.png", tmp_path / "d.npz"
    assert main(["sample", str(out), "--n", "30", "--class", "all", "--guidance", "2",
                 "--out", str(npz), "--grid", str(grid), "--quiet"]) == 0  # fmt: skip
    with np.load(npz) as z:
        assert z["x"].shape == (30, 8, 8) and np.bincount(z["labels"]).tolist() == [3] * 10
    with Image.open(grid) as img:  # a row per class: 10 rows of 3 cells, enlarged 4x
        assert img.size == (4 * (3 * 9 + 1), 4 * (10 * 9 + 1))
    assert main(["evaluate", str(out), "--n", "40"]) == 0
    result = json.loads((out / "evaluate.json").read_text())
    assert result["bits_per_dim"]["conditional"]
    cond = result["sample_metrics"]["conditional"]
    assert len(cond["per_class"]) == 10 and "frechet_ratio" in cond["per_class"][0]
    assert 0 <= cond["accuracy"] <= 1 and cond["classifier_test_accuracy"] > 0.5
    assert main(["bench-samplers", str(out), "--samplers", "ddim", "--steps", "5", "--n", "30",
                 "--floor-draws", "1"]) == 0  # fmt: skip
    row = json.loads((out / "bench_samplers.json").read_text())["rows"][0]
    assert row["frechet_ratio"] > 0 and "max_class_frechet_ratio" in row and "accuracy" in row
    assert main(["plot", str(out), "--n", "16"]) == 0
    with Image.open(out / "plots" / "guidance.png") as img:  # 4 scales x 8 + 3 gaps, 10 rows
        assert img.size == (4 * (35 * 9 + 1), 4 * (10 * 9 + 1))


def test_bad_label_files_stop_training_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "nan.csv").write_text("a,b,label\n1,2,0\n3,4,nan\n5,6,1\n")
    (tmp_path / "word.csv").write_text("a,b,label\n1,2,0\n3,4,one\n5,6,1\n")
    np.savez(tmp_path / "short.npz", x=np.ones((6, 2)), labels=np.zeros(4))
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "b").mkdir()
    for i in range(3):
        Image.fromarray(np.full((4, 4), 50 * i, dtype=np.uint8)).save(
            tmp_path / "imgs" / "a" / f"{i}.png"
        )
    cases = [
        (["data.name=file", f"data.path={tmp_path / 'nan.csv'}"], "is NaN/inf"),
        (["data.name=file", f"data.path={tmp_path / 'word.csv'}"], "label 'one' is not a class"),
        (["data.name=file", f"data.path={tmp_path / 'short.npz'}"], "one class label per example"),
        (["data.name=images", f"data.path={tmp_path / 'imgs'}", "model.name=unet"],
         "b: the class folder holds no images"),
    ]  # fmt: skip
    for extra, needle in cases:
        out = tmp_path / "run"
        args = tiny_args("model.class_conditional=true", *extra)
        _fails(capsys, ["train", *args, "--out", str(out), "--quiet"], needle)
        assert not out.exists()
