"""The training loop: batches, optimizer, learning-rate schedule, evaluation, callbacks.

The loop knows no model family and no diagnostics: anything that records training (metrics
files, progress bars, checkpoints) is a `Callback`, and a monitor that watches through hooks
is a `Watcher`. The training step is built once, when the Trainer is constructed, from explicit
options (`makemore.speed.SpeedOptions`, data parallelism, the monitor). Batches come from a
`Sampler` (default: whole items gathered by index from tensors already on the device), and the
loss is read back to the host only at logging and evaluation steps.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import torch
from torch import nn

from . import dist
from .config import TrainConfig
from .data import IGNORE, Dataset, LengthBuckets, Split
from .errors import MakemoreError
from .evaluate import evaluate_split
from .examples import Examples, batch_rows
from .models.common import ModelLoss
from .speed import SpeedOptions, fast_loss
from .speed.compile import autocast, compile_module, first_line, note
from .speed.graph import GraphedStep
from .speed.optim import LeanAdamW


# ---------------------------------------------------------------------------------------------
# schedule and optimizer


def lr_at(cfg: TrainConfig, step: int, progress: float) -> float:
    """Learning rate at `step`; `progress` in [0, 1] is the fraction of the run done.

    A pure function of its arguments (nanoGPT's habit), so a resumed run gets the same rates.
    """
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        # drops below 1 are fractions of the run, others are step numbers (the lectures: 100k of 200k)
        passed = sum(1 for d in cfg.lr_drops if (progress >= d if d < 1 else step >= d))
        return cfg.lr * cfg.lr_drop_factor**passed
    if cfg.schedule == "cosine":
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        total = cfg.steps if cfg.steps else None
        frac = (step - cfg.warmup) / max(1, total - cfg.warmup) if total else progress
        frac = min(max(frac, 0.0), 1.0)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * frac))
    raise MakemoreError(f"unknown learning-rate schedule {cfg.schedule!r}; choose constant, step or cosine")


def make_optimizer(model: nn.Module, cfg: TrainConfig, fused: bool | None = None, capturable: bool = False,
                   lean: bool = False) -> torch.optim.Optimizer:
    """AdamW / SGD / RMSProp; weight decay on matrices only (biases and norm gains are not decayed).

    `fused=None` picks PyTorch's fused kernels where they exist (AdamW and SGD, on the CPU and
    CUDA: one kernel for all parameters instead of a dozen small ops per parameter), else the
    foreach implementation. `capturable` (AdamW) keeps the step count and the learning rate on
    the device, so the update can be captured in a CUDA graph. `lean`: on the CPU, the speed
    layer's `LeanAdamW` in place of the fused AdamW (the same update, to the bit).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if fused is None:
        fused = cfg.optimizer in ("adamw", "sgd") and all(p.device.type in ("cpu", "cuda") for p in params)
    kw: dict[str, Any] = {"fused": True} if fused else {"foreach": True}
    if cfg.optimizer == "adamw":
        if capturable:
            # one device scalar shared by every group: the rate changes without leaving the graph
            return torch.optim.AdamW(groups, lr=torch.tensor(cfg.lr, device=params[0].device), betas=cfg.betas, eps=1e-8,
                                     capturable=True, **kw)
        cpu = all(p.device.type == "cpu" for p in params)
        adamw = LeanAdamW if lean and fused and cpu else torch.optim.AdamW
        return adamw(groups, lr=cfg.lr, betas=cfg.betas, eps=1e-8, **kw)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, **kw)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum if cfg.momentum else 0.0, **kw)
    raise MakemoreError(f"unknown optimizer {cfg.optimizer!r}; choose adamw, sgd or rmsprop")


