"""TensorBoard logging (``train.tensorboard = true``): the loss by quartile of t, the event file
against metrics.csv, a sample image per checkpoint, resume without duplicated steps, training
unchanged by logging, and the one-line error without tensorboard. Also each objective's
``t_fraction`` (where an example's noise level lies, the quartiles' key)."""

from __future__ import annotations

import csv
import shutil
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import tiny_args
from difflab.app.cli import main
from difflab.losses.base import LossOutput
from difflab.training.checkpoint import checkpoint_dirs, load_weights
from difflab.training.tensorboard import QUARTILES, TensorBoardLog, by_quartile
from oracles import FixedTimesteps


def read_events(log_dir) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def metrics_rows(run) -> list[dict[str, float]]:
    with open(run / "metrics.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def test_by_quartile_against_brute_force():
    gen = torch.Generator().manual_seed(0)
    T = 37  # quartile edges fall between steps
    t = torch.randint(0, T, (500,), generator=gen)
    values = torch.randn(500, generator=gen, dtype=torch.float64)
    sums, counts = by_quartile(values, t.float() / T)
    for k in range(QUARTILES):
        inside = (t * 4 >= k * T) & (t * 4 < (k + 1) * T)  # t / T in [k/4, (k+1)/4)
        assert counts[k] == int(inside.sum())
        torch.testing.assert_close(sums[k], values[inside].sum(), rtol=1e-12, atol=1e-12)
    assert int(counts.sum()) == 500


def test_window_means_by_quartile_are_logged(tmp_path):
    """Loss = t for T = 8 in two windows: quartile k holds t in {2k, 2k+1}, so its mean is the
    mean of those t drawn in the window (exact in float32 for these small integers)."""
    log = TensorBoardLog(tmp_path / "tb")
    gen = torch.Generator().manual_seed(1)
    expected: dict[int, list[float]] = {}
    for step in (10, 20):
        drawn = []
        for _ in range(3):
            t = torch.randint(0, 8, (16,), generator=gen)
            out = LossOutput(t.float(), {"mse": 2 * t.float()}, t.float() / 8)
            log.step(out, slice(0, 16))
            drawn.append(t)
        t = torch.cat(drawn).float()
        expected[step] = [float(t[(t // 2) == k].mean()) for k in range(4)]
        log.log({"step": step, "loss": float(t.mean()), "lr": 0.1})
    log.close()
    events = read_events(tmp_path / "tb")
    for k in range(4):
        got = {e.step: e.value for e in events.Scalars(f"loss_by_t/q{k}")}
        assert got == pytest.approx({s: v[k] for s, v in expected.items()}, rel=1e-6)
        twice = {e.step: e.value for e in events.Scalars(f"mse_by_t/q{k}")}
        assert twice == pytest.approx({s: 2 * v[k] for s, v in expected.items()}, rel=1e-6)
    assert [e.value for e in events.Scalars("train/lr")] == pytest.approx([0.1, 0.1])


def test_training_logs_scalars_and_samples(tmp_path):
    run = tmp_path / "tb"
    args = tiny_args("train.tensorboard=true", "train.checkpoint_every=15")
    assert main(["train", *args, "--out", str(run), "--quiet"]) == 0
    events = read_events(run / "tensorboard")
    rows = metrics_rows(run)
    for column, tag in (
        ("loss", "train/loss"),
        ("lr", "train/lr"),
        ("grad_norm", "train/grad_norm"),
    ):
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in logged] == [r["step"] for r in rows]
        assert [v for _, v in logged] == pytest.approx([r[column] for r in rows], rel=1e-6)
    for k in range(QUARTILES):  # antithetic t over 64 examples: every quartile every window
        assert len(events.Scalars(f"loss_by_t/q{k}")) == len(rows)
    images = events.Images("samples")
    assert [i.step for i in images] == [15, 30]  # one per checkpoint
    assert images[0].width > 100 and images[0].height > 100


def test_logging_does_not_change_training(tmp_path):
    """The figure is drawn from a copy of the network with its own generator: the weights are
    bitwise those of a run without TensorBoard."""
    weights = []
    for name, flag in (("off", "false"), ("on", "true")):
        run = tmp_path / name
        args = tiny_args(f"train.tensorboard={flag}", "train.checkpoint_every=10")
        assert main(["train", *args, "--out", str(run), "--quiet"]) == 0
        weights.append(load_weights(checkpoint_dirs(run)[-1] / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_resume_drops_the_events_after_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    args = tiny_args("train.tensorboard=true", "train.checkpoint_every=10", "train.steps=30")
    assert main(["train", *args, "--out", str(run), "--quiet"]) == 0
    for late in checkpoint_dirs(run)[1:]:  # as if killed after step 20's log, before its save
        shutil.rmtree(late)
    assert main(["train", "--resume", str(run), "--set", "train.steps=40", "--quiet"]) == 0
    rows = metrics_rows(run)
    logged = [(e.step, e.value) for e in read_events(run / "tensorboard").Scalars("train/loss")]
    assert [s for s, _ in logged] == [r["step"] for r in rows] == [10, 20, 30, 40]
    assert [v for _, v in logged] == pytest.approx([r["loss"] for r in rows], rel=1e-6)


def test_missing_tensorboard_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    out = tmp_path / "run"
    args = [*tiny_args("train.tensorboard=true"), "--out", str(out), "--quiet"]
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'difflab[tensorboard]'" in err
    assert not out.exists()
    assert main(["train", *tiny_args("train.tensorboard=true"), "--dry-run"]) == 2


def test_objectives_report_where_each_example_is(tmp_path):
    """t_fraction = t / T for the diffusion objectives (the 2015 objective's learned steps are
    t = 1..T-1), and for NCSN 0 at sigma_min up to (n-1)/n at sigma_max."""
    from difflab.losses.ddpm import HybridObjective, SimpleObjective
    from difflab.losses.score_matching import NCSNObjective, geometric_sigmas
    from difflab.losses.sohl_dickstein import SohlDicksteinObjective
    from difflab.losses.vlb import VLBObjective
    from difflab.schedules import NoiseSchedule
    from oracles import ZeroNet

    T = 10
    schedule = NoiseSchedule.from_name("cosine", T)
    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 3, 7, 9])
    for cls, kwargs, factor in (  # factor 2: a learned-variance half
        (SimpleObjective, {}, 1),
        (HybridObjective, {"variance": "learned_range"}, 2),
        (VLBObjective, {}, 1),
    ):
        objective = cls(schedule, FixedTimesteps(T, t), **kwargs)
        out = objective(ZeroNet(factor), x0, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out.t_fraction, t.float() / T, rtol=0, atol=0)
    k = torch.tensor([0, 3, 7, 8])  # the 2015 objective draws k in 0..T-2, t = k + 1
    objective = SohlDicksteinObjective(schedule, FixedTimesteps(T - 1, k))
    out = objective(ZeroNet(2), x0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.t_fraction, (k + 1).float() / T, rtol=0, atol=0)

    sigmas = geometric_sigmas(2.0, 0.01, 5)
    out = NCSNObjective(sigmas)(ZeroNet(1), x0, generator=torch.Generator().manual_seed(0))
    idx = torch.stack([torch.nonzero(sigmas == s)[0, 0] for s in out.terms["sigma"]])
    torch.testing.assert_close(out.t_fraction, (4 - idx).float() / 5, rtol=0, atol=0)


def test_a_failing_figure_is_a_warning(tmp_path):
    def broken(model):
        raise RuntimeError("sampler diverged")

    log = TensorBoardLog(tmp_path / "tb", sample_image=broken)
    with pytest.warns(UserWarning, match="no TensorBoard sample figure at step 5"):
        log.checkpoint(5, lambda: torch.nn.Linear(1, 1))
    log.close()
    assert read_events(tmp_path / "tb").Tags()["images"] == []


def test_continuous_objectives_report_where_each_example_is():
    """Flow matching: t_fraction is the drawn t (0 the data, 1 noise); VP: t rescaled from
    [t_min, t_max] to [0, 1]; EDM: the quantile Phi(z) of the drawn ln sigma = P_mean + P_std z
    among the training levels. Each replays the objective's first draw from a generator seeded
    alike; Phi from SciPy, to float64 rounding (1e-12)."""
    from scipy.stats import norm

    from difflab.continuous import VPProcess
    from difflab.losses.edm import EDMObjective
    from difflab.losses.flow import FlowMatchingObjective, flow_times
    from difflab.losses.vp_continuous import VPContinuousObjective
    from oracles import ZeroNet

    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    out = EDMObjective(sigma_data=0.5)(ZeroNet(1), x0, generator=torch.Generator().manual_seed(1))
    z = torch.randn(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(
        out.t_fraction, torch.from_numpy(norm.cdf(z.numpy())), atol=1e-12, rtol=0
    )

    flow = FlowMatchingObjective(sigma_data=1.0)
    out = flow(ZeroNet(1), x0, generator=torch.Generator().manual_seed(2))
    t = flow_times(64, flow.distribution, logit_mean=flow.logit_mean, logit_std=flow.logit_std,
                   generator=torch.Generator().manual_seed(2), device=x0.device)  # fmt: skip
    torch.testing.assert_close(out.t_fraction, t, atol=0, rtol=0)

    vp = VPContinuousObjective(process=VPProcess("linear"), sigma_data=1.0)
    out = vp(ZeroNet(1), x0, generator=torch.Generator().manual_seed(3))
    u = torch.rand(64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(out.t_fraction, u, atol=0, rtol=0)
