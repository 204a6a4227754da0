"""Data-parallel training over several processes (``torchrun --nproc-per-node N -m ganforge train ...``).

The recipe does not change with the number of processes: ``train.batch_size`` stays the *global* batch and
each of the N ranks computes ``batch_size / N`` of it. Every rank draws the same random stream as a single
process would: the data permutation and everything a family's ``draw`` makes for the global batch (real
images with classic augmentation, latents, labels); each takes its own rows (``shard_batch``), so the
inputs a run sees are exactly those of a one-process run, whatever N. After each
backward pass the gradients of the network whose optimiser steps in that phase, and only those, are
averaged over ranks (``all_reduce_grads``: one flat buffer per step, as stylegan2-ada-pytorch does instead
of wrapping G and D in DistributedDataParallel, whose reducer expects one forward per backward and fixed
trainable parameters, while a GAN step runs D twice and freezes it in G steps); the network a phase only
reads (D in a G step) has no gradients to send, so nothing of it is synchronised (DDP's ``no_sync``).
Since every rank starts from the same seed and applies the same averaged update, G, D and G_ema stay
identical on every rank, with no broadcast of weights.

What is per rank: randomness inside the networks and the losses (dropout masks, DiffAugment parameters,
the gradient-penalty interpolation) is drawn from the same stream on each rank, so rank r's
k-th sample gets the same draw as rank 0's k-th sample (different images, same draw); a batch-norm and
dropout-free run is therefore equal to one process on the same global batch, up to float summation order.
Batch norm: on CUDA every BatchNorm becomes SyncBatchNorm (statistics over the global batch). On CPU,
where SyncBatchNorm is not available, each rank normalises its share with its own batch statistics and
the running statistics follow rank 0's (broadcast after every iteration, as DDP's ``broadcast_buffers``
does), so the ranks stay identical and a checkpoint is the same from every rank. Likewise a loss that is
not a mean over samples (feature matching's squared distance of batch-mean features, RaGAN's relativistic
average) is computed on each rank's share and then averaged, which is close to, not equal to, its value
on the global batch.

Rank 0 alone writes (checkpoints, grids, metrics, the exported generator); statistics are averaged over
ranks before they are logged. Reference: PyTorch DDP (Li et al., VLDB 2020); stylegan2-ada-pytorch
``training/training_loop.py`` (per-GPU share of a global batch, rank-0 snapshots).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ganforge.errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place among the ranks; ``World()`` is a plain single-process run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:  # the rank that writes files and prints
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


def current() -> World:
    """The process group this process belongs to (initialised by ``init_from_env`` or by a caller)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def init_from_env(timeout_s: float = 1800) -> World:
    """Join the process group that ``torchrun`` describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR...).

    A plain ``ganforge train`` (no WORLD_SIZE, or 1) stays a single process. NCCL on CUDA, gloo on CPU;
    each rank uses GPU LOCAL_RANK. A rank that dies makes torchrun stop the others; ``timeout_s`` bounds
    how long a collective waits for a rank that hangs instead.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)  # torch.device("cuda") is this rank's GPU from here on
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s))
    return current()


def shutdown() -> None:
    """Leave the process group (at the end of a torchrun rank), so the run ends without NCCL/gloo warnings. The
    ranks meet first: a rank that tears gloo down while rank 0 still writes the run's files was seen to abort
    ("terminate called without an active exception", exit -6) after a finished run."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def launch_command(nproc: int, argv: list[str]) -> list[str]:
    """``ganforge ARGS --nproc N`` -> the torchrun command that runs ``ganforge ARGS`` on N local processes.

    ``--standalone``: a rendezvous on this machine only (a free local port); for several nodes use torchrun
    directly, e.g. ``torchrun --nnodes 2 --nproc-per-node 8 --rdzv-endpoint HOST:29500 -m ganforge train ...``.
    """
    args, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            args.append(a)
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "--",  # ganforge's own options follow: torchrun must not read them (argparse takes `--n` for `--nnodes`)
        "ganforge",
        *args,
    ]


def check_batch(batch_size: int, world: World) -> None:
    if batch_size % world.size:
        raise ConfigError(
            f"train.batch_size={batch_size} cannot be split over {world.size} processes (it is the global batch, "
            f"each rank takes batch_size/{world.size}); use a multiple of {world.size}."
        )


def shard(x: torch.Tensor, world: World) -> torch.Tensor:
    """This rank's contiguous slice of a global batch along dim 0: rows [r*B/N, (r+1)*B/N)."""
    if not world.parallel:
        return x
    n = x.shape[0] // world.size
    return x[world.rank * n : (world.rank + 1) * n]


