"""Multi-process training with ``torchrun`` and DistributedDataParallel.

``torchrun --nproc_per_node=N -m difflab train ...`` starts N processes with RANK, WORLD_SIZE
and LOCAL_RANK set; :func:`init_distributed` joins them (gloo on CPU, NCCL on GPU).

How a step is split so that N processes train exactly like one process with the same global
batch (up to floating-point summation order):

1. every rank holds the same seeded generator, so all ranks draw the same global batch of
   ``train.batch_size`` indices, the same timesteps and the same noise;
2. the objective sees the global batch, but the network runs only on this rank's contiguous
   shard of it (:class:`ShardedForward`); rows of other ranks are zeros with no gradient;
3. the trainer averages the per-example losses of its shard only, and DDP averages gradients
   over ranks: the mean over ranks of shard means is the global batch mean;
4. the timesteps of the global batch are one stratified (e.g. antithetic) draw spread across
   ranks; adaptive timestep samplers gather the losses of all shards
   (:meth:`TimestepSampler.set_shard`).

Only rank 0 writes files (run directory, metrics, checkpoints).

Sampling and evaluating (``torchrun ... -m difflab sample`` / ``evaluate``) split the network's
work instead of the data: every rank holds the whole batch of states and draws the same noise
from the same seeded generator, the network runs on this rank's rows only and the rows are
all-gathered after every call (:class:`RowSplit`, :class:`GatheredForward`). So N processes
compute what one process computes, sample for sample, and the seeds of one-process runs keep
their meaning; the per-step work besides the network (a few elementwise operations) is repeated
on every rank.

A rank that raises must not leave the others waiting in a collective (NCCL never notices a
dead peer; gloo does, but then reports only "Connection closed by peer"):
:func:`fail_together` publishes the first failure in the process group's store and every rank
prints it and exits.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` (1 for ordinary training)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of a batch of ``n`` rows."""
        return shard_slice(n, self.rank, self.world_size)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The model wrapped in DistributedDataParallel (itself when not distributed)."""
        if not self.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def any(self, flags: list[bool], device: torch.device) -> list[bool]:
        """Each flag OR-ed over all ranks (one collective)."""
        if not self.enabled:
            return flags
        values = torch.tensor([float(f) for f in flags], device=device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return [bool(v) for v in values.tolist()]

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """A scalar averaged over ranks."""
        if not self.enabled:
            return value
        value = value.detach().clone().float()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world_size

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and give every rank its result; a ValueError raised there
        is raised on every rank (so no rank waits forever for a failed one)."""
        if not self.enabled:
            return fn()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except ValueError as err:
                box[0] = ("error", err)
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise value
        return value


def shard_slice(n: int, rank: int, world_size: int) -> slice:
    """Rows ``[n * rank // W, n * (rank + 1) // W)`` of a batch of ``n``."""
    return slice(n * rank // world_size, n * (rank + 1) // world_size)


class ShardedForward(nn.Module):
    """Calls ``net`` on this rank's shard of the batch and pads the other rows with zeros.

    Every tensor argument with one row per example (t, a class-conditional network's labels)
    is sharded with x. Objectives return per-example losses, so the losses of this rank's rows
    are exactly those of the global batch; the trainer keeps only those.
    """

    def __init__(self, net: nn.Module, ctx: DistContext) -> None:
        super().__init__()
        self.net = net
        self.ctx = ctx

    def forward(self, x: torch.Tensor, t: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        part = self.ctx.shard(x.shape[0])

        def mine(value: Any) -> Any:
            rows = isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == x.shape[0]
            return value[part] if rows else value

        args = tuple(mine(a) for a in args)
        kwargs = {k: mine(v) for k, v in kwargs.items()}
        out = self.net(x[part], mine(t), *args, **kwargs)
        before = out.new_zeros((part.start, *out.shape[1:]))
        after = out.new_zeros((x.shape[0] - part.stop, *out.shape[1:]))
        return torch.cat([before, out, after])


class RowSplit:
    """Runs a function whose output rows depend only on the same rows of its inputs on this
    rank's contiguous rows of the batch, and all-gathers the result, so that every rank gets
    the whole batch's output (what one process would compute, up to floating-point
    differences between batch sizes)."""

    def __init__(self, ctx: DistContext) -> None:
        self.ctx = ctx

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with every tensor argument of the first one's length cut to this
        rank's rows; ``fn`` returns a tensor or a tuple of tensors, each gathered."""
        n = args[0].shape[0]
        part = self.ctx.shard(n)
        cut = [a[part] if isinstance(a, torch.Tensor) and a.dim() and a.shape[0] == n else a
               for a in args]  # fmt: skip
        out = fn(*cut)
        if isinstance(out, tuple):
            return tuple(gather_rows(o, n, self.ctx) for o in out)
        return gather_rows(out, n, self.ctx)


def gather_rows(part: torch.Tensor, n: int, ctx: DistContext) -> torch.Tensor:
    """The (n, ...) tensor whose rows ``ctx.shard(n)`` of rank r are rank r's ``part`` (one
    all-gather of the shards padded to the largest)."""
    if not ctx.enabled:
        return part
    bounds = [shard_slice(n, r, ctx.world_size) for r in range(ctx.world_size)]
    size = max(b.stop - b.start for b in bounds)
    padded = part.new_zeros((size, *part.shape[1:]))
    padded[: part.shape[0]] = part
    parts = [torch.empty_like(padded) for _ in bounds]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[: b.stop - b.start] for p, b in zip(parts, bounds)])


