"""Multi-process training: shards, the sharded forward pass, 2 processes (torchrun, gloo)
against 1 process with the same global batch (a toy run and a WaveGrad run), and a failing
rank ending every rank."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import safetensors.torch
import torch

from conftest import SRC
from difflab.app.cli import main
from difflab.models import MLP
from difflab.training import checkpoint as ckpt
from difflab.training.distributed import DistContext, ShardedForward, shard_slice
from difflab.training.metrics_log import read_metrics

RUN = [
    "train.steps=50",
    "train.batch_size=64",
    "train.log_every=10",
    "train.checkpoint_every=25",
    "schedule.T=50",
    "model.width=32",
    "model.depth=2",
    "data.name=moons",
    "data.n_train=500",
]


def _args() -> list[str]:
    return [a for item in RUN for a in ("--set", item)]


def test_shards_cover_the_batch_once():
    for n, world in [(64, 2), (10, 3), (7, 4)]:
        rows = [i for r in range(world) for i in range(n)[shard_slice(n, r, world)]]
        assert rows == list(range(n))


def test_sharded_forward_matches_the_full_forward_on_its_rows():
    torch.manual_seed(0)
    net = MLP(2, 2, width=16, depth=2)
    x, t = torch.randn(8, 2), torch.randint(0, 50, (8,))
    full = net(x, t)
    for rank in range(2):
        ctx = DistContext(rank=rank, world_size=2)
        out = ShardedForward(net, ctx)(x, t)
        mine = ctx.shard(8)
        assert out.shape == full.shape
        torch.testing.assert_close(out[mine], full[mine], rtol=0, atol=1e-6)
        others = torch.ones(8, dtype=torch.bool)
        others[mine] = False
        assert (out[others] == 0).all()


def test_two_processes_match_one_process(tmp_path):
    """torchrun with 2 CPU processes (gloo) and 1 process with the same global batch of 64
    draw the same batches, timesteps and noise; the weights differ only by float summation
    order (gradients averaged over two shard means instead of one batch mean): measured
    3e-8 after 50 steps, asserted below 1e-5."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", *_args(), "--out", str(one), "--quiet"]) == 0
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "difflab", "train", *_args(), "--out", str(two), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("run directory") == 1  # only rank 0 prints and writes
    a = safetensors.torch.load_file(str(ckpt.checkpoint_dirs(one)[-1] / "model.safetensors"))
    b = safetensors.torch.load_file(str(ckpt.checkpoint_dirs(two)[-1] / "model.safetensors"))
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"max |2 processes - 1 process| after 50 steps = {diff:.3g}")
    assert diff < 1e-5
    rows_one, rows_two = read_metrics(one), read_metrics(two)
    assert [r["step"] for r in rows_two] == [10, 20, 30, 40, 50]
    for r1, r2 in zip(rows_one, rows_two):
        assert abs(r1["loss"] - r2["loss"]) < 1e-5  # the logged loss is the global batch mean


