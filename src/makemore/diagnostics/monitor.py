"""Monitor: hooks that watch any `nn.Module` train, with any optimizer, and write `Records`.

    mon = Monitor(model, optimizer)          # or: with Monitor(model, optimizer) as mon:
    for step in range(n):
        loss = ...; optimizer.zero_grad(); loss.backward(); optimizer.step()
        mon.step(loss)                       # cheap; a full recording every `every` (250) steps
    mon.findings(); mon.save_report("report.html")

What it measures on a recording step (the quantities of Karpathy's makemore part 3 lecture):
    * forward hooks on leaf modules, and activations called as functions (`F.relu`, `torch.tanh`,
      `F.gelu`, ... in a `forward`, seen by `tracing.FunctionTap`): output mean/std/histogram; for
      tanh/sigmoid-like outputs the saturated fraction, for ReLU-like the fraction <= 0, for smooth
      ones (GELU, SiLU, ...) the fraction whose local slope is below 0.06; per-unit activity (so a
      unit dead over a window of batches is found per unit) and a small units x examples map. The
      unit axis comes from the op that produced the tensor (channels for convolutions, features
      for linear and recurrent layers); outputs may be tuples, dicts, dataclasses, ModelOutputs or
      PackedSequences;
    * recurrent layers (nn.RNN/GRU/LSTM) run step by step (`recurrent.unroll`): every layer's
      outputs and gates, and the gradient reaching the hidden state at each time step;
    * the loss function the model or the loop calls (cross-entropy, NLL, BCE, MSE, ...): the
      number of classes it compares against, and its own value at step 0;
    * a tensor hook on each output: mean/std/histogram of the gradient reaching that module;
    * optimizer step pre/post hooks: each parameter's gradient as the optimizer uses it (after any
      clipping) and its grad:data ratio; the true update:data ratio std(W_after - W_before) /
      std(W_before), correct for SGD, momentum, Adam and RMSProp alike (without an optimizer the
      gradients and the update are read in `step()`); the learning rate; whether the optimizer
      skipped the step (GradScaler on Inf/NaN gradients);
    * forward pre-hooks on BatchNorm layers: train-mode vs eval-mode output gap on the batch, and
      the gap that sampling noise alone gives at that batch;
    * every step's loss (a loss on a device stays there until the next recording step).

Cost: on other steps no hook is registered at all (and none that autograd keeps: tensor hooks
live on the step's graph, module and optimizer hooks are removed) and the function mode is off;
`step()` appends the loss to a list (a CPU loss as its value, read at once; any other detached and
left on its device: no host sync). All heavy hooks are registered just before a recording step and
removed right after it; the monitor's own measurements run outside the function mode, and after the
first recording the mode stays off altogether for a model with no activation called as a function,
once the loss's classes are known. A recording step's numbers and the device losses since the last
one reach the host in one device-to-host copy of one concatenated tensor.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from . import recurrent
from .checks import Finding, run_checks
from .records import (
    ActStats, GradStats, Histogram, ModuleInfo, NormStats, ParamStats, Records, StepRecord, TimeStats, UnitMap,
)
from .stats import (
    NONLINEAR_ROLES, Histograms, activation_summary, batchnorm_mismatch, batchnorm_noise, finite_summary, nonfinite,
    param_summary, update_ratio,
)
from .tracing import ACTIVATIONS, LOSSES, FunctionTap, default_axis, loss_classes, module_axis, primary_tensor

# (module class, role, (centre, half range) of its output for the saturation test)
_SATURATING: list[tuple[type[nn.Module], tuple[float, float]]] = [
    (nn.Tanh, (0.0, 1.0)), (nn.Sigmoid, (0.5, 0.5)), (nn.Hardsigmoid, (0.5, 0.5)),
]
_RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU)
# smooth activations pass gradient below zero too: judged by their local slope; other libraries'
# versions (e.g. transformers' NewGELUActivation) are known by their class name
_SMOOTH = (nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus)
_SMOOTH_NAMES = ("GELU", "SiLU", "Swish", "Mish", "ELU", "Softplus")
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, getattr(nn, "RMSNorm", nn.LayerNorm))
_LINEAR = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)
_SKIP = (nn.Identity, nn.modules.dropout._DropoutNd)
# the gradient reaching these roles' outputs is recorded (the depth checks and pictures use them)
_GRAD_ROLES = ("saturating", "relu", "smooth", "linear", "other")


def module_role(m: nn.Module) -> tuple[str, tuple[float, float]]:
    """The role of a leaf module in the checks, and its output's (centre, half range)."""
    if isinstance(m, _RELU_LIKE):
        return "relu", (0.0, 1.0)
    if isinstance(m, _SMOOTH) or any(k in type(m).__name__ for k in _SMOOTH_NAMES):
        return "smooth", (0.0, 1.0)
    if recurrent.supported(m):  # run step by step on recording steps: its layers are judged, not its output
        return "other", (0.0, 1.0)
    if isinstance(m, nn.Hardtanh):
        return "saturating", ((m.max_val + m.min_val) / 2, (m.max_val - m.min_val) / 2)
    for cls, scale in _SATURATING:
        if isinstance(m, cls):
            return "saturating", scale
    if isinstance(m, nn.RNNBase):  # the hidden states of RNN/GRU/LSTM are tanh-bounded (a relu RNN is not)
        return ("relu" if getattr(m, "nonlinearity", "tanh") == "relu" else "saturating"), (0.0, 1.0)
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return "batchnorm", (0.0, 1.0)
    if isinstance(m, _NORMS):
        return "norm", (0.0, 1.0)
    if isinstance(m, nn.Embedding):
        return "embedding", (0.0, 1.0)
    if isinstance(m, _LINEAR):
        return "linear", (0.0, 1.0)
    return "other", (0.0, 1.0)


