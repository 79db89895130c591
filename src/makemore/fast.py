"""Speed options for training: torch.compile, bf16 autocast, TF32, and a CUDA-graph step.

For models this small almost all the time goes to overhead: Python, the dispatcher and, on a
GPU, one kernel launch per operation. `accelerate(trainer, SpeedOptions(...))` removes what
it can without changing the Trainer's loop or its callbacks:

- `compile`: `torch.compile` of the module the training step calls (the model and its loss;
  AOTAutograd compiles the backward too). Compiled code is cached on disk
  (TORCHINDUCTOR_CACHE_DIR, default ~/.cache/makemore/inductor), so a second run with the
  same model and shapes does not pay the compilation again. Where compilation fails the
  run goes on without it after one line saying so. Hooks do not run inside compiled code: the
  training-health monitor sends its recording steps through the eager module it wraps
  (`_CompiledOrEager.eager`), and a callback with `needs_eager_steps` rules out the CUDA graph.
- `dtype="bf16"`: the forward pass under `torch.autocast` with bfloat16 (CUDA); TF32 matrix
  products are switched on for float32 work on CUDA.
- `cuda_graph`: the whole step (gather the batch, forward, backward, gradient clipping, the
  optimizer update) is captured once in a CUDA graph and replayed (the "whole network
  capture" recipe of PyTorch's CUDA-graph notes): static shapes, a capturable AdamW whose
  learning rate is a device tensor, batch indices drawn on the device. Only the index draw
  and, when the rate changes, one fill run outside the graph. Where capture fails (a model
  that reads values back to the host in its forward, say) training goes on eagerly after
  one line saying so.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from .errors import MakemoreError
from .train import Trainer, lr_at


@dataclass(frozen=True)
class SpeedOptions:
    compile: bool = False          # torch.compile the model and its loss
    cuda_graph: str = "auto"       # auto | on | off: capture the whole step in a CUDA graph
    dtype: str = "float32"         # float32 | bf16 (autocast on CUDA)
    tf32: bool = True              # TF32 matrix products for float32 work on CUDA


def compile_cache_dir() -> Path:
    """Where compiled kernels are kept between runs (TORCHINDUCTOR_CACHE_DIR if set)."""
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(base / "makemore" / "inductor")
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])


def _note(stream: IO[str], text: str) -> None:
    stream.write(f"note: {text}\n")
    stream.flush()


def _short(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


class _CompiledOrEager:
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
            _note(self.stream, f"torch.compile failed ({_short(e)}); training without it")
            self.compiled = self.eager
            out = self.eager(*args)
        self.checked = True
        return out


def compile_module(module: nn.Module, stream: IO[str] = sys.stderr) -> Callable[..., Any]:
    """`torch.compile(module)` with the on-disk cache, or `module` itself where unavailable."""
    if not hasattr(torch, "compile"):
        _note(stream, "this PyTorch has no torch.compile; training without it")
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
        _note(stream, f"torch.compile is unavailable ({_short(e)}); training without it")
        return module
    return _CompiledOrEager(compiled, module, stream)


def _autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager[Any]:
    if dtype == "bf16":
        # no weight-cast cache: a CUDA graph must redo the casts at every replay
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()


class GraphedStep:
    """The whole training step captured once in a CUDA graph; call it to run one step.

    Returns the step's loss as a device tensor that the next step overwrites.
    """

    def __init__(self, trainer: Trainer, dtype: str = "float32", warmup: int = 3) -> None:
        t = self.trainer = trainer
        opt = t.optimizer
        assert opt is not None and t.device.type == "cuda"
        self.dtype = dtype
        for group in opt.param_groups:
            group["capturable"] = True  # step counts stay on the device
        self.lr_value = float(opt.param_groups[0]["lr"])
        self.lr = torch.tensor(self.lr_value, device=t.device)  # one device scalar for all groups
        for group in opt.param_groups:
            group["lr"] = self.lr
        self.idx = torch.zeros(t.cfg.batch_size, dtype=torch.long, device=t.device)  # (B,) static
        saved = self._snapshot()
        try:
            side = torch.cuda.Stream(t.device)
            side.wait_stream(torch.cuda.current_stream(t.device))
            with torch.cuda.stream(side):  # warm-up: lazy state, cuDNN/compile choices, allocator
                for _ in range(warmup):
                    opt.zero_grad(set_to_none=True)
                    self._body()
            torch.cuda.current_stream(t.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(self.graph):
                self.loss = self._body()
        finally:
            self._restore(saved)  # the warm-up steps must not count as training

    def _body(self) -> torch.Tensor:
        t = self.trainer
        x = t.train_split.x.index_select(0, self.idx)  # (B, T)
        y = t.train_split.y.index_select(0, self.idx)  # (B, T)
        with _autocast(t.device, self.dtype):
            _, loss = t.train_model(x, y)
        loss.backward()
        if t.cfg.grad_clip:
            nn.utils.clip_grad_norm_(t.model.parameters(), t.cfg.grad_clip, foreach=True)
        assert t.optimizer is not None
        t.optimizer.step()
        return loss.detach()

    def _snapshot(self) -> dict[str, Any]:
        t = self.trainer
        assert t.optimizer is not None
        return {
            "model": [v.detach().clone() for v in t.model.state_dict().values()],
            "opt": {id(v): v.detach().clone() for st in t.optimizer.state.values() for v in st.values() if torch.is_tensor(v)},
            "rng": torch.cuda.get_rng_state(t.device),
        }

    @torch.no_grad()
    def _restore(self, saved: dict[str, Any]) -> None:
        # in place: the captured graph reads and writes these very tensors
        t = self.trainer
        assert t.optimizer is not None
        for v, old in zip(t.model.state_dict().values(), saved["model"]):
            v.copy_(old)
        for st in t.optimizer.state.values():
            for v in st.values():
                if torch.is_tensor(v):
                    old = saved["opt"].get(id(v))
                    v.copy_(old) if old is not None else v.zero_()  # new state starts at zero (AdamW)
        torch.cuda.set_rng_state(saved["rng"], t.device)

    def __call__(self) -> torch.Tensor:
        t = self.trainer
        lr = lr_at(t.cfg, t.state.step, t.progress())
        if lr != self.lr_value:
            self.lr.fill_(lr)
            self.lr_value = lr
        n = t.train_split.x.size(0)
        torch.randint(n, (t.cfg.batch_size,), generator=t.batch_gen, device=t.device, out=self.idx)
        self.graph.replay()
        return self.loss


def _graph_blocker(trainer: Trainer) -> str | None:
    """Why the step cannot be captured, or None."""
    if trainer.device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if trainer.world_size > 1:
        return "CUDA-graph capture is not combined with several processes"
    if trainer.optimizer is None or trainer.closed_form:
        return "this model has no optimizer step to capture"
    if hasattr(trainer.model, "manual_backward"):
        return "this model has a hand-written backward"
    if trainer.cfg.optimizer != "adamw":
        return "capture uses AdamW's capturable update; choose --optimizer adamw"
    if any(getattr(cb, "needs_eager_steps", False) for cb in trainer.callbacks):
        return "the training-health monitor reads steps through hooks, which a replayed graph does not call"
    return None


def accelerate(trainer: Trainer, opts: SpeedOptions, stream: IO[str] = sys.stderr) -> Trainer:
    """Apply `opts` to `trainer` (in place): compile, autocast, TF32, CUDA-graph step."""
    if opts.cuda_graph not in ("auto", "on", "off"):
        raise MakemoreError(f"--cuda-graph must be auto, on or off, got {opts.cuda_graph!r}")
    if opts.dtype not in ("float32", "bf16"):
        raise MakemoreError(f"--dtype must be float32 or bf16, got {opts.dtype!r}")
    cuda = trainer.device.type == "cuda"
    if opts.dtype == "bf16" and not cuda:
        raise MakemoreError("--dtype bf16 is for CUDA devices; on the CPU train in float32")
    if cuda and opts.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if opts.compile:
        trainer.trim_padding = False  # compiled code wants the same shapes every step
        trainer.train_model = compile_module(trainer.train_model, stream)  # type: ignore[assignment]
    if trainer.closed_form or trainer.optimizer is None:
        return trainer
    blocker = _graph_blocker(trainer)
    if opts.cuda_graph == "on" and blocker:
        raise MakemoreError(f"--cuda-graph on: {blocker}")
    if opts.cuda_graph == "auto" and cuda and blocker:
        _note(stream, f"no CUDA graph: {blocker}")
    if opts.cuda_graph != "off" and blocker is None:
        try:
            trainer.step_fn = GraphedStep(trainer, opts.dtype)
            return trainer
        except Exception as e:  # noqa: BLE001 - any capture failure: train eagerly instead
            torch.cuda.synchronize(trainer.device)
            _note(stream, f"CUDA-graph capture failed ({_short(e)}); training without it")
            for group in trainer.optimizer.param_groups:
                group["lr"] = float(group["lr"])
    if opts.dtype == "bf16":
        trainer.step_fn = _autocast_step(trainer, opts.dtype)
    return trainer


def _autocast_step(trainer: Trainer, dtype: str) -> Callable[[], torch.Tensor]:
    def step() -> torch.Tensor:
        x, y = trainer.get_batch()
        with _autocast(trainer.device, dtype):
            return trainer.train_step(x, y)

    return step


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run with `n` intra-op CPU threads (None: leave PyTorch's choice)."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)




# ---------------------------------------------------------------------------------------------
# time to quality


class StopAtValLoss:
    """Callback: stop training once the validation loss first reaches `target` (nats/char)."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.reached_at: dict[str, float] | None = None

    def on_eval(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        val = metrics.get("val_loss")
        if val is not None and val <= self.target and self.reached_at is None:
            self.reached_at = dict(metrics)
            trainer.stop_requested = True


# `makemore train --preset NAME`: options a preset sets unless given on the command line.
# "fast" is the quickest configuration to a validation NLL of 2.00 on names.txt found on a
# 2-core CPU (bench/time_to_quality.py). The GRU learns fastest per second here: at batch 128
# with a high rate and a cosine decay over 2,000 steps it passed 2.00 at step 1,400 after 46 s
# of training on one busy core; the transformer at batch 64 was still at 2.06 after 160 s.
# One thread: on a shared 2-core machine two OpenMP threads wait on each other and run 5-10x
# slower; on a quiet one they gain little at these sizes.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {
        "model": "gru", "batch_size": 128, "lr": 1e-2, "schedule": "cosine", "warmup": 100,
        "steps": 1500, "eval_interval": 100, "log_interval": 100, "threads": 1,
    },
}


__all__ = ["SpeedOptions", "accelerate", "GraphedStep", "compile_module", "compile_cache_dir", "threads",
           "StopAtValLoss", "PRESETS"]