class GatheredForward(nn.Module):
    """``net`` run through a :class:`RowSplit`: each rank evaluates its rows of the batch, and
    every rank gets all of them (sampling and evaluating on several processes). Arguments of
    the batch's length are cut to the rank's rows (x, t or sigma); a t shared by the batch
    (stride 0) stays shared."""

    def __init__(self, net: nn.Module, split: RowSplit) -> None:
        super().__init__()
        self.net = net
        self.split = split

    def forward(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        return self.split(self.net, x, *args)


def init_distributed(device: str) -> tuple[DistContext, str]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK in the
    environment); returns the context and this rank's device. Without torchrun: one process.

    ``device`` is the configured device name ('cpu', 'cuda', 'cuda:N'): gloo on CPU, NCCL on
    GPU, where rank r uses GPU LOCAL_RANK.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(), device
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank, world_size, local_rank), device


def shutdown_distributed() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True unless this is a torchrun worker of rank > 0 (which must not print or write)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


#: Keys in the process group's store (a new store per torchrun attempt).
FAILURE_KEY, SEEN_KEY = "difflab/failure", "difflab/failure_seen"
POLL_S = 0.25  # how often every rank looks for a published failure
ACK_TIMEOUT_S = 10.0  # how long the failing rank waits for every other rank to have seen it
LINGER_S = 0.5  # the others exit this long after, so torchrun names the failing rank first