@torch.no_grad()
def clip_grads_(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """`nn.utils.clip_grad_norm_` for parameters on one device: scale the gradients so that their
    global 2-norm is at most `max_norm`; returns the norm before clipping (a device tensor).

    The same arithmetic as PyTorch's (norm of the per-tensor norms, factor max_norm / (norm + 1e-6)
    clamped at 1, tested equal), in a handful of foreach kernels without its per-call dispatch:
    on the CPU that was a quarter of a bigram step.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    factor = (max_norm / (total + 1e-6)).clamp_(max=1.0)
    # a factor of 1 leaves the gradients as they are; on the CPU reading it costs less than the multiply
    if factor.device.type != "cpu" or factor.item() < 1.0:
        torch._foreach_mul_(grads, factor)
    return total


def validate_train_config(cfg: TrainConfig) -> None:
    """Reject impossible settings with one sentence each, before anything is written."""
    if cfg.steps is not None and cfg.steps < 0:
        raise MakemoreError(f"--steps must be zero or a positive number of steps, got {cfg.steps}")
    if cfg.time is not None and cfg.time <= 0:
        raise MakemoreError(f"--time must be a positive number of seconds, got {cfg.time}")
    if cfg.batch_size < 1:
        raise MakemoreError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    if not cfg.lr > 0:
        raise MakemoreError(f"--lr must be positive, got {cfg.lr}")
    if cfg.eval_interval < 1 or cfg.log_interval < 1:
        raise MakemoreError("--eval-interval and --log-interval must be at least 1")
    if cfg.schedule == "cosine" and cfg.steps is None and cfg.time is None:
        raise MakemoreError("the cosine schedule needs --steps or --time to know where the run ends")
    if cfg.buckets < 1:
        raise MakemoreError(f"--buckets must be at least 1, got {cfg.buckets}")
    if cfg.buckets > 1 and cfg.batches != "items":
        raise MakemoreError("--buckets groups whole items by length; it does not apply to --batches examples")
    if cfg.optimizer not in ("adamw", "sgd", "rmsprop"):
        raise MakemoreError(f"unknown optimizer {cfg.optimizer!r}; choose adamw, sgd or rmsprop")



# ---------------------------------------------------------------------------------------------
# callbacks, watchers, batches


class Callback(Protocol):
    """Hooks into the loop; implement any subset (the Trainer checks with getattr)."""

    def on_train_start(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, loss: torch.Tensor) -> None: ...
    def on_log(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_eval(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...


class Watcher(Callback, Protocol):
    """A callback that watches training through module and optimizer hooks (the diagnostics
    monitor). Hooks do not run inside compiled code, a replayed CUDA graph or the speed layer's
    written-out paths, so the Trainer runs the steps it records through the model's own eager
    code, and captures no CUDA graph."""

    @property
    def recording(self) -> bool:
        """Whether the next step is one it records."""
        ...


class Sampler(Protocol):
    """Draws a training batch: (B, T) ids and targets on the device, from `generator` alone."""

    def __call__(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...


class RowSampler:
    """The default batches: `batch_size` rows of `split` (whole items, or the lectures' examples,
    see `makemore.examples`), uniformly with replacement.

    Items are padded to the block size, or with `narrow` to the batch's longest item (a CPU fast
    path for causal models, whose loss does not depend on the padding after an item; the width
    changes from batch to batch, so not for compiled code or a CUDA graph).
    """

    def __init__(self, split: Split | Examples, batch_size: int, narrow: bool = False) -> None:
        self.split, self.batch_size, self.narrow = split, batch_size, narrow
        self.n_rows, self.rows_device = (len(split), split.tokens.device) if isinstance(split, Split) else (split.x.size(0), split.x.device)

    def indices(self, generator: torch.Generator, out: torch.Tensor | None = None) -> torch.Tensor:
        """(batch_size,) row indices, drawn on the split's device (into `out` if given)."""
        return torch.randint(self.n_rows, (self.batch_size,), generator=generator, device=self.rows_device, out=out)

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.split, Split):
            return self.split.batch(idx, None if self.narrow else self.split.block_size)  # (B, T) each
        return self.split.x[idx], self.split.y[idx]  # (B, T) each

    def __call__(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.gather(self.indices(generator))


@dataclass
class TrainState:
    step: int = 0                   # optimizer steps taken
    elapsed: float = 0.0            # seconds of training (resumed runs add up)
    best_val: float | None = None
    last_loss: float | None = None
    step0_loss: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# the loop


class Trainer:
    """Trains `model` on `dataset` (already on `device`) with `cfg`.

    The training step is built here, once, from the options: the module that computes the loss
    (the model's own code, or the speed layer's CPU fast path for its family; wrapped in
    DistributedDataParallel with several processes; compiled with `speed.compile`), and on
    CUDA the same step captured in a CUDA graph.

    Args:
        callbacks: objects with any of the `Callback` methods.
        optimizer: default `make_optimizer(model, cfg)` (capturable for a CUDA graph, the lean
            AdamW with the CPU fast paths).
        rank, world_size: this process's place among data-parallel workers; each draws its
            own disjoint slice of every global batch (the global batch is `cfg.batch_size`).
        speed: torch.compile, bf16, CUDA graph, CPU fast paths (`makemore.speed.SpeedOptions`).
        monitor: a `Watcher` (the diagnostics monitor): also a callback, called before the others;
            the steps it records run through the model's eager code, where its hooks fire.
        sampler: draws the batches (default `RowSampler`: whole items).
        stream: where notes about the speed options go (default stderr).
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Dataset,
        cfg: TrainConfig,
        device: torch.device,
        callbacks: Sequence[Any] = (),
        optimizer: torch.optim.Optimizer | None = None,
        rank: int = 0,
        world_size: int = 1,
        speed: SpeedOptions | None = None,
        monitor: Watcher | None = None,
        sampler: Sampler | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        if cfg.batch_size % world_size:
            raise MakemoreError(f"--batch-size {cfg.batch_size} is not divisible by {world_size} processes")
        self.model = model
        self.dataset = dataset
        self.cfg = cfg
        self.device = device
        self.speed = speed or SpeedOptions()
        self.speed.check(device)
        self.monitor = monitor
        self.callbacks = ([monitor] if monitor is not None else []) + list(callbacks)  # the monitor's step first
        self.rank, self.world_size = rank, world_size
        self.train_split = dataset.splits["train"]
        # periodic validation scores a fixed, seeded sample of the val split (all of it when small);
        # the exact whole-split figures come at the end of the run
        self.val_split = dataset.splits["val"].sample(cfg.val_subset, seed=cfg.seed) if cfg.val_subset else dataset.splits["val"]
        # batch indices come from their own generator so they do not depend on anything else
        # (dropout, initialization) and can be saved and restored for bit-exact resume
        self.batch_gen = torch.Generator(device=device)
        self.batch_gen.manual_seed(cfg.seed)
        self.state = TrainState()
        self._stop = False
        self.interrupted = False  # see interrupt()
        self._stream = stream or sys.stderr
        self.closed_form = hasattr(model, "fit_closed_form")  # e.g. the counts bigram
        self.params = [p for p in model.parameters() if p.requires_grad]  # walked once, not every step
        self._manual_backward = getattr(model, "manual_backward", None)  # fills .grad itself
        if device.type == "cuda" and self.speed.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        trains = bool(self.params) and not self.closed_form
        self._use_graph = trains and self._wants_graph(optimizer, sampler)
        # the CPU fast paths, for one process of plain eager training (with several processes
        # and a monitor, the recorded steps must pass through the same DDP module as the others)
        fast = (self.speed.fast_paths and device.type == "cpu" and not self.speed.compile
                and not (monitor is not None and world_size > 1))
        self.optimizer = optimizer or (make_optimizer(model, cfg, capturable=self._use_graph, lean=fast) if trains else None)
        family_loss = fast_loss(model) if fast else None
        narrow = family_loss is not None
        self.sampler = sampler or (LengthBuckets(self.train_split, cfg.batch_size, cfg.buckets, narrow) if cfg.buckets > 1 else
                                   RowSampler(batch_rows(self.train_split, cfg.batches, model), cfg.batch_size, narrow=narrow))
        self._lr_value = float(self.optimizer.param_groups[0]["lr"]) if self.optimizer is not None else cfg.lr
        # the module whose forward(x, y) is the training loss, and the one the monitor's steps use
        reference: nn.Module = ModelLoss(model)
        module = family_loss or reference
        if world_size > 1:
            module = dist.wrap(module, device)  # averages the gradients over the processes
        self._hooked: Callable[..., torch.Tensor] = module if world_size > 1 else reference
        self._loss: Callable[..., torch.Tensor] = compile_module(module, self._stream) if self.speed.compile else module
        self._global_targets: torch.Tensor | None = None  # targets in the whole global batch (data parallel)
        self._graph: GraphedStep | None = None
        self._graph_idx: torch.Tensor | None = None

    def _wants_graph(self, optimizer: torch.optim.Optimizer | None, sampler: Sampler | None) -> bool:
        """Whether the step is to be captured in a CUDA graph; says why not where it matters."""
        opt = self.speed.cuda_graph
        if opt == "off":
            return False
        blocker = self._graph_blocker(optimizer, sampler)
        if blocker is not None:
            if opt == "on":
                raise MakemoreError(f"--cuda-graph on: {blocker}")
            if self.device.type == "cuda":
                note(self._stream, f"no CUDA graph: {blocker}")
            return False
        return True

    def _graph_blocker(self, optimizer: torch.optim.Optimizer | None, sampler: Sampler | None) -> str | None:
        """Why the step cannot be captured in a CUDA graph, or None."""
        if self.device.type != "cuda":
            return "CUDA graphs need a CUDA device"
        if self.world_size > 1:
            return "CUDA-graph capture is not combined with several processes"
        if self._manual_backward is not None:
            return "this model has a hand-written backward"
        if self.cfg.optimizer != "adamw":
            return "capture uses AdamW's capturable update; choose --optimizer adamw"
        if optimizer is not None and not all(g.get("capturable") for g in optimizer.param_groups):
            return "the optimizer passed in is not capturable"
        if self.monitor is not None:
            return "the training-health monitor reads steps through hooks, which a replayed graph does not call"
        if sampler is not None and not isinstance(sampler, RowSampler):
            return "the batch sampler is not the Trainer's RowSampler"
        if self.cfg.buckets > 1:
            return "--buckets draws batches of varying shapes"
        return None

    # -- pieces ------------------------------------------------------------------------------

    def get_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of a global batch drawn by the sampler, on the device."""
        x, y = self.sampler(self.batch_gen)  # (B, T) each
        if self.world_size > 1:
            # every rank draws the same global batch and keeps its slice; the global target
            # count lets each rank weight its loss so the average of the ranks' gradients is
            # the gradient of the global mean (ranks hold different numbers of characters)
            self._global_targets = (y != IGNORE).sum()
            per = x.size(0) // self.world_size
            x, y = x[self.rank * per : (self.rank + 1) * per], y[self.rank * per : (self.rank + 1) * per]
        return x, y

    def progress(self) -> float:
        fracs = []
        if self.cfg.steps:
            fracs.append(self.state.step / self.cfg.steps)
        if self.cfg.time:
            fracs.append(self.state.elapsed / self.cfg.time)
        return min(max(fracs, default=0.0), 1.0)

    @property
    def uses_cuda_graph(self) -> bool:
        """Whether the steps run as replays of a CUDA graph (until a capture fails)."""
        return self._use_graph

    def request_stop(self) -> None:
        """Stop after the current step (a callback that has seen enough, e.g. a target loss)."""
        self._stop = True

    def interrupt(self) -> None:
        """Stop after the current step without evaluating (SIGTERM or Ctrl-C, see makemore.signals)."""
        self.interrupted = True

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def done(self) -> bool:
        c, s = self.cfg, self.state
        if self._stop or self.interrupted:
            return True
        if c.steps is not None and s.step >= c.steps:
            return True
        if c.time is not None and self.world_size > 1:
            return s.step > 0 and dist.all_max(s.elapsed) >= c.time  # every rank stops at the same step
        return c.time is not None and s.elapsed >= c.time

    def _set_lr(self) -> None:
        """The schedule's rate for this step, in every parameter group (a device scalar: filled in place)."""
        assert self.optimizer is not None
        lr = lr_at(self.cfg, self.state.step, self.progress())
        if lr == self._lr_value:
            return
        self._lr_value = lr
        current = self.optimizer.param_groups[0]["lr"]
        if torch.is_tensor(current):
            current.fill_(lr)  # shared by every group
        else:
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def _step(self, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable[..., torch.Tensor]) -> torch.Tensor:
        """The training step: gradients of `loss_fn(x, y)`, clipping, the update. Runs eagerly
        and is what the CUDA graph captures. Returns the loss as a device tensor."""
        assert self.optimizer is not None
        self.optimizer.zero_grad(set_to_none=True)
        if self._manual_backward is not None:
            loss = self._manual_backward(x, y)
        else:
            with autocast(self.device, self.speed.dtype):
                loss = loss_fn(x, y)
            if self._global_targets is not None:
                # (local mean) * local count * world / global count: DDP's average over ranks
                # then gives the gradient of the mean over the whole global batch
                loss = loss * ((y != IGNORE).sum() * self.world_size / self._global_targets)
            loss.backward()
        if self.cfg.grad_clip:
            clip_grads_(self.params, self.cfg.grad_clip)
        self.optimizer.step()
        return loss.detach()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step on the batch (x, y), eagerly; returns the loss as a device tensor (no host sync)."""
        self._set_lr()
        recording = self.monitor is not None and self.monitor.recording
        return self._step(x, y, self._hooked if recording else self._loss)

    def step(self) -> torch.Tensor:
        """Draw a batch and take one optimizer step (the CUDA graph's replay where it is used)."""
        if self._use_graph:
            if self._graph is None:
                self._capture()
            if self._graph is not None:
                assert self._graph_idx is not None and isinstance(self.sampler, RowSampler)
                self._set_lr()
                self.sampler.indices(self.batch_gen, out=self._graph_idx)
                return self._graph()
        return self.train_step(*self.get_batch())

    def _capture(self) -> None:
        """Capture `_step` on fixed batch indices; where capture fails, say so and stay eager."""
        assert self.optimizer is not None and isinstance(self.sampler, RowSampler)
        idx = torch.zeros(self.cfg.batch_size, dtype=torch.long, device=self.device)  # (B,) filled before each replay
        sampler, loss_fn = self.sampler, self._loss
        try:
            self._graph = GraphedStep(lambda: self._step(*sampler.gather(idx), loss_fn), self.model, self.optimizer, self.device)
            self._graph_idx = idx
        except Exception as e:  # noqa: BLE001 - any capture failure: train eagerly instead
            torch.cuda.synchronize(self.device)
            note(self._stream, f"CUDA-graph capture failed ({first_line(e)}); training without it")
            self._use_graph = False

    def evaluate(self, splits: Sequence[str] = ("val",)) -> dict[str, float]:
        out = {}
        for name in splits:
            split = self.val_split if name == "val" else self.dataset.splits[name]
            if len(split):
                out[f"{name}_loss"] = evaluate_split(self.model, split, desc=name, stream=self._stream,
                                                     fast=self.speed.fast_paths)["nll"]
        return out

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    # -- the loop ----------------------------------------------------------------------------

    def fit(self) -> TrainState:
        s, c = self.state, self.cfg
        self.model.train()
        self._call("on_train_start")
        if self.closed_form:
            self.model.fit_closed_form(self.train_split.x, self.train_split.y)  # type: ignore[operator]
            s.step = c.steps or 0
            self._eval_and_notify()
            self._call("on_train_end")
            return s
        t_last = time.perf_counter()
        while not self.done():
            loss = self.step()
            if s.step == 0:
                s.step0_loss = self._loss_value(loss)
            s.step += 1
            now = time.perf_counter()
            s.elapsed += now - t_last
            t_last = now
            self._call("on_step_end", loss)
            if s.step % c.log_interval == 0 or self.done():
                s.last_loss = self._loss_value(loss)  # the only host sync outside evaluation
                if not math.isfinite(s.last_loss):
                    self._call("on_log", self._log_record())
                    raise MakemoreError(
                        f"training diverged at step {s.step} (loss {s.last_loss}); lower the learning rate "
                        "(try `makemore doctor` to see why)"
                    )
                self._call("on_log", self._log_record())
            if (s.step % c.eval_interval == 0 or self.done()) and not self.interrupted:
                self._eval_and_notify()
                t_last = time.perf_counter()  # evaluation time is not training time
        self._call("on_train_end")
        return s

    def _loss_value(self, loss: torch.Tensor) -> float:
        """The step's loss on the host: with several ranks, the mean over the global batch.

        `.item()` turns a one-element tensor into a Python number (not differentiable) and waits
        for the device to finish, which is why the loop calls it only at logging steps.
        """
        if self.world_size > 1:
            return dist.all_sum(loss.detach() / self.world_size)
        return loss.item()

    def _log_record(self) -> dict[str, float]:
        s = self.state
        return {"step": s.step, "loss": s.last_loss, "lr": self._lr_value, "elapsed": s.elapsed}

    def _eval_and_notify(self) -> None:
        if self.rank != 0:
            return  # rank 0 alone evaluates, logs and writes checkpoints
        metrics = {"step": self.state.step, **self.evaluate(("val",)), "elapsed": self.state.elapsed}
        val = metrics.get("val_loss")
        metrics["is_best"] = val is not None and (self.state.best_val is None or val < self.state.best_val)
        if metrics["is_best"]:
            self.state.best_val = val
        self.state.history.append(metrics)
        self._call("on_eval", metrics)

    # -- state for checkpoints ---------------------------------------------------------------

    def restore(self, state: TrainState, optimizer_state: dict[str, Any] | None = None,
                rng_state: dict[str, torch.Tensor] | None = None) -> None:
        """Continue from a checkpoint: its step counters, optimizer state and random generators."""
        if self._graph is not None:
            raise MakemoreError("restore() before the first step: the CUDA graph holds the optimizer's tensors")
        self.state = state
        if self.optimizer is not None and optimizer_state is not None:
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.load_state_dict(optimizer_state)
            if torch.is_tensor(lr):  # a capturable optimizer keeps its one device rate
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
        if rng_state is not None:
            self.load_rng_state(rng_state)
        self._lr_value = float("nan")  # the next step sets the schedule's rate

    def rng_state(self) -> dict[str, torch.Tensor]:
        st = {"batch": self.batch_gen.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            st["cuda"] = torch.cuda.get_rng_state(self.device)
        return st

    def load_rng_state(self, st: dict[str, torch.Tensor]) -> None:
        self.batch_gen.set_state(st["batch"])
        torch.set_rng_state(st["torch"])
        if self.device.type == "cuda" and "cuda" in st:
            torch.cuda.set_rng_state(st["cuda"], self.device)
