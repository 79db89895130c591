"""CPU threads fitted to the machine.

PyTorch starts one thread per core. These models are small, and on a machine whose other work
already keeps its cores busy, threads that wait for each other cost far more than they bring
(`bench/threads.py` measures steps/s at 1 thread and at every core, idle and with a core kept
busy). So unless the user chooses, a run takes the cores that the load average leaves free,
at least one, and says so when that is fewer than PyTorch's default.
"""

from __future__ import annotations

import os

import torch


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # not available on this platform
        return None


def fit_threads(requested: int | None = None) -> tuple[int, str | None]:
    """Set PyTorch's CPU threads: `requested`, else (unless OMP_NUM_THREADS chose them) the cores
    the 1-minute load average leaves free, at least 1 and at most PyTorch's default. Returns the
    count and a note when it chose fewer than the default."""
    default = torch.get_num_threads()
    if requested is not None:
        torch.set_num_threads(requested)
        return requested, None
    if os.environ.get("OMP_NUM_THREADS"):  # chosen already (by the user, or torchrun's one per process)
        return default, None
    cores, load = os.cpu_count() or 1, _load()
    if load is None:
        return default, None
    free = max(1, min(default, round(cores - load)))
    if free >= default:
        return default, None
    torch.set_num_threads(free)
    return free, (f"note: {free} CPU thread{'s' if free > 1 else ''} (this machine is busy: load {load:.1f} on "
                  f"{cores} cores); choose with --threads N")


def busy_machine_hint() -> str | None:
    """A sentence suggesting `--threads 1` when PyTorch uses several threads on a machine whose
    load average is above its core count (threads then wait for each other); else None."""
    threads, cores, load = torch.get_num_threads(), os.cpu_count() or 1, _load()
    if load is not None and threads > 1 and load > cores:
        return (f"note: this machine is busy (load {load:.1f} on {cores} cores) and PyTorch uses {threads} threads; "
                "training is often faster with --threads 1 (bench/threads.py measures it)")
    return None


__all__ = ["fit_threads", "busy_machine_hint"]