def fail_together(
    fn: Callable[[], T],
    *,
    user_errors: tuple[type[BaseException], ...] = (ValueError,),
    debug: bool = False,
) -> T:
    """Run ``fn`` (a whole command) on this rank; if it raises on any rank, every rank exits.

    Without torchrun (WORLD_SIZE unset or 1) this is ``fn()``. Under torchrun, the first rank to
    raise stores one line, ``difflab: error: <message> (rank R)``, in the process group's store;
    a daemon thread on every other rank polls for it (every POLL_S; their main thread may be
    blocked in a collective, where neither signals nor exceptions reach it), prints it and ends
    its process with ``os._exit``; the failing rank prints it, waits until all have seen it
    (at most ACK_TIMEOUT_S, ignoring torchrun's SIGTERM meanwhile) and exits first. Exit code
    2 for ``user_errors`` (one line, no traceback unless ``debug``; with ``debug`` the others
    also dump their stacks), 130 for KeyboardInterrupt, 1 otherwise (the failing rank also
    prints the traceback). Rank 0 may be ended while it writes a checkpoint: checkpoints are
    renamed into place when complete, so the newest complete one stays intact. A failure
    before the process group exists is raised as usual.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return fn()
    watch = _FailureWatch(int(os.environ["RANK"]), world_size, debug=debug)
    watch.thread.start()
    try:
        return fn()
    except (Exception, KeyboardInterrupt) as err:
        watch.fail(err, user_errors)  # returns only when there is no store to publish to
        raise
    finally:
        watch.stop()


def failure_line(
    err: BaseException, rank: int, user_errors: tuple[type[BaseException], ...]
) -> tuple[str, int]:
    """The line every rank prints for ``err`` raised on ``rank``, and the exit code."""
    text = str(err).splitlines()[0] if str(err) else ""
    if isinstance(err, KeyboardInterrupt):
        return f"difflab: interrupted (rank {rank})", 130
    if isinstance(err, user_errors):
        return f"difflab: error: {text or type(err).__name__} (rank {rank})", 2
    return f"difflab: error: {type(err).__name__}: {text} (rank {rank})", 1


class _FailureWatch:
    """The watchdog of :func:`fail_together`. ``lock`` is the right to end the process: the
    watchdog, a failing main thread and a finishing main thread (``stop``) take it."""

    def __init__(self, rank: int, world_size: int, *, debug: bool) -> None:
        self.rank, self.world_size, self.debug = rank, world_size, debug
        self.store: Any = None
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="difflab-watchdog", daemon=True)

    def _store(self) -> Any:
        if self.store is None and dist.is_available() and dist.is_initialized():
            self.store = dist.distributed_c10d._get_default_store()
        return self.store

    def _watch(self) -> None:
        while not self.stopped.wait(POLL_S):
            try:
                store = self._store()
                if store is None or not store.check([FAILURE_KEY]):
                    continue
                failure = json.loads(store.get(FAILURE_KEY))
            except Exception:  # the store is gone (its host exited): nothing left to watch
                return
            if failure["rank"] == self.rank or not self.lock.acquire(blocking=False):
                return  # this rank failed: its main thread reports
            if self.debug:
                faulthandler.dump_traceback(sys.stderr)  # where this rank was waiting
            self._follow(failure)

    def fail(self, err: BaseException, user_errors: tuple[type[BaseException], ...]) -> None:
        """Publish this rank's failure, or follow one published first; ends the process
        (returns only when there is no store)."""
        self.lock.acquire()  # if the watchdog holds it, it is ending the process already
        self.stopped.set()
        line, code = failure_line(err, self.rank, user_errors)
        mine = json.dumps({"rank": self.rank, "line": line, "code": code})
        first = _attempt(lambda: json.loads(self._store().compare_set(FAILURE_KEY, "", mine)))
        if first is None:
            self.lock.release()
            return
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # torchrun's, once a rank has exited
        if self.debug or (first["rank"] == self.rank and not isinstance(err, user_errors)):
            traceback.print_exception(err)
        if first["rank"] != self.rank:
            self._follow(first)
        _print(line)
        _wait_for(lambda: int(self.store.add(SEEN_KEY, 0)) >= self.world_size - 1, ACK_TIMEOUT_S)
        _exit(code)

    def _follow(self, failure: dict[str, Any]) -> NoReturn:
        """Another rank failed first: print its line, tell it, end this process after it
        (which exits once all have seen it; the store may go with it, so no more store calls)."""
        _print(failure["line"])
        _attempt(lambda: self.store.add(SEEN_KEY, 1))
        time.sleep(LINGER_S)
        _exit(failure["code"])

    def stop(self) -> None:
        """``fn`` returned: the watchdog must not end the process any more, and a rank failing
        later (rank 0 in its last checkpoint) must not wait for this one to see it."""
        self.lock.acquire()  # blocks for good if the watchdog is ending the process
        self.stopped.set()
        if self.store is not None:
            _attempt(lambda: self.store.add(SEEN_KEY, 1))


def _attempt(op: Callable[[], T]) -> T | None:
    """``op()``, or None when the store fails (no process group yet, or its host is gone)."""
    try:
        return op()
    except Exception:
        return None


def _wait_for(done: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``done`` every 20 ms until it holds, ``timeout_s`` passes or the store fails."""
    deadline = time.monotonic() + timeout_s
    while _attempt(done) is False and time.monotonic() < deadline:
        time.sleep(0.02)


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _exit(code: int) -> NoReturn:
    """End the process now: the main thread may be blocked in a collective, and tearing down
    the process group could block too."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream
            stream.flush()
    os._exit(code)
