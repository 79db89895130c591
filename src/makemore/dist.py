"""Data-parallel training on PyTorch's own engine: torchrun + DistributedDataParallel.

Start K processes on one machine with

    torchrun --nproc_per_node=K -m makemore train names.txt --steps 5000

or on several machines with torchrun's rendezvous options (`--nnodes`, `--node_rank`,
`--rdzv_endpoint` or `--master_addr/--master_port`). torchrun sets RANK, WORLD_SIZE and
LOCAL_RANK; `setup` reads them and joins the process group: gloo on the CPU, NCCL on GPUs
(one GPU per process, `cuda:LOCAL_RANK`). Every rank draws the same global batch and trains
on its own slice of it (`Trainer.get_batch`), DDP averages the gradients, and rank 0 alone
evaluates, logs and writes checkpoints.

A process that dies (killed, out of memory) must not leave the others waiting forever: the
process group has a timeout (MAKEMORE_DIST_TIMEOUT seconds, default 300), gloo notices a
closed connection at once, and `guard` turns either into one clear sentence.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .errors import MakemoreError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0          # this process among all processes of the job
    world_size: int = 1    # processes in the job
    local_rank: int = 0    # this process among those of its machine (picks the GPU)
    backend: str = ""      # "gloo" | "nccl"; empty when not distributed

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    """WORLD_SIZE set by torchrun (1 when started as a plain process)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise MakemoreError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a whole number") from None


def timeout_seconds() -> float:
    try:
        return float(os.environ.get("MAKEMORE_DIST_TIMEOUT", "300"))
    except ValueError:
        raise MakemoreError("MAKEMORE_DIST_TIMEOUT must be a number of seconds") from None


def _stopped_by_launcher(signum: int, frame: FrameType | None) -> None:
    # torchrun ends the surviving processes with SIGTERM when one of them fails; say so once
    # (a second SIGTERM is ignored: this process is on its way out with that sentence)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise MakemoreError("stopped by the launcher because another process of the job failed")


def setup(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes (no-op for a single process).

    Returns this process's `DistInfo` and its device (`cuda:LOCAL_RANK` on GPUs).
    """
    world = env_world_size()
    if world <= 1:
        return DistInfo(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise MakemoreError(
                f"process {rank} wants GPU {local_rank} but this machine has {torch.cuda.device_count()}; "
                "start at most one process per GPU (--nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds()))
        except (RuntimeError, ValueError) as e:
            raise MakemoreError(f"process {rank} could not join the other {world - 1} process(es): {_first_line(e)}") from None
    signal.signal(signal.SIGTERM, _stopped_by_launcher)
    return DistInfo(rank, world, local_rank, backend), device


def shutdown() -> None:
    """Leave the process group after a clean end (every rank reaches this point)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` (already on `device`); it shares the parameters."""
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _first_line(e: BaseException) -> str:
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if line.startswith("[") and "] " in line:
        line = line.split("] ", 1)[1]  # drop gloo's source location
    return line.split(". This is typically")[0][:160]


@contextmanager
def guard() -> Iterator[None]:
    """Turn a collective that failed because a peer died or timed out into a `MakemoreError`."""
    try:
        yield
    except RuntimeError as e:
        if not dist.is_initialized() or isinstance(e, MakemoreError):
            raise
        rank = dist.get_rank()
        # the launcher's SIGTERM, sent as soon as the dead process is noticed, must neither kill
        # this one before it has printed why nor add a second message: it exits by itself
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise MakemoreError(
            f"process {rank} lost contact with another process of the job, which stopped or crashed "
            f"({_first_line(e)}); the job stops"
        ) from None


def _reduce(value: torch.Tensor, op: dist.ReduceOp) -> float:
    # NCCL reduces GPU tensors only; gloo takes CPU tensors
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = value.detach().reshape(1).to(device=device, dtype=torch.float64)
    with guard():
        dist.all_reduce(t, op=op)
    return float(t.item())


def all_max(value: float) -> float:
    """The largest `value` over all ranks (every rank must call it)."""
    return _reduce(torch.tensor(value), dist.ReduceOp.MAX)


def all_sum(value: torch.Tensor) -> float:
    """The sum of a one-element tensor over all ranks, read back to the host."""
    return _reduce(value, dist.ReduceOp.SUM)


__all__ = ["DistInfo", "setup", "shutdown", "wrap", "guard", "all_max", "all_sum", "env_world_size"]
