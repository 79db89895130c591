"""Monitor: hooks that watch any `nn.Module` train, with any optimizer, and write `Records`.

    mon = Monitor(model, optimizer)          # or: with Monitor(model, optimizer) as mon:
    for step in range(n):
        loss = ...; optimizer.zero_grad(); loss.backward(); optimizer.step()
        mon.step(loss)                       # cheap; a full recording every `every` (250) steps
    mon.findings(); mon.save_report("report.html")

What it measures on a recording step (the quantities of Karpathy's makemore part 3 lecture):
    * forward hooks on leaf modules: output mean/std/histogram; for tanh/sigmoid-like outputs
      the saturated fraction, for ReLU-like the fraction <= 0; per-unit activity (so a unit dead
      over a window of batches is found per unit) and a small units x examples map;
    * a tensor hook on each output: mean/std/histogram of the gradient reaching that module;
    * optimizer step pre/post hooks: each parameter's gradient as the optimizer uses it (after any
      clipping) and its grad:data ratio; the true update:data ratio std(W_after - W_before) /
      std(W_before), correct for SGD, momentum, Adam and RMSProp alike (without an optimizer the
      gradients are read in `step()`);
    * forward pre-hooks on BatchNorm layers: train-mode vs eval-mode output gap on the batch;
    * every step's loss (kept on the device until the next recording step).

Cost: on other steps no hook is registered at all (and none that autograd keeps: tensor hooks
live on the step's graph, module and optimizer hooks are removed); `step()` appends the detached loss to a
list. All heavy hooks are registered just before a recording step and removed right after it,
and that step's numbers reach the host in one device-to-host copy of one concatenated tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .checks import Finding, run_checks
from .records import ActStats, GradStats, Histogram, ModuleInfo, NormStats, ParamStats, Records, StepRecord, UnitMap
from .stats import activation_summary, batchnorm_mismatch, finite_summary, param_summary, update_ratio

# (module class, role, (centre, half range) of its output for the saturation test)
_SATURATING: list[tuple[type[nn.Module], tuple[float, float]]] = [
    (nn.Tanh, (0.0, 1.0)), (nn.Sigmoid, (0.5, 0.5)), (nn.Hardsigmoid, (0.5, 0.5)),
]
_RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish)
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, getattr(nn, "RMSNorm", nn.LayerNorm))
_LINEAR = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)
_SKIP = (nn.Identity, nn.modules.dropout._DropoutNd)
# the gradient reaching these roles' outputs is recorded (the depth checks and pictures use them)
_GRAD_ROLES = ("saturating", "relu", "linear", "other")


def module_role(m: nn.Module) -> tuple[str, tuple[float, float]]:
    """The role of a leaf module in the checks, and its output's (centre, half range)."""
    if isinstance(m, _RELU_LIKE):
        return "relu", (0.0, 1.0)
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