def shard_batch(batch: Any, global_batch: int, world: World) -> Any:
    """This rank's share of what a family's ``draw`` returned for the global batch: every tensor whose
    leading dimension is the global batch size is sliced (``shard``); anything else (None, per-batch
    constants) is kept. ``batch`` is a dataclass, a dict, a tuple or a tensor."""
    if not world.parallel:
        return batch

    def cut(v: Any) -> Any:
        return shard(v, world) if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == global_batch else v

    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return dataclasses.replace(
            batch, **{f.name: cut(getattr(batch, f.name)) for f in dataclasses.fields(batch) if f.init}
        )
    if isinstance(batch, dict):
        return {k: cut(v) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return type(batch)(*map(cut, batch)) if hasattr(batch, "_fields") else tuple(map(cut, batch))
    return cut(batch)


def all_reduce_grads(params: Any, world: World) -> None:
    """Average the gradients of ``params`` (an optimiser's, or a module's) over ranks, in one collective.

    Every rank runs the same code, so a parameter without a gradient has none on every rank."""
    if not world.parallel:
        return
    if isinstance(params, torch.optim.Optimizer):
        params = [p for group in params.param_groups for p in group["params"]]
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # one buffer: one round trip instead of one per tensor
    dist.all_reduce(flat)
    flat.div_(world.size)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_ranks(values: dict[str, float], world: World) -> dict[str, float]:
    """Per-tick statistics (means of each rank's share) -> means over the global batch (equal shares)."""
    if not world.parallel or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return {k: v / world.size for k, v in zip(keys, t.cpu().tolist())}


def broadcast_buffers(modules: list[nn.Module], world: World) -> None:
    """Rank 0's buffers (batch-norm running statistics) to every rank; weights need no broadcast. Not needed
    with NCCL: there every BatchNorm is a SyncBatchNorm, whose statistics are the same on every rank."""
    if not world.parallel or dist.get_backend() == "nccl":
        return
    for module in modules:
        for buf in module.buffers():
            dist.broadcast(buf, src=0)


def sync_batchnorm(modules: list[nn.Module], device: torch.device, world: World) -> None:
    """SyncBatchNorm on CUDA (statistics over the global batch); unchanged on CPU (see the module notes).

    In place: ``convert_sync_batchnorm`` swaps the BatchNorm children and keeps their parameters, so the
    optimizers and the objective's references stay valid (a network is never itself a bare BatchNorm)."""
    if not world.parallel or device.type != "cuda":
        return
    for m in modules:
        assert not isinstance(m, nn.modules.batchnorm._BatchNorm)
        nn.SyncBatchNorm.convert_sync_batchnorm(m)


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def on_main(fn: Callable[[], str], world: World) -> str:
    """Run ``fn`` on rank 0 only (e.g. pick and create the run directory) and give its result to every rank.

    A ``GanforgeError`` on rank 0 is raised on every rank with the same message, so no rank waits forever
    for a rank that gave up. Text goes over the wire as bytes (no pickle)."""
    if not world.parallel:
        return fn()
    from ganforge.errors import GanforgeError

    text, failed = "", 0
    if world.main:
        try:
            text = fn()
        except GanforgeError as e:
            text, failed = str(e), 1
    data = torch.tensor(list(text.encode()), dtype=torch.uint8)
    head = torch.tensor([len(data), failed], dtype=torch.int64)
    dist.broadcast(head, src=0)
    if not world.main:
        data = torch.empty(int(head[0]), dtype=torch.uint8)
    if int(head[0]):
        dist.broadcast(data, src=0)
    text = bytes(data.tolist()).decode()
    if int(head[1]):
        raise GanforgeError(text)
    return text


def row_range(n: int, world: World) -> tuple[int, int]:
    """This rank's rows [start, stop) of n samples: contiguous, in rank order, sizes differ by at most one."""
    base, extra = divmod(n, world.size)
    start = world.rank * base + min(world.rank, extra)
    return start, start + base + (1 if world.rank < extra else 0)


def gather_rows(part: torch.Tensor, n: int, world: World) -> torch.Tensor:
    """Each rank's rows (``row_range``) -> all n rows on every rank, in order: a sharded computation's result.

    Shares differ by at most one row, so each is padded to the largest for one ``all_gather``."""
    if not world.parallel:
        return part
    most = -(-n // world.size)
    padded = torch.zeros((most, *part.shape[1:]), dtype=part.dtype, device=_comm_device())
    padded[: len(part)] = part.to(padded.device)
    parts = [torch.empty_like(padded) for _ in range(world.size)]
    dist.all_gather(parts, padded)
    sizes = [hi - lo for lo, hi in (row_range(n, World(r, world.size)) for r in range(world.size))]
    return torch.cat([p[:k] for p, k in zip(parts, sizes)]).to(part.device)


def map_rows(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, world: World) -> torch.Tensor:
    """``fn(x)`` computed as each rank's share of the rows of x, gathered: evaluation and ``generate`` split
    their samples over ranks this way (the result is the same on every rank, and equals one process's)."""
    if not world.parallel:
        return fn(x)
    lo, hi = row_range(len(x), world)
    return gather_rows(fn(x[lo:hi]), len(x), world)


def all_agree(flag: bool, world: World) -> bool:
    """True when ``flag`` is true on every rank (e.g. a cache hit), so the ranks take the same branch and
    no rank waits in a collective that another skipped."""
    if not world.parallel:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def barrier(world: World) -> None:
    if world.parallel:
        dist.barrier()


def _comm_device() -> torch.device:
    return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