# steps between full recordings: at 100 the transformer trained 9.5% slower on the CPU, at 250 0.1%
# (bench/monitor_overhead.py); the lectures' plots need a few dozen recordings over a run
DEFAULT_EVERY = 250

_COUNTS = ("counts", "unit_active")  # the values that are counts: read as ints


class _Transfer:
    """Device tensors waiting for the recording step's single device-to-host copy, and the
    histograms of the step, counted together (`batch`) just before it."""

    def __init__(self, batch: Histograms | None = None) -> None:
        self.items: dict[tuple[str, ...], Tensor] = {}
        self.batch = batch
        self.hist_keys: list[tuple[str, ...]] = []  # whose histogram each row of the batch is

    def put(self, key: tuple[str, ...], values: dict[str, Tensor]) -> None:
        for k, t in values.items():
            self.items[(*key, k)] = t
        if self.batch is not None and len(self.batch) > len(self.hist_keys):  # the summary added one
            self.hist_keys.append((*key, "counts"))

    def fetch(self) -> dict[tuple[str, ...], Any]:
        """One concatenation on the device, one copy to the host, then split by key into lists of
        floats (of ints for counts); the unit maps stay numpy arrays (they become int8 pictures).
        The 0-d values, most of them, go into the concatenation as one stack rather than one
        reshape each, and the histograms as one (tensors, bins) block."""
        if not self.items:
            return {}
        items = self.items
        dev = next(iter(items.values())).device
        scalars: list[tuple[str, ...]] = []
        vectors: list[tuple[str, ...]] = []
        maps: list[tuple[str, ...]] = []
        for k, t in items.items():
            (scalars if t.dim() == 0 else maps if k[-1] == "map" else vectors).append(k)
        hist_keys, self.hist_keys = self.hist_keys, []
        with torch.no_grad():
            parts = [_stack([items[k] for k in scalars], dev).float()] if scalars else []
            parts += [items[k].reshape(-1).float().to(dev) for k in vectors]
            if hist_keys:
                assert self.batch is not None
                parts.append(self.batch.counts().to(dev).reshape(-1))  # (tensors * bins,)
            parts += [items[k].reshape(-1).float().to(dev) for k in maps]
            flat = torch.cat(parts).cpu().numpy()  # the one device-to-host transfer
        sizes = [items[k].numel() for k in vectors]
        bins = self.batch.bins if self.batch is not None else 0
        n_head = len(scalars) + sum(sizes)
        head = flat[:n_head].tolist()
        out: dict[tuple[str, ...], Any] = dict(zip(scalars, ([v] for v in head)))
        i = len(scalars)
        for k, n in zip(vectors, sizes):  # counts as ints, read off the float32 copy (exact below 2^24)
            out[k] = flat[i : i + n].astype(np.int64).tolist() if k[-1] in _COUNTS else head[i : i + n]
            i += n
        if hist_keys:
            out.update(zip(hist_keys, flat[i : i + len(hist_keys) * bins].astype(np.int64).reshape(-1, bins).tolist()))
            i += len(hist_keys) * bins
        for k in maps:
            n = items[k].numel()
            out[k] = flat[i : i + n]
            i += n
        self.items.clear()
        return out