class _Transfer:
    """Device tensors waiting for the recording step's single device-to-host copy."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, ...], Tensor] = {}

    def put(self, key: tuple[str, ...], values: dict[str, Tensor]) -> None:
        for k, t in values.items():
            self.items[(*key, k)] = t.detach().reshape(-1).float()

    def fetch(self) -> dict[tuple[str, ...], list[float]]:
        """One concatenation on the device, one copy to the host, then split by key."""
        if not self.items:
            return {}
        keys = list(self.items)
        tensors = list(self.items.values())
        dev = tensors[0].device
        flat = torch.cat([t.to(dev) for t in tensors]).cpu().numpy()  # the one device-to-host transfer
        out, i = {}, 0
        for k, t in zip(keys, tensors):
            out[k] = flat[i : i + t.numel()].tolist()
            i += t.numel()
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
        n_classes: classes of the model's output, for the step-0 loss check (default: the last
            dimension of the model's output; 0 turns the check off, e.g. for regression).
        bins: histogram bins.
        start_step: the step number of the first `step()` call (resumed training).
    """

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
    ) -> None:
        if every < 1 or window < 1:
            raise ValueError("every and window must be at least 1")
        self.model, self.optimizer = model, optimizer
        self.bins, self.map_rows, self.map_units = bins, map_rows, map_units
        self.step_index = start_step
        # leaf modules, less those whose output tells nothing new (identity, dropout)
        self.leaves = [(name or type(model).__name__, m) for name, m in model.named_modules()
                       if next(m.children(), None) is None and not isinstance(m, _SKIP)]
        self.param_names = {id(p): name for name, p in model.named_parameters()}
        self.records = Records(every=every, window=window, n_classes=n_classes, first_step=start_step, meta=self._meta(),
                               matrices=self._matrices())
        self._infos: dict[str, ModuleInfo] = {}  # leaf modules in the order their forward ran
        self._handles: list[Any] = []
        self._transfer = _Transfer()
        self._losses: list[Tensor | float] = []
        self._rows: dict[str, int] = {}
        self._leaf = dict(self.leaves)
        self._seen_fwd: set[str] = set()
        self._seen_bwd: set[str] = set()
        self._before: dict[str, Tensor] = {}
        self._closure = False  # the optimizer step being recorded was called with a closure
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
        self._losses.append(loss.detach() if isinstance(loss, Tensor) else (math.nan if loss is None else float(loss)))
        if self._armed:
            if self.optimizer is None:
                self._param_stats(self.model.parameters())
            self._collect(self.step_index)
            self._disarm()
        self.step_index += 1
        if self._is_recording(self.step_index):
            self._arm()

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
        for name, m in self.leaves:
            role, scale = module_role(m)
            h.append(m.register_forward_hook(self._forward_hook(name, role, scale)))
            if role == "batchnorm" and getattr(m, "track_running_stats", False):
                h.append(m.register_forward_pre_hook(self._bn_hook(name)))
        h.append(self.model.register_forward_hook(self._root_hook))
        if self.optimizer is not None:
            h.append(self.optimizer.register_step_pre_hook(self._pre_step))
            h.append(self.optimizer.register_step_post_hook(self._post_step))
        self._armed = True

    def _disarm(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._before.clear()
        self._armed = False

    # -- hooks -------------------------------------------------------------------------------

    def _forward_hook(self, name: str, role: str, scale: tuple[float, float]) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            # evaluation passes (no grad) and repeated calls of a shared module are not the step
            if not torch.is_grad_enabled() or name in self._seen_fwd:
                return
            y = out[0] if isinstance(out, (tuple, list)) and out else out
            if not isinstance(y, Tensor) or not y.is_floating_point() or y.numel() == 0:
                return
            self._seen_fwd.add(name)
            units = y.shape[1] if y.dim() >= 4 else (y.shape[-1] if y.dim() else 1)
            self._rows[name] = y.numel() // max(1, units)  # examples each unit is counted over (host ints)
            if name not in self._infos:
                bias = getattr(module, "bias", None)
                self._infos[name] = ModuleInfo(
                    name, type(module).__name__, role, int(units),
                    self.param_names.get(id(bias)) if isinstance(bias, Tensor) else None,
                )
            with torch.no_grad():
                self._transfer.put(("act", name), activation_summary(y, role, self.bins, scale, self.map_rows, self.map_units))
            if y.requires_grad and role in _GRAD_ROLES:
                y.register_hook(self._grad_hook(name))

        return hook

    def _grad_hook(self, name: str) -> Callable[[Tensor], None]:
        def hook(g: Tensor) -> None:
            if name not in self._seen_bwd:
                self._seen_bwd.add(name)
                self._transfer.put(("grad", name), finite_summary(g, self.bins))

        return hook

    def _root_hook(self, module: nn.Module, args: Any, out: Any) -> None:
        if not torch.is_grad_enabled() or self.records.n_classes is not None:
            return
        y = out[0] if isinstance(out, (tuple, list)) and out else out
        if isinstance(y, Tensor) and y.is_floating_point() and y.dim() >= 2:
            self.records.n_classes = int(y.shape[-1])

    def _bn_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            if not torch.is_grad_enabled() or not module.training or ("bn", name, "mismatch") in self._transfer.items:
                return
            if args and isinstance(args[0], Tensor) and module.running_mean is not None:
                with torch.no_grad():
                    self._transfer.put(("bn", name), {"mismatch": batchnorm_mismatch(args[0], module)})

        return hook

    def _param_stats(self, params: Any) -> None:
        """Gradient statistics of the parameters, as the optimizer is about to use them."""
        with torch.no_grad():
            for p in params:
                name = self.param_names.get(id(p))
                if name is not None and p.grad is not None:
                    self._transfer.put(("param", name), param_summary(p, self.bins))

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
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
        params = dict(self.model.named_parameters())
        if self._closure:
            self._param_stats(p for group in optimizer.param_groups for p in group["params"])
        with torch.no_grad():
            for name, before in self._before.items():
                if params[name].grad is not None:
                    self._transfer.put(("update", name), {"ratio": update_ratio(before, params[name])})
                    if self._closure:  # the weights the gradients were computed with
                        self._transfer.put(("param", name), {"data_std": before.float().std()})
        self._before.clear()

    # -- host side ---------------------------------------------------------------------------

    def _put_losses(self) -> None:
        dev = next((t.device for t in self._losses if isinstance(t, Tensor)), torch.device("cpu"))
        vals = [t.float().reshape(()).to(dev) if isinstance(t, Tensor) else torch.tensor(t, device=dev) for t in self._losses]
        self._transfer.items[("loss",)] = torch.stack(vals)
        self._losses.clear()

    def _store_losses(self, host: dict[tuple[str, ...], list[float]]) -> None:
        self.records.losses.extend(host.pop(("loss",), []))

    def _collect(self, step: int) -> None:
        """Turn this recording step's device tensors into a StepRecord (one transfer)."""
        self._put_losses()
        host = self._transfer.fetch()
        self._store_losses(host)
        rec = StepRecord(step=step, loss=self.records.loss_at(step) if self.records.loss_at(step) is not None else math.nan)
        groups: dict[tuple[str, str], dict[str, list[float]]] = {}
        for key, vals in host.items():
            groups.setdefault((key[0], key[1]), {})[key[2]] = vals
        for (kind, name), v in groups.items():
            if kind == "act":
                rec.acts[name] = self._act_stats(name, step, v)
            elif kind == "grad":
                rec.grads[name] = GradStats(v["mean"][0], v["std"][0], v["nonfinite"][0], _hist(v))
            elif kind == "param":
                rec.params[name] = ParamStats(
                    v["data_std"][0], v["grad_mean"][0], v["grad_std"][0], v["grad_rms"][0], v["grad_nonfinite"][0],
                    _hist(v) if "counts" in v else None,
                )
            elif kind == "bn":
                bn = self._leaf[name]
                rec.norms[name] = NormStats(v["mismatch"][0], getattr(bn, "momentum", None))
        for (kind, name), v in groups.items():
            if kind == "update" and name in rec.params:
                rec.params[name].update_ratio = v["ratio"][0]
        # modules in the order their forward ran (the first recording step fixes it)
        known = {m.name for m in self.records.modules}
        self.records.modules += [info for n, info in self._infos.items() if n not in known]
        self._set_output_module()
        self.records.steps.append(rec)

    def _act_stats(self, name: str, step: int, v: dict[str, list[float]]) -> ActStats:
        info = self._infos[name]
        st = ActStats(v["mean"][0], v["std"][0], v["nonfinite"][0], _hist(v), rows=0)
        if "inactive" in v:
            st.unit_active = [int(a) for a in v["unit_active"]]
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
            prefix = "" if name == type(self.model).__name__ and m is self.model else name + "."
            out += [prefix + n for n, p in m.named_parameters(recurse=False) if p.dim() >= 2 and p.requires_grad]
        return out

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


def _hist(v: dict[str, list[float]]) -> Histogram:
    return Histogram(v["lo"][0], v["hi"][0], [int(c) for c in v["counts"]])


__all__ = ["Monitor", "module_role"]
