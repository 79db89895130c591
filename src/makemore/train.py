"""The training loop: batches, optimizer, learning-rate schedule, evaluation, callbacks.

The loop knows no model family and no diagnostics: anything that watches or records
training (metrics files, progress bars, checkpoints, the diagnostics monitor) is a
`Callback`. Batches are gathered by index from tensors already on the device, and the loss
is read back to the host only at logging and evaluation steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from .config import TrainConfig
from .data import IGNORE, Dataset
from .dist import all_max, all_sum
from .errors import MakemoreError
from .evaluate import evaluate_split


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


class LeanAdamW(torch.optim.AdamW):
    """`torch.optim.AdamW(fused=True)` on the CPU, with its per-step Python bookkeeping done once.

    Each `step` of PyTorch's optimizer walks every parameter to gather the lists its fused kernel
    takes; for a model of a few hundred thousand parameters that walk costs several times the
    update itself (about 0.2 ms of a 1-3 ms step at makemore's sizes). This subclass gathers the
    parameter, moment and step-count lists once, after PyTorch's own first step has created
    them, and then calls the same kernel (`torch._fused_adamw_`) with the same arguments, so
    the update is PyTorch's to the bit (tested). The per-parameter step counts become views of
    one tensor, counted up by one addition (PyTorch adds 1 to each: ~3 us a tensor on the CPU,
    a tenth of a transformer step). It gives the step to PyTorch whenever its lists
    may be stale or do not apply: a closure, a parameter without a gradient, a tensor learning
    rate, a new parameter group or a loaded state.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lists: list[tuple[list[torch.Tensor], ...]] | None = None
        self._steps: torch.Tensor | None = None  # every parameter's step count; state["step"] are views

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._lists = None  # the moments are new tensors now
        super().load_state_dict(state_dict)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self._lists = None
        super().add_param_group(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none or self._lists is None:
            return super().zero_grad(set_to_none)
        for group in self.param_groups:  # what PyTorch's does, without its profiling scope
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        # PyTorch wraps this method as it wraps every optimizer's step: the wrapper runs the
        # step hooks (the diagnostics monitor's) around it, so they run on either path below
        grads = [[p.grad for p in g["params"]] for g in self.param_groups]
        if (self._lists is None or closure is not None
                or any(g is None for gs in grads for g in gs) or any(torch.is_tensor(g["lr"]) for g in self.param_groups)):
            adamw_step = torch.optim.AdamW.step  # PyTorch's, without its wrapper: the hooks ran already
            loss = (adamw_step.__wrapped__ if getattr(adamw_step, "hooked", False) else adamw_step)(self, closure)
            self._lists = self._gather()
            return loss
        assert self._steps is not None
        self._steps.add_(1)
        for group, gs, (params, exp_avgs, exp_avg_sqs, steps) in zip(self.param_groups, grads, self._lists):
            if not params:
                continue
            beta1, beta2 = group["betas"]
            torch._fused_adamw_(params, gs, exp_avgs, exp_avg_sqs, [], steps, lr=group["lr"], beta1=beta1,
                                beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], amsgrad=False,
                                maximize=group["maximize"], grad_scale=None, found_inf=None)
        return None

    def _gather(self) -> list[tuple[list[torch.Tensor], ...]] | None:
        """Per group: parameters, first and second moments, step counts; None where the fast
        path does not apply (amsgrad, a parameter without state, or not one dense CPU float32 set)."""
        for group in self.param_groups:
            if not group["fused"] or group["capturable"] or group["amsgrad"] or group["differentiable"] or any(
                    p not in self.state or p.device.type != "cpu" or p.dtype != torch.float32 for p in group["params"]):
                return None
        states = [self.state[p] for g in self.param_groups for p in g["params"]]
        self._steps = torch.stack([s["step"] for s in states])  # (n_params,)
        for i, s in enumerate(states):
            s["step"] = self._steps[i]  # a view: PyTorch's own step, if it runs again, counts it up too
        return [(g["params"], [self.state[p]["exp_avg"] for p in g["params"]], [self.state[p]["exp_avg_sq"] for p in g["params"]],
                 [self.state[p]["step"] for p in g["params"]]) for g in self.param_groups]


def make_optimizer(model: nn.Module, cfg: TrainConfig, fused: bool | None = None, capturable: bool = False) -> torch.optim.Optimizer:
    """AdamW / SGD / RMSProp; weight decay on matrices only (biases and norm gains are not decayed).

    `fused=None` picks PyTorch's fused kernels where they exist (AdamW and SGD, on the CPU and
    CUDA: one kernel for all parameters instead of a dozen small ops per parameter), else the
    foreach implementation. `capturable` (AdamW) keeps the step count on the device so the
    update can be captured in a CUDA graph.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if fused is None:
        fused = cfg.optimizer in ("adamw", "sgd") and all(p.device.type in ("cpu", "cuda") for p in params)
    kw: dict[str, Any] = {"fused": True} if fused else {"foreach": True}
    if capturable and cfg.optimizer == "adamw":
        kw["capturable"] = True
    if cfg.optimizer == "adamw":
        cpu = all(p.device.type == "cpu" for p in params)
        adamw = LeanAdamW if fused and cpu and not capturable else torch.optim.AdamW
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
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp_(max=1.0))
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
    if cfg.optimizer not in ("adamw", "sgd", "rmsprop"):
        raise MakemoreError(f"unknown optimizer {cfg.optimizer!r}; choose adamw, sgd or rmsprop")


# ---------------------------------------------------------------------------------------------
# callbacks


class Callback(Protocol):
    """Hooks into the loop; implement any subset (the Trainer checks with getattr)."""

    def on_train_start(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, loss: torch.Tensor) -> None: ...
    def on_log(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_eval(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...


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

    Args:
        callbacks: objects with any of the `Callback` methods.
        rank, world_size: this process's place among data-parallel workers; each draws its
            own disjoint slice of every global batch (the global batch is `cfg.batch_size`).
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
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.cfg = cfg
        self.device = device
        self.callbacks = list(callbacks)
        self.rank, self.world_size = rank, world_size
        self.train_split = dataset.splits["train"]
        self.closed_form = hasattr(model, "fit_closed_form")  # e.g. the counts bigram
        has_params = any(p.requires_grad for p in model.parameters())
        self.optimizer = optimizer or (make_optimizer(model, cfg) if has_params and not self.closed_form else None)
        # batch indices come from their own generator so they do not depend on anything else
        # (dropout, initialization) and can be saved and restored for bit-exact resume
        self.batch_gen = torch.Generator(device=device)
        self.batch_gen.manual_seed(cfg.seed)
        self.state = TrainState()
        self.stop_requested = False
        # the module the training step calls: the model itself, or a wrapper sharing its
        # parameters (DistributedDataParallel, torch.compile); evaluation and checkpoints use `model`
        self.train_model: nn.Module = model
        self.params = [p for p in model.parameters() if p.requires_grad]  # walked once, not every step
        # a replacement for get_batch + train_step (e.g. a CUDA-graph replay, see makemore.fast)
        self.step_fn: Callable[[], torch.Tensor] | None = None
        # On the CPU, columns after the batch's longest item hold only padding: dropping them
        # changes no loss or gradient of a causal model (nothing before a position sees it)
        # and saves a third of the work at batch 32. Not for models with BatchNorm (mlp-manual
        # normalizes over every position, padding included) or a hand-written backward, and not on GPUs, where
        # reading the length back would be a host sync and change shapes every step.
        self.trim_padding = device.type == "cpu" and not hasattr(model, "manual_backward") and not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()
        )
        self._global_targets: torch.Tensor | None = None  # targets in the whole global batch (data parallel)
        if cfg.batch_size % world_size:
            raise MakemoreError(f"--batch-size {cfg.batch_size} is not divisible by {world_size} processes")

    # -- pieces ------------------------------------------------------------------------------

    def get_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of a global batch of rows, gathered on the device."""
        n = self.train_split.x.size(0)
        idx = torch.randint(n, (self.cfg.batch_size,), generator=self.batch_gen, device=self.device)
        if self.world_size > 1:
            # every rank draws the same global batch and keeps its slice; the global target
            # count lets each rank weight its loss so the average of the ranks' gradients is
            # the gradient of the global mean (ranks hold different numbers of characters)
            self._global_targets = (self.train_split.y[idx] != IGNORE).sum()
            per = self.cfg.batch_size // self.world_size
            idx = idx[self.rank * per : (self.rank + 1) * per]
        return self.train_split.x[idx], self.train_split.y[idx]  # (B, T) each

    def progress(self) -> float:
        fracs = []
        if self.cfg.steps:
            fracs.append(self.state.step / self.cfg.steps)
        if self.cfg.time:
            fracs.append(self.state.elapsed / self.cfg.time)
        return min(max(fracs, default=0.0), 1.0)

    def done(self) -> bool:
        c, s = self.cfg, self.state
        if self.stop_requested:
            return True
        if c.steps is not None and s.step >= c.steps:
            return True
        if c.time is not None and self.world_size > 1:
            return s.step > 0 and all_max(s.elapsed) >= c.time  # every rank stops at the same step
        return c.time is not None and s.elapsed >= c.time

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step; returns the loss as a device tensor (no host sync)."""
        assert self.optimizer is not None
        lr = lr_at(self.cfg, self.state.step, self.progress())
        if self.optimizer.param_groups[0]["lr"] != lr:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        if self.trim_padding:
            last = int((y != IGNORE).sum(1).max())  # longest item + its end token; free on the CPU
            x, y = x[:, : max(last, 1)], y[:, : max(last, 1)]  # (B, L) each
        manual_backward = getattr(self.model, "manual_backward", None)
        if manual_backward is not None:
            loss = manual_backward(x, y)  # a model with a hand-written backward fills .grad itself
        else:
            _, loss = self.train_model(x, y)
            if self._global_targets is not None:
                # (local mean) * local count * world / global count: DDP's average over ranks
                # then gives the gradient of the mean over the whole global batch
                loss = loss * ((y != IGNORE).sum() * self.world_size / self._global_targets)
            loss.backward()
        if self.cfg.grad_clip:
            clip_grads_(self.params, self.cfg.grad_clip)
        self.optimizer.step()
        return loss.detach()

    def evaluate(self, splits: Sequence[str] = ("val",)) -> dict[str, float]:
        out = {}
        for name in splits:
            split = self.dataset.splits[name]
            if split.x.size(0):
                out[f"{name}_loss"] = evaluate_split(self.model, split)["nll"]
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
            loss = self.step_fn() if self.step_fn is not None else self.train_step(*self.get_batch())
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
            if s.step % c.eval_interval == 0 or self.done():
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
            return all_sum(loss.detach() / self.world_size)
        return loss.item()

    def _log_record(self) -> dict[str, float]:
        s = self.state
        assert self.optimizer is not None
        return {"step": s.step, "loss": s.last_loss, "lr": float(self.optimizer.param_groups[0]["lr"]), "elapsed": s.elapsed}

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