class Monitor:
    """Records the health of `model` while it trains; see the module docstring.

    Args:
        model: any nn.Module.
        optimizer: its optimizer (any torch.optim.Optimizer), for the update:data ratio; optional.
        every: record fully every `every` steps (step 0 always; losses are kept for every step).
        window: recording steps over which per-unit activity accumulates (a dead unit is one that
            passed no gradient on any example of any batch in the window).
        n_classes: classes the loss compares, for the step-0 loss check (default: read from the
            loss function the model or loop calls, e.g. F.cross_entropy's input; a regression
            loss turns the check off, as does 0).
        bins: histogram bins.
        start_step: the step number of the first `step()` call (resumed training).
        num_classes: the same as n_classes.
    """

    # the step's histograms counted together, the non-finite flags read on the host, std(W_before)
    # taken once; off: each summary on its own, the plain way (tests compare the two, to the bit)
    _batched = True
    # the function mode on at every recording step, not only until it has nothing more to see
    # (tests compare the two, to the bit)
    _tap_always = False

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        every: int = DEFAULT_EVERY,
        window: int = 5,
        n_classes: int | None = None,
        bins: int = 40,
        map_rows: int = 48,
        map_units: int = 128,
        start_step: int = 0,
        num_classes: int | None = None,
    ) -> None:
        if every < 1 or window < 1:
            raise ValueError("every and window must be at least 1")
        n_classes = num_classes if num_classes is not None else n_classes
        self._classes_given = n_classes is not None
        self.model, self.optimizer = model, optimizer
        self.bins, self.map_rows, self.map_units = bins, map_rows, map_units
        self.step_index = start_step
        # leaf modules, less those whose output tells nothing new (identity, dropout)
        self.leaves = [(name or type(model).__name__, m) for name, m in model.named_modules()
                       if next(m.children(), None) is None and not isinstance(m, _SKIP)]
        self._roles = [module_role(m) for _, m in self.leaves]
        self._params = dict(model.named_parameters())
        self.param_names = {id(p): name for name, p in self._params.items()}
        self.records = Records(every=every, window=window, n_classes=n_classes, first_step=start_step, meta=self._meta(),
                               matrices=self._matrices())
        self._infos: dict[str, ModuleInfo] = {}  # leaf modules in the order their forward ran
        self._handles: list[Any] = []
        self._transfer = _Transfer(Histograms(bins) if self._batched else None)
        self._losses: list[Tensor | float] = []
        self._device_losses = False  # some of them are tensors on a device, not yet read
        self._rows: dict[str, int] = {}
        self._leaf = dict(self.leaves)
        self._seen_fwd: set[str] = set()
        self._seen_bwd: set[str] = set()
        self._before: dict[str, Tensor] = {}
        self._closure = False  # the optimizer step being recorded was called with a closure
        # what the function mode and the module stack see on a recording step
        root = type(model).__name__
        self._names = {id(m): (name or root) for name, m in model.named_modules()}
        self._nonlinear_leaves = {name for name, m in self.leaves if module_role(m)[0] in (*NONLINEAR_ROLES, "softmax")
                                  or "Softmax" in type(m).__name__}
        self._tap = FunctionTap(self._on_call)
        # the function mode costs a Python call per torch call: after a recording whose forward it
        # watched, it stays on only for a model that calls activations as functions, or while the
        # loss function's classes are still unknown; a module's unit axis is kept from its first recording
        self._tap_needed = True
        self._functional = False  # the model called an activation as a function
        self._forward_seen = False  # the function mode watched a forward of the model
        self._axes: dict[str, int] = {}
        self._stack: list[str] = []
        self._tensor_info: dict[int, tuple[weakref.ref[Tensor], int, str | None]] = {}  # id -> (ref, axis, producer)
        self._fn_count: dict[str, int] = {}
        self._busy = False  # inside the monitor's own hooks: their torch calls are not the model's
        self._loss_call: tuple[str, int | None, str] | None = None
        self._rnn: dict[str, list[recurrent.LayerTaps]] = {}
        self._stepped = False  # the optimizer's step pre-hook ran on this recording step
        self._lr: float | None = None
        self._snapshot: dict[str, Tensor] = {}  # no optimizer: the weights before the step
        self._forced: set[int] = set()
        self._armed = False
        self._closed = False
        if self._is_recording(self.step_index):
            self._arm()

    # -- the user's calls --------------------------------------------------------------------

    def step(self, loss: Tensor | float | None = None) -> None:
        """Call once per optimizer step, after `optimizer.step()`, with that step's loss."""
        if self._closed:
            raise RuntimeError("Monitor.step() after close()")
        if isinstance(loss, Tensor) and loss.is_cpu and loss.dtype is torch.float32:  # the usual case: read at once
            self._losses.append(loss.item())
        else:
            self._add_loss(loss)
        if self._armed:
            self._exit_mode()
            if self.optimizer is None:
                self._param_stats(self.model.parameters())
                self._manual_updates()
            self._collect(self.step_index)
            self._disarm()
        self.step_index += 1
        if self._is_recording(self.step_index):
            self._arm()

    def _add_loss(self, loss: Tensor | float | None) -> None:
        """Keep a step's loss as a float32 value: on the CPU read at once; on a device kept there
        (detached) until the recording step."""
        if isinstance(loss, Tensor):
            if loss.is_cpu:
                self._losses.append(loss.float().item())
            else:
                self._losses.append(loss.detach())
                self._device_losses = True
        else:
            self._losses.append(math.nan if loss is None else float(np.float32(loss)))

    @property
    def armed(self) -> bool:
        """Hooks are in place for the next step: its forward and backward must run eagerly (a
        compiled module or a replayed CUDA graph does not call hooks registered afterwards)."""
        return self._armed

    def record_next(self) -> None:
        """Record the next step fully even if it is not on the interval (e.g. the last step)."""
        self._forced.add(self.step_index)
        if not self._armed and not self._closed:
            self._arm()

    def flush(self) -> Records:
        """Bring the losses still on the device over (one transfer) and return the records."""
        if self._losses:
            self._put_losses()
            self._store_losses(self._transfer.fetch())
        return self.records

    def findings(self) -> list[Finding]:
        """The checks' verdict on everything recorded so far, most serious first."""
        return run_checks(self.flush())

    def save(self, path: str | Path) -> None:
        """Write the records as JSON (for `makemore report`)."""
        self.flush().save(path)

    def save_report(self, path: str | Path, title: str | None = None) -> Path:
        """Write the self-contained HTML report (findings first, then the pictures)."""
        from .report import write_report

        return write_report(self.flush(), Path(path), title=title)

    def close(self) -> Records:
        """Remove every hook and return the records; the monitor cannot step afterwards."""
        if not self._closed:
            self.flush()
            self._disarm()
            self._closed = True
        return self.records

    def _repr_html_(self) -> str:
        """Jupyter shows the report of what was recorded so far."""
        from .integrations.notebook import monitor_html

        return monitor_html(self)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- arming ------------------------------------------------------------------------------

    def _is_recording(self, step: int) -> bool:
        return step % self.records.every == 0 or step in self._forced

    def _arm(self) -> None:
        self._seen_fwd.clear()
        self._seen_bwd.clear()
        h = self._handles
        for (name, m), (role, scale) in zip(self.leaves, self._roles):
            h.append(m.register_forward_hook(self._forward_hook(name, role, scale), with_kwargs=True))
            if role == "batchnorm" and getattr(m, "track_running_stats", False):
                h.append(m.register_forward_pre_hook(self._bn_hook(name)))
        h.append(self.model.register_forward_pre_hook(self._root_pre_hook))
        if self._tap_needed:  # the module stack names the activations called as functions
            h.append(register_module_forward_pre_hook(self._push))
            h.append(register_module_forward_hook(self._pop))
        if self.optimizer is not None:
            h.append(self.optimizer.register_step_pre_hook(self._pre_step))
            h.append(self.optimizer.register_step_post_hook(self._post_step))
        self._stepped, self._lr, self._loss_call = False, None, None
        self._armed = True

    def _disarm(self) -> None:
        self._exit_mode()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._before.clear()
        self._snapshot.clear()
        self._stack.clear()
        self._tensor_info.clear()
        self._rnn.clear()
        self._armed = False

    def _exit_mode(self) -> None:
        if self._tap.active:
            self._tap.__exit__(None, None, None)

    @contextlib.contextmanager
    def _own_work(self) -> Iterator[None]:
        """The monitor's own torch calls: not the model's (`_on_call` ignores them), and not sent
        through the function mode at all when it is on top of the stack (a Python call per op,
        shape reads included). It nests: the hooks run in it and so do the statistics they take."""
        busy, self._busy = self._busy, True
        n = torch._C._len_torch_function_stack()
        aside = n > 0 and torch._C._get_function_stack_at(n - 1) is self._tap
        if aside:
            torch._C._pop_torch_function_stack()
        try:
            yield
        finally:
            if aside:
                torch._C._push_on_torch_function_stack(self._tap)
            self._busy = busy

    # -- hooks -------------------------------------------------------------------------------

    def _forward_hook(self, name: str, role: str, scale: tuple[float, float]) -> Callable[..., Any]:
        def hook(module: nn.Module, args: Any, kwargs: Any, out: Any) -> Any:
            # evaluation passes (no grad) and repeated calls of a shared module are not the step
            if not torch.is_grad_enabled() or self._busy:
                return None
            with self._own_work():
                return self._on_forward(module, name, role, scale, args, kwargs, out)

        return hook

    def _on_forward(self, module: nn.Module, name: str, role: str, scale: tuple[float, float], args: Any, kwargs: Any,
                    out: Any) -> Any:
        """The forward hook of a leaf module on a recording step; returns a replacement output or None."""
        replaced, first = None, name not in self._seen_fwd
        if first and recurrent.supported(module):
            taps: list[recurrent.LayerTaps] = []
            replaced = out = recurrent.unroll(module, args, kwargs, taps)  # type: ignore[arg-type]
            self._rnn[name] = taps
        y = primary_tensor(out)
        if y is None or not y.is_floating_point() or y.numel() == 0:
            return replaced
        x = next((a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)), None)
        axis = module_axis(module)
        if axis is None:
            axis = self._axes.get(name)
            if axis is None:
                axis = self._axes[name] = self._axis_of(x, y)
        self._mark(y, axis, name)
        if not first:
            return replaced
        self._seen_fwd.add(name)
        bias = getattr(module, "bias", None)
        bias_param = self.param_names.get(id(bias)) if isinstance(bias, Tensor) else None
        slope = (lambda t: module(t)) if role == "smooth" else None  # noqa: E731
        self._record(name, type(module).__name__, role, scale, y, axis, x, slope, bias_param)
        for layer, tap in enumerate(self._rnn.get(name, [])):
            self._record_layer(name, module, layer, tap)
        return replaced

    def _record(self, name: str, kind: str, role: str, scale: tuple[float, float], y: Tensor, axis: int,
                x: Tensor | None = None, slope_of: Callable[[Tensor], Tensor] | None = None,
                bias_param: str | None = None, grad: bool = True) -> None:
        """Measure one activation tensor y (and hook its gradient); called inside `_own_work`."""
        units = y.shape[axis] if y.dim() else 1
        self._rows[name] = y.numel() // max(1, units)  # examples each unit is counted over (host ints)
        if name not in self._infos:
            self._infos[name] = ModuleInfo(name, kind, role, int(units), bias_param)
        slope = None
        if role == "smooth":
            if slope_of is None or x is None or x.shape != y.shape:
                role = self._infos[name].role = "other"  # no input to take the slope at: stats only
            else:  # elementwise: the gradient of sum(f(x)) is f'(x)
                with torch.enable_grad():
                    xx = x.detach().requires_grad_(True)
                    (slope,) = torch.autograd.grad(slope_of(xx).sum(), xx)
        # (the summary detaches y and the slope: it builds no graph)
        self._transfer.put(("act", name), activation_summary(
            y, role, self.bins, scale, self.map_rows, self.map_units, axis, slope, self._transfer.batch))
        if grad and y.requires_grad and role in _GRAD_ROLES:
            y.register_hook(self._grad_hook(name))

    def _record_layer(self, name: str, module: nn.Module, layer: int, tap: recurrent.LayerTaps) -> None:
        """One layer of an unrolled recurrent module: its tanh (or relu) outputs and its gates."""
        lname = f"{name}.layer{layer}"
        relu = getattr(module, "nonlinearity", "tanh") == "relu"
        cand = torch.cat(tap.candidate)  # (rows, H): every step's rows
        self._record(lname, "ReLU" if relu else "Tanh", "relu" if relu else "saturating", (0.0, 1.0), cand, -1, grad=False)
        if tap.gates:
            self._record(f"{lname}.gates", "Sigmoid", "saturating", (0.5, 0.5), torch.cat(tap.gates), -1, grad=False)

    # -- what the function mode sees -----------------------------------------------------------

    def _axis_of(self, x: Tensor | None, y: Tensor) -> int:
        """The unit axis y inherits from x (same rank, same size there), else the default."""
        if isinstance(x, Tensor):
            info = self._tensor_info.get(id(x))
            if info is not None and info[0]() is x and x.dim() == y.dim() and x.shape[info[1]] == y.shape[info[1]]:
                return info[1]
        return default_axis(y)

    def _mark(self, t: Tensor, axis: int, producer: str | None) -> None:
        self._tensor_info[id(t)] = (weakref.ref(t), axis, producer)

    def _producer(self, x: Any) -> str | None:
        info = self._tensor_info.get(id(x)) if isinstance(x, Tensor) else None
        return info[2] if info is not None and info[0]() is x else None

    def _on_call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        if self._busy or not isinstance(out, Tensor):
            return
        spec = ACTIVATIONS.get(func)
        if spec is not None:
            self._on_activation(func, spec, args, kwargs, out)
            return
        kind = LOSSES.get(func)
        if kind is not None:
            self._on_loss(kind, args, kwargs, out)
            return
        x = args[0] if args else None
        if isinstance(x, Tensor) and x is not out:
            info = self._tensor_info.get(id(x))
            if info is not None and info[0]() is x and out.dim() == x.dim() and out.shape[info[1]] == x.shape[info[1]]:
                self._mark(out, info[1], None)

    def _on_activation(self, func: Any, spec: tuple[str, str, tuple[float, float]], args: tuple[Any, ...],
                       kwargs: dict[str, Any], out: Tensor) -> None:
        inner = self._stack[-1] if self._stack else None
        if not torch.is_grad_enabled() or inner in self._nonlinear_leaves:
            return  # an activation module calling its function: its own hook measures it
        self._functional = True
        kind, role, scale = spec
        x = args[0] if args else kwargs.get("input")
        base = f"{self._producer(x) or inner or self._names[id(self.model)]}.{kind.lower()}"
        k = self._fn_count[base] = self._fn_count.get(base, 0) + 1
        name = base if k == 1 else f"{base}#{k}"
        axis = self._axis_of(x, out)
        self._mark(out, axis, name)
        if name in self._seen_fwd or not out.is_floating_point():
            return
        self._seen_fwd.add(name)
        rest, kw = args[1:], {k: v for k, v in kwargs.items() if k != "inplace"}
        slope = (lambda t: func(t, *rest, **kw)) if role == "smooth" and x is not out else None  # noqa: E731
        with self._own_work():
            self._record(name, kind, role, scale, out, axis, x if isinstance(x, Tensor) else None, slope)

    def _on_loss(self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> None:
        if self._loss_call is not None:
            return  # the first loss of the step is the one the model is trained on (or part of it)
        reduction = kwargs.get("reduction", "mean")
        self._loss_call = (kind, loss_classes(kind, args, kwargs), reduction)
        if self.step_index == 0 and kind != "regression" and reduction == "mean" and out.numel() == 1:
            self._transfer.put(("lossfn", "value"), {"v": out.detach()})

    def _root_pre_hook(self, module: nn.Module, args: Any) -> None:
        if not torch.is_grad_enabled():
            return
        self._fn_count.clear()
        if self._tap_needed and not self._tap.active:
            self._tap.__enter__()  # left at the optimizer's step, at Monitor.step(), or at disarm
            self._forward_seen = True
        if self.optimizer is None and not self._snapshot:
            self._snapshot = {n: p.detach().clone() for n, p in self.model.named_parameters()
                              if p.requires_grad and p.numel() > 1}

    def _push(self, module: nn.Module, args: Any) -> None:
        name = self._names.get(id(module))
        if name is not None:
            self._stack.append(name)

    def _pop(self, module: nn.Module, args: Any, out: Any) -> None:
        name = self._names.get(id(module))
        if name is not None and self._stack and self._stack[-1] == name:
            self._stack.pop()

    def _grad_hook(self, name: str) -> Callable[[Tensor], None]:
        def hook(g: Tensor) -> None:
            if name not in self._seen_bwd:
                self._seen_bwd.add(name)
                with self._own_work():
                    self._transfer.put(("grad", name), finite_summary(g, self.bins, self._transfer.batch))

        return hook

    def _bn_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            if not torch.is_grad_enabled() or not module.training or ("bn", name, "mismatch") in self._transfer.items:
                return
            with self._own_work(), torch.no_grad():
                if args and isinstance(args[0], Tensor) and module.running_mean is not None:
                    self._transfer.put(("bn", name), {"mismatch": batchnorm_mismatch(args[0], module),
                                                      "noise": batchnorm_noise(args[0])})

        return hook

    def _param_stats(self, params: Any) -> None:
        """Gradient statistics of the parameters, as the optimizer is about to use them."""
        with torch.no_grad():
            for p in params:
                name = self.param_names.get(id(p))
                if name is not None and p.grad is not None:
                    self._transfer.put(("param", name), param_summary(p, self.bins, self._transfer.batch))

    def _manual_updates(self) -> None:
        """Without an optimizer: the update the loop applied since the step's forward."""
        params = self._params
        with torch.no_grad():
            for name, before in self._snapshot.items():
                if params[name].grad is not None:
                    self._transfer.put(("update", name), {"ratio": update_ratio(before, params[name])})
        self._snapshot.clear()

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._exit_mode()  # the optimizer's own arithmetic is not the model's
        self._stepped = True
        self._lr = max((float(g["lr"]) for g in optimizer.param_groups if "lr" in g), default=None)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        # step(closure) (LBFGS, PyTorch Lightning) computes the gradients inside step(): read them after it
        # (the hooks get step()'s positional arguments with the optimizer itself first)
        self._closure = (len(args) > 1 and args[1] is not None) or kwargs.get("closure") is not None
        if not self._closure:
            self._param_stats(params)
        for p in params:
            name = self.param_names.get(id(p))
            if name is not None and (p.grad is not None or self._closure) and p.requires_grad and p.numel() > 1:
                self._before[name] = p.detach().clone()

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        params = self._params
        if self._closure:
            self._param_stats(p for group in optimizer.param_groups for p in group["params"])
        with torch.no_grad():
            for name, before in self._before.items():
                if params[name].grad is not None:
                    # std(W_before): the data_std _param_stats took of these same weights before the step
                    std = None if self._closure or not self._batched or not before.is_contiguous() else self._transfer.items.get(
                        ("param", name, "data_std"))
                    self._transfer.put(("update", name), {"ratio": update_ratio(before, params[name], std)})
                    if self._closure:  # the weights the gradients were computed with
                        self._transfer.put(("param", name), {"data_std": before.float().std()})
        self._before.clear()

    # -- host side ---------------------------------------------------------------------------

    def _put_losses(self) -> None:
        """The losses since the last call: read on the host already, into the records now; else
        into the step's one transfer (as float32)."""
        losses = self._losses
        if not self._device_losses:
            self.records.losses.extend(losses)  # type: ignore[arg-type]
            self._losses = []
            return
        stacked: Tensor | None = None
        with contextlib.suppress(TypeError, RuntimeError):  # the usual case, 0-d tensors on one device: one op
            stacked = torch.stack(losses).float()  # type: ignore[arg-type]
        if stacked is None or stacked.dim() != 1:  # other shapes, other devices, some on the host
            dev = next(t.device for t in losses if isinstance(t, Tensor) and not t.is_cpu)
            stacked = torch.stack([t.float().reshape(()).to(dev) if isinstance(t, Tensor) else torch.tensor(t, device=dev)
                                   for t in losses])
        self._transfer.items[("loss",)] = stacked
        self._losses = []
        self._device_losses = False

    def _store_losses(self, host: dict[tuple[str, ...], list[float]]) -> None:
        self.records.losses.extend(host.pop(("loss",), []))

    def _collect(self, step: int) -> None:
        """Turn this recording step's device tensors into a StepRecord (one transfer)."""
        self._put_losses()
        self._put_time()
        host = self._transfer.fetch()
        self._store_losses(host)
        rec = StepRecord(step=step, loss=self.records.loss_at(step) if self.records.loss_at(step) is not None else math.nan,
                         lr=self._lr, skipped=self.optimizer is not None and not self._stepped)
        self._store_loss_function(host.pop(("lossfn", "value", "v"), None))
        if self._forward_seen and not self._functional and self.records.n_classes is not None:
            self._tap_needed = self._tap_always  # nothing more for the function mode to see
        for name, taps in self._rnn.items():
            for layer, tap in enumerate(taps):
                t = self._time_stats(tap, host.pop(("time", f"{name}.layer{layer}", "total"), None),
                                     host.pop(("time", f"{name}.layer{layer}", "rec"), None))
                if t is not None:
                    rec.time[f"{name}.layer{layer}"] = t
        groups: dict[tuple[str, str], dict[str, list[float]]] = {}
        for key, vals in host.items():
            groups.setdefault((key[0], key[1]), {})[key[2]] = vals
        for (kind, name), v in groups.items():
            if kind == "act":
                rec.acts[name] = self._act_stats(name, step, v)
            elif kind == "grad":
                rec.grads[name] = GradStats(v["mean"][0], v["std"][0], _flag(v, "nonfinite", "mean"), _hist(v))
            elif kind == "param":
                rec.params[name] = ParamStats(
                    v["data_std"][0], v["grad_mean"][0], v["grad_std"][0], v["grad_rms"][0], _flag(v, "grad_nonfinite", "grad_mean"),
                    _hist(v) if "counts" in v else None,
                )
            elif kind == "bn":
                bn = self._leaf[name]
                rec.norms[name] = NormStats(v["mismatch"][0], getattr(bn, "momentum", None), v["noise"][0])
        for (kind, name), v in groups.items():
            if kind == "update" and name in rec.params:
                rec.params[name].update_ratio = v["ratio"][0]
        # modules in the order their forward ran (the first recording step fixes it)
        known = {m.name for m in self.records.modules}
        self.records.modules += [info for n, info in self._infos.items() if n not in known]
        self._set_output_module()
        self.records.steps.append(rec)

    def _store_loss_function(self, value: list[float] | None) -> None:
        """What the loss function said: the classes it compares (unless given) and its step-0 value."""
        if self._loss_call is None:
            return
        kind, classes, reduction = self._loss_call
        if not self._classes_given and self.records.n_classes is None:
            # a regression loss, or a summed one, has no ln(classes) to compare with: the check is off
            self.records.n_classes = classes if classes and reduction == "mean" else 0
        if value and self.records.init_loss is None:
            self.records.init_loss = value[0]

    def _put_time(self) -> None:
        """Each unrolled layer's squared gradient norms per time step (NaN: no gradient came)."""
        for name, taps in self._rnn.items():
            for layer, tap in enumerate(taps):
                if tap.total_sq and len(tap.rows) >= 2:
                    nan = torch.full((), math.nan, device=tap.output[0].device)
                    total = torch.stack([tap.total_sq.get(t, nan) for t in range(len(tap.rows))])
                    rec = torch.stack([tap.rec_sq.get(t, nan) for t in range(len(tap.rows) - 1)])
                    self._transfer.put(("time", f"{name}.layer{layer}"), {"total": total, "rec": rec})

    def _time_stats(self, tap: recurrent.LayerTaps, total: list[float] | None, rec: list[float] | None) -> TimeStats | None:
        """Per-step gradient rms and the recurrence's per-step gain of an unrolled layer."""
        if total is None or rec is None:
            return None
        H = tap.output[0].shape[-1]
        rms = [math.sqrt(sq / (rows * H)) for sq, rows in zip(total, tap.rows)]
        gains = [math.sqrt(r / nxt) if nxt > 0 else math.nan for r, nxt in zip(rec, total[1:])]
        return TimeStats(rms, gains)

    def _act_stats(self, name: str, step: int, v: dict[str, list[float]]) -> ActStats:
        info = self._infos[name]
        st = ActStats(v["mean"][0], v["std"][0], _flag(v, "nonfinite", "mean"), _hist(v), rows=0)
        if "inactive" in v:
            st.unit_active = v["unit_active"]
            units = len(st.unit_active)
            st.rows = self._rows.get(name, 0)
            if "map" in v:
                cols = min(units, self.map_units)
                unit_map = UnitMap(step, np.asarray(v["map"], dtype=np.int8).reshape(-1, cols).tolist())
                maps = self.records.unit_maps.setdefault(name, [])  # the first map and the latest
                if len(maps) < 2:
                    maps.append(unit_map)
                else:
                    maps[-1] = unit_map
            if info.role == "saturating":
                st.saturated = v["inactive"][0]
            elif info.role == "smooth":
                st.inactive = v["inactive"][0]
            else:
                st.zero = v["inactive"][0]
        return st

    def _set_output_module(self) -> None:
        n = self.records.n_classes
        if n and self.records.output_module is None:
            outs = [m.name for m in self.records.modules if m.units == n and m.role == "linear"]
            self.records.output_module = outs[-1] if outs else None

    def _matrices(self) -> list[str]:
        """Weight matrices of the layers (not embedding tables, not free parameters like a bigram's
        logit table): the update:data ratios are judged on these, as in the lecture's plot."""
        out = []
        for name, m in self.leaves:
            if isinstance(m, nn.Embedding):
                continue
            # by the parameter's own name: a tied matrix (an output layer sharing the embedding) counts once
            out += [self.param_names[id(p)] for p in m.parameters(recurse=False) if p.dim() >= 2 and p.requires_grad]
        return list(dict.fromkeys(out))

    def _meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "model": type(self.model).__name__,
            "n_params": sum(p.numel() for p in self.model.parameters()),
        }
        if self.optimizer is not None:
            g = self.optimizer.param_groups[0]
            meta |= {"optimizer": _public_name(type(self.optimizer)), "lr": g.get("lr"), "momentum": g.get("momentum"),
                     "betas": list(g["betas"]) if "betas" in g else None}
        return meta


def _public_name(cls: type) -> str:
    """The optimizer's public name: its first torch.optim class (a subclass that only speeds up
    AdamW is shown as AdamW), else its own name."""
    return next((c.__name__ for c in cls.__mro__ if c.__module__.startswith("torch.optim")), cls.__name__)


def _stack(values: list[Tensor], device: torch.device) -> Tensor:
    """The 0-d values as one vector on `device` (each moved there only when they are not all on one device)."""
    try:
        return torch.stack(values).to(device)
    except RuntimeError:  # a model spread over devices
        return torch.stack([t.to(device) for t in values])


def _flag(v: dict[str, list[float]], flag: str, mean: str) -> float:
    """A summary's non-finite flag: sent by the device, or read off its mean here (the same value)."""
    return v[flag][0] if flag in v else nonfinite(v[mean][0])


def _hist(v: dict[str, list[float]]) -> Histogram:
    return Histogram(v["lo"][0], v["hi"][0], v["counts"])


__all__ = ["Monitor", "module_role"]