def test_adaptive_sampler_records_the_losses_of_every_shard(tmp_path):
    """Two gloo processes, each holding valid losses only in its shard, record the whole
    batch's losses (TimestepSampler.update -> gather_shards)."""
    script = tmp_path / "gather.py"
    script.write_text(
        "import torch, torch.distributed as dist\n"
        "from difflab.timesteps import TimestepSampler\n"
        "class Recording(TimestepSampler):\n"
        "    def record(self, t, losses):\n"
        "        self.seen = losses\n"
        "dist.init_process_group('gloo')\n"
        "r = dist.get_rank()\n"
        "s = Recording(10)\n"
        "s.set_shard(r, 2)\n"
        "losses = torch.full((6,), -1.0)\n"
        "losses[3 * r : 3 * r + 3] = torch.arange(3 * r, 3 * r + 3, dtype=torch.float32)\n"
        "s.update(torch.zeros(6, dtype=torch.long), losses)\n"
        "assert s.seen.tolist() == [0, 1, 2, 3, 4, 5], s.seen\n"
        "dist.destroy_process_group()\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run([*cmd, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


# -- a failing rank ends every rank (training/distributed.py: fail_together) ------------------

#: Seconds from one rank's failure to every rank's exit. Measured about 1 s (the others poll the
#: store every 0.25 s, then exit 0.5 s after the failing rank). The failing rank keeps its
#: connections open until the others have seen the failure, or 10 s (ACK_TIMEOUT_S): a rank
#: that leaves within 5 s was ended by the watchdog, not by gloo noticing a dead peer (NCCL
#: never notices; the collective would wait for its 10-minute timeout).
EXIT_BOUND_S = 5.0

#: Trains through the library (Trainer, init_distributed) inside fail_together; the objective
#: raises on rank FAIL_RANK at its 5th step and writes the time of the failure to STAMP.
FAILING_SCRIPT = """
import errno, sys, time
from pathlib import Path
import torch
from difflab.app.config import TrainConfig
from difflab.data.dataset import Dataset
from difflab.losses.base import LossOutput
from difflab.models import MLP
from difflab.training.distributed import fail_together, init_distributed
from difflab.training.trainer import Trainer

FAIL_RANK, KIND, STAMP = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])


class Denoising:
    def __init__(self, rank):
        self.rank, self.calls = rank, 0

    def __call__(self, model, x0, *, generator=None):
        self.calls += 1
        if self.rank == FAIL_RANK and self.calls == 5:
            STAMP.write_text(repr(time.time()))
            if KIND == "value":
                raise ValueError("row 17 of this rank's data is not finite; fix the data file")
            raise OSError(errno.ENOSPC, "No space left on device")
        t = torch.randint(0, 10, (x0.shape[0],), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        scale = (t.float() + 1).unsqueeze(1) / 10
        return LossOutput(((model(x0 + scale * noise, t) - noise) ** 2).mean(dim=1), {})


def train():
    ctx, device = init_distributed("cpu")
    data = Dataset("gauss", torch.randn(256, 2, generator=torch.Generator().manual_seed(0)))
    cfg = TrainConfig(steps=200, batch_size=32, warmup_steps=0, log_every=10)
    net = MLP(2, 2, width=16, depth=2)
    Trainer(net, Denoising(ctx.rank), data, cfg, progress=False, dist_ctx=ctx).fit()
    return 0


sys.exit(fail_together(train))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_ranks(argv: list[str], logs: Path, world: int = 2) -> list[tuple[int, float, str]]:
    """Run ``world`` processes of ``argv`` with the environment torchrun gives its workers
    (without torchrun: rank 0 hosts the store, and no launcher signals the others); per rank
    the exit code, the time.time() it was seen to exit (polled every 20 ms) and its stderr."""
    port = _free_port()
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "PYTHONPATH": SRC,
            "OMP_NUM_THREADS": "1",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        env.pop("DIFFLAB_DEBUG", None)
        err = open(logs / f"stderr{rank}.txt", "w")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen(argv, env=env, stderr=err, stdout=subprocess.DEVNULL), err))
    ended: dict[int, float] = {}
    deadline = time.time() + 120
    while len(ended) < world and time.time() < deadline:
        for rank, (proc, _) in enumerate(procs):
            if rank not in ended and proc.poll() is not None:
                ended[rank] = time.time()
        time.sleep(0.02)
    for proc, err in procs:
        proc.kill()  # only those still running after 120 s: the test then fails
        proc.wait()
        err.close()
    assert len(ended) == world, "a rank was still running 120 s after the start"
    return [
        (proc.returncode, ended[r], (logs / f"stderr{r}.txt").read_text())
        for r, (proc, _) in enumerate(procs)
    ]


def _run_failing_script(tmp_path: Path, fail_rank: int, kind: str) -> tuple[list, float]:
    script, stamp = tmp_path / "failing.py", tmp_path / "failed_at"
    script.write_text(FAILING_SCRIPT)
    ranks = _start_ranks([sys.executable, str(script), str(fail_rank), kind, str(stamp)], tmp_path)
    assert stamp.exists(), ranks
    failed_at = float(stamp.read_text())
    print("exit after failure (s):", [round(ended - failed_at, 2) for _, ended, _ in ranks])
    return ranks, failed_at


def test_a_rank_failing_mid_training_ends_every_rank_with_its_message(tmp_path):
    """Rank 1's objective raises a ValueError at its 5th step while rank 0 waits in the step's
    collectives: both exit 2 within EXIT_BOUND_S, each printing rank 1's line, no traceback."""
    ranks, failed_at = _run_failing_script(tmp_path, 1, "value")
    line = "difflab: error: row 17 of this rank's data is not finite; fix the data file (rank 1)"
    for code, ended, stderr in ranks:
        assert code == 2, stderr
        assert ended - failed_at < EXIT_BOUND_S
        assert stderr.strip().splitlines() == [line]  # one line, no traceback


def test_rank_0_failing_ends_every_rank(tmp_path):
    """Rank 0 (which also hosts the store here) fails with an OSError: exit code 1 on both,
    the traceback on rank 0 only, rank 0's line on both."""
    ranks, failed_at = _run_failing_script(tmp_path, 0, "os")
    line = "difflab: error: OSError: [Errno 28] No space left on device (rank 0)"
    for rank, (code, ended, stderr) in enumerate(ranks):
        assert code == 1, stderr
        assert ended - failed_at < EXIT_BOUND_S
        assert stderr.strip().splitlines()[-1] == line
        assert ("Traceback" in stderr) == (rank == 0), stderr


def test_cli_rank_0_failing_to_write_a_checkpoint_ends_every_rank(tmp_path):
    """`torchrun -m difflab train --resume`: only rank 0 writes, and something (a file) occupies
    the path of the step-40 checkpoint, so rank 0 fails there while rank 1 goes on into step 41's
    collectives. Both ranks print rank 0's line (an operating-system error: one line, no
    traceback, exit 2), torchrun exits within EXIT_BOUND_S + 3 s of the failure (its own
    teardown), and the step-20 checkpoint stays the newest complete one."""
    run = tmp_path / "run"
    steps = ["--set", "train.steps=20", "--set", "train.checkpoint_every=20"]
    assert main(["train", *_args(), *steps, "--out", str(run), "--quiet"]) == 0
    (run / "checkpoints" / "step_00000040").write_text("not a checkpoint")
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    env.pop("DIFFLAB_DEBUG", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["--log-dir", str(tmp_path / "logs"), "--redirects", "3"]
    cmd += ["-m", "difflab", "train", "--resume", str(run), "--set", "train.steps=60", "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    ended = time.time()
    failed_at = (run / "metrics.csv").stat().st_mtime  # the step-40 row, logged just before
    print(f"torchrun exited {ended - failed_at:.2f} s after the failure")
    assert proc.returncode != 0
    assert ended - failed_at < EXIT_BOUND_S + 3
    logs = sorted((tmp_path / "logs").rglob("stderr.log"))
    assert len(logs) == 2, proc.stderr[-2000:]
    for log in logs:
        text = log.read_text()
        last = text.strip().splitlines()[-1]
        assert last.startswith("difflab: error: Not a directory: "), text
        assert "step_00000040; a part of that path is a file" in last, text
        assert last.endswith("(rank 0)") and "Traceback" not in text, text
    assert [p.name for p in ckpt.checkpoint_dirs(run)] == ["step_00000020"]


def test_an_audio_run_on_two_processes_matches_one_process(tmp_path):
    """WaveGrad (configs/wavegrad.toml, its log_sigma encoding) under torchrun: the mel is
    sharded with its batch rows and every level and noise draw is the global batch's, so 2
    gloo processes give the 1-process losses (measured within 1e-7) and weights (within
    1.1e-5 after 6 steps at lr 4e-3: float summation order)."""
    config = str(Path(__file__).resolve().parents[1] / "configs" / "wavegrad.toml")
    sets = ["data.n_clips=10", "data.clip_seconds=0.5", "data.segment_frames=8", "train.steps=6",
            "train.batch_size=4", "train.warmup_steps=1", "train.log_every=3"]  # fmt: skip
    args = [a for item in sets for a in ("--set", item)]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", config, *args, "--out", str(one), "--quiet"]) == 0
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "difflab", "train", config, *args, "--out", str(two), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = safetensors.torch.load_file(str(ckpt.checkpoint_dirs(one)[-1] / "model.safetensors"))
    b = safetensors.torch.load_file(str(ckpt.checkpoint_dirs(two)[-1] / "model.safetensors"))
    assert any(k.startswith("encoder.") for k in a)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    for r1, r2 in zip(read_metrics(one), read_metrics(two), strict=True):
        assert abs(r1["loss"] - r2["loss"]) < 1e-5
