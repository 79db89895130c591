"""torch.compile with an on-disk cache and an eager fallback, and bf16 autocast.

For models this small almost all the time goes to overhead (Python, the dispatcher, one
kernel launch per operation on a GPU); compilation fuses operations and removes most of it.
Compiled code is cached on disk (TORCHINDUCTOR_CACHE_DIR, default ~/.cache/makemore/inductor),
so a second run with the same model and shapes does not pay the compilation again. Where
compilation fails the run goes on without it after one line saying so.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn


def compile_cache_dir() -> Path:
    """Where compiled kernels are kept between runs (TORCHINDUCTOR_CACHE_DIR if set)."""
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(base / "makemore" / "inductor")
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])


def note(stream: IO[str], text: str) -> None:
    """One `note:` line on `stream`."""
    stream.write(f"note: {text}\n")
    stream.flush()


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


class CompiledOrEager:
    """Calls the compiled module; if its first call fails, says so and stays eager."""

    def __init__(self, compiled: Callable[..., Any], eager: Callable[..., Any], stream: IO[str]) -> None:
        self.compiled, self.eager, self.stream = compiled, eager, stream
        self.checked = False

    def __call__(self, *args: Any) -> Any:
        if self.checked:
            return self.compiled(*args)
        try:
            out = self.compiled(*args)
        except Exception as e:  # noqa: BLE001 - any compiler failure means: run eagerly
            note(self.stream, f"torch.compile failed ({first_line(e)}); training without it")
            self.compiled = self.eager
            out = self.eager(*args)
        self.checked = True
        return out


def compile_module(module: nn.Module, stream: IO[str] = sys.stderr) -> Callable[..., Any]:
    """`torch.compile(module)` with the on-disk cache, or `module` itself where unavailable."""
    if not hasattr(torch, "compile"):
        note(stream, "this PyTorch has no torch.compile; training without it")
        return module
    compile_cache_dir()
    try:
        import torch._inductor.config as inductor_config

        inductor_config.fx_graph_cache = True  # reuse compiled graphs across runs
    except (ImportError, AttributeError):
        pass
    try:
        compiled = torch.compile(module)
    except Exception as e:  # noqa: BLE001
        note(stream, f"torch.compile is unavailable ({first_line(e)}); training without it")
        return module
    return CompiledOrEager(compiled, module, stream)


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast for `dtype="bf16"`, else nothing."""
    if dtype == "bf16":
        # no weight-cast cache: a CUDA graph must redo the casts at every replay
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()
