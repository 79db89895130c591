"""`LeanAdamW`: PyTorch's fused AdamW on the CPU with its per-step Python bookkeeping done once.

A fast path of the speed layer (`makemore.speed`): the Trainer builds it in place of
`torch.optim.AdamW(fused=True)` on the CPU unless fast paths are switched off. The update is
PyTorch's own kernel with PyTorch's own arguments, equal to the bit (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks as _GLOBAL_POST_HOOKS
from torch.optim.optimizer import _global_optimizer_pre_hooks as _GLOBAL_PRE_HOOKS


class LeanAdamW(torch.optim.AdamW):
    """`torch.optim.AdamW(fused=True)` on the CPU, with its per-step Python bookkeeping done once.

    Each `step` of PyTorch's optimizer walks every parameter to gather the lists its fused kernel
    takes; for a model of a few hundred thousand parameters that walk costs more than the update
    itself. This subclass gathers the parameter, moment and step-count lists once, after
    PyTorch's own first step has created them, and then calls the same kernel
    (`torch._fused_adamw_`, a private function: the price of this path) with the same arguments,
    so the update is PyTorch's to the bit (tested). The per-parameter step counts become views
    of one tensor, counted up by one addition instead of one per tensor. It gives the step to
    PyTorch where the lists do not apply: a closure, a parameter without a gradient, a tensor
    learning rate; a new parameter group or a loaded state makes it gather them again.

    It also calls PyTorch's `Optimizer` methods without their `torch._disable_dynamo` wrappers and
    creates the moments itself, as PyTorch's first step would: those wrappers import TorchDynamo on
    first use, an import as heavy as PyTorch's own, and only matter to code that torch.compile
    traces, which the Trainer never does with this optimizer.

    PyTorch wraps every optimizer's `step` in a profiler scope that also runs the step hooks; at
    makemore's sizes that scope costs more than the update of a small model. This `step` runs
    bare while no hook is registered and no profiler records, and through PyTorch's own wrapper
    otherwise, so hooks (the diagnostics monitor's) and profiles see it as they see any optimizer.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lists: list[tuple[list[torch.Tensor], ...]] | None = None
        self._steps: torch.Tensor | None = None  # every parameter's step count; state["step"] are views

    def state_dict(self) -> dict[str, Any]:
        return _eager(torch.optim.Optimizer.state_dict)(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._lists = None  # the moments are new tensors now
        _eager(torch.optim.Optimizer.load_state_dict)(self, state_dict)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self._lists = None
        _eager(torch.optim.Optimizer.add_param_group)(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none or self._lists is None:
            return _eager(torch.optim.Optimizer.zero_grad)(self, set_to_none)
        for group in self.param_groups:  # what PyTorch's does, without its profiling scope
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        if (self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks or _GLOBAL_PRE_HOOKS
                or _GLOBAL_POST_HOOKS or torch.autograd._profiler_enabled()):
            return _hooked_step(self, closure)
        return self._step(closure)

    step.hooked = True  # type: ignore[attr-defined]  # PyTorch: do not wrap this step, it calls the wrapper itself

    def _step(self, closure: Callable[[], Any] | None) -> Any:
        """The update: the fused kernel on the gathered lists, or PyTorch's AdamW step where they
        may be stale or do not apply."""
        grads = [[p.grad for p in g["params"]] for g in self.param_groups]
        pytorch = (closure is not None or any(g is None for gs in grads for g in gs)
                   or any(torch.is_tensor(g["lr"]) for g in self.param_groups))
        if self._lists is None and not pytorch:
            self._lists = self._first_state()
        if self._lists is None or pytorch:
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

    def _first_state(self) -> list[tuple[list[torch.Tensor], ...]] | None:
        """Zero moments and step counts for parameters without state, as PyTorch's first step
        creates them (`Adam._init_group`), then `_gather`; None where the fast path does not apply."""
        if not self._applies():
            return None
        for p in (p for g in self.param_groups for p in g["params"] if p not in self.state):
            self.state[p] = {"step": torch.zeros((), dtype=torch.float32), "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                             "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        return self._gather()

    def _applies(self, need_state: bool = False) -> bool:
        """Whether every group is a dense CPU float32 fused AdamW without amsgrad (and, with
        `need_state`, every parameter has its moments)."""
        return not any(not group["fused"] or group["capturable"] or group["amsgrad"] or group["differentiable"] or any(
            (need_state and p not in self.state) or p.device.type != "cpu" or p.dtype != torch.float32 for p in group["params"])
            for group in self.param_groups)

    def _gather(self) -> list[tuple[list[torch.Tensor], ...]] | None:
        """Per group: parameters, first and second moments, step counts; None where the fast
        path does not apply (amsgrad, a parameter without state, or not one dense CPU float32 set)."""
        if not self._applies(need_state=True):
            return None
        states = [self.state[p] for g in self.param_groups for p in g["params"]]
        self._steps = torch.stack([s["step"] for s in states])  # (n_params,)
        for i, s in enumerate(states):
            s["step"] = self._steps[i]  # a view: PyTorch's own step, if it runs again, counts it up too
        return [(g["params"], [self.state[p]["exp_avg"] for p in g["params"]], [self.state[p]["exp_avg_sq"] for p in g["params"]],
                 [self.state[p]["step"] for p in g["params"]]) for g in self.param_groups]


def _eager(method: Callable[..., Any]) -> Callable[..., Any]:
    """PyTorch's `Optimizer` method without its `torch._disable_dynamo` wrapper (which imports
    TorchDynamo on its first call and changes nothing outside torch.compile)."""
    return getattr(method, "__wrapped__", method)


# LeanAdamW._step inside PyTorch's step wrapper: the profiler scope, the step hooks (global and the
# optimizer's own) and the profiler's parameter inspection, as for any optimizer
_hooked_step = torch.optim.Optimizer.profile_hook_step(LeanAdamW._step)
