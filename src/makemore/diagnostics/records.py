"""What the monitor recorded: plain dataclasses of host numbers, saved to and loaded from JSON.

This is the hinge of the diagnostics pipeline (hooks -> records -> checks -> plots -> report):
the hooks fill these, and everything after them reads only these, so every check and every
picture can be tested on hand-made numbers and regenerated from a saved file
(`makemore report RUN_DIR`). Nothing here holds a tensor.

Conventions:
    * `std` is the unbiased standard deviation (`torch.std`'s default, as in the lectures).
    * A histogram has `len(hist)` equal-width bins spanning [lo, hi] (the finite data range);
      the last bin includes `hi`.
    * `nonfinite` is 1.0 when some element was NaN or Inf (then the other statistics of that
      tensor are NaN or meaningless), else 0.0.
    * JSON keeps NaN and Infinity as Python's json module writes them (NaN, Infinity).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "makemore-diagnostics-records"
VERSION = 1


@dataclass
class Histogram:
    lo: float                     # left edge of the first bin
    hi: float                     # right edge of the last bin
    counts: list[int]             # elements per equal-width bin

    def edges(self) -> list[float]:
        n = len(self.counts)
        width = (self.hi - self.lo) / n if n else 0.0
        return [self.lo + i * width for i in range(n + 1)]


@dataclass
class ActStats:
    """One module's output on one recording step (features on the last axis, channels for 4-d)."""

    mean: float
    std: float
    nonfinite: float              # 1.0 when some element was NaN or Inf
    hist: Histogram
    rows: int                     # examples the unit statistics count over (all but the unit axis)
    saturated: float | None = None   # saturating nonlinearities: fraction of outputs in the flat tails
    zero: float | None = None        # ReLU-like: fraction of outputs <= 0 (the unit passes no gradient)
    unit_active: list[int] | None = None  # nonlinearities: per unit, rows where it passed gradient
    inactive: float | None = None    # smooth (GELU, SiLU, ...): fraction where the local slope |f'(x)| < 0.06


@dataclass
class GradStats:
    """The gradient of the loss with respect to one module's output on one recording step."""

    mean: float
    std: float
    nonfinite: float
    hist: Histogram


@dataclass
class ParamStats:
    """One parameter on one recording step: its gradient as the optimizer used it (after any
    clipping; the raw gradients reaching each layer are in `GradStats`) and its update."""

    data_std: float               # std of the weights before the optimizer step
    grad_mean: float
    grad_std: float
    grad_rms: float               # sqrt(mean(grad^2)): exactly zero for a bias that BatchNorm cancels
    grad_nonfinite: float
    grad_hist: Histogram | None = None   # matrices only
    update_ratio: float | None = None    # std(W_after - W_before) / std(W_before); None without an optimizer

    @property
    def grad_data_ratio(self) -> float:
        return self.grad_std / self.data_std if self.data_std > 0 else math.inf


@dataclass
class NormStats:
    """A BatchNorm layer on one recording step, measured on the training batch before its update.

    `mismatch` is the root-mean-square difference between the layer's train-mode output (batch
    statistics) and its eval-mode output (running statistics) on that batch, in units of the
    train-mode output's std, averaged over channels: for channel c with batch mean/std mu_b, s_b
    and running mean/std mu_r, s_r it is sqrt((1 - s_b/s_r)^2 + ((mu_b - mu_r)/s_r)^2).
    """

    mismatch: float
    momentum: float | None        # the layer's momentum (None: cumulative average)
    noise: float | None = None    # the mismatch sampling alone gives at this batch (see stats.batchnorm_noise)


@dataclass
class TimeStats:
    """A recurrent layer on one recording step: the gradient through time.

    `grad_rms[t]` is the root mean square of the total gradient reaching the hidden state at
    step t; `gains[t]` is |gradient reaching h_t through step t+1| / |total gradient at h_{t+1}|:
    how much one step of the recurrence scales a gradient on its way back.
    """

    grad_rms: list[float]
    gains: list[float]


@dataclass
class StepRecord:
    step: int                     # 0-based optimizer step the numbers belong to
    loss: float
    acts: dict[str, ActStats] = field(default_factory=dict)
    grads: dict[str, GradStats] = field(default_factory=dict)
    params: dict[str, ParamStats] = field(default_factory=dict)
    norms: dict[str, NormStats] = field(default_factory=dict)
    time: dict[str, TimeStats] = field(default_factory=dict)  # recurrent layers: gradient through time
    lr: float | None = None       # the largest learning rate of the optimizer's groups on this step
    skipped: bool = False         # the optimizer did not step (e.g. GradScaler found Inf/NaN gradients)


@dataclass
class ModuleInfo:
    name: str                     # qualified name in the model ("hidden.1", "blocks.0.mlp.1")
    kind: str                     # class name ("Tanh", "Linear")
    role: str                     # saturating | relu | norm | batchnorm | linear | embedding | other
    units: int                    # size of the unit axis of its output
    bias_param: str | None = None # the module's bias parameter, if it has one


@dataclass
class UnitMap:
    """Which units passed no gradient on which examples, on one recording step (a picture)."""

    step: int
    inactive: list[list[int]]     # (examples, units): 1 saturated / never positive, 0 otherwise


@dataclass
class Records:
    every: int                    # recording interval in steps
    window: int                   # recording steps a per-unit activity window spans
    n_classes: int | None         # classes the loss compares (ln of it is the healthy step-0 loss; 0: no classes)
    first_step: int               # step of losses[0]
    losses: list[float] = field(default_factory=list)   # every step's loss, from first_step on
    steps: list[StepRecord] = field(default_factory=list)
    modules: list[ModuleInfo] = field(default_factory=list)  # leaf modules in forward order
    output_module: str | None = None   # the leaf that produced the logits
    matrices: list[str] = field(default_factory=list)  # weight matrices of linear/conv/recurrent layers
    unit_maps: dict[str, list[UnitMap]] = field(default_factory=dict)  # first and latest map per layer
    meta: dict[str, Any] = field(default_factory=dict)   # model, optimizer, lr, ... (free-form)
    init_loss: float | None = None     # the classification loss function's own value at step 0 (without
                                       # other terms the training loss may add)

    # -- queries -----------------------------------------------------------------------------

    def module(self, name: str) -> ModuleInfo | None:
        return next((m for m in self.modules if m.name == name), None)

    def loss_at(self, step: int) -> float | None:
        i = step - self.first_step
        return self.losses[i] if 0 <= i < len(self.losses) else None

    def upto(self, step: int) -> Records:
        """These records as they stood at the end of `step` (for "when did it first appear")."""
        return dataclasses.replace(
            self,
            losses=self.losses[: max(0, step - self.first_step + 1)],
            steps=[s for s in self.steps if s.step <= step],
            unit_maps={k: [m for m in v if m.step <= step] for k, v in self.unit_maps.items()},
        )

    def _repr_html_(self) -> str:
        from .integrations.notebook import records_html  # Jupyter shows the report inline

        return records_html(self)

    # -- JSON --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Records:
        if d.get("format") != FORMAT:
            raise ValueError("not a makemore diagnostics records file")
        if d.get("version") != VERSION:
            raise ValueError(f"records version {d.get('version')} is not supported (expected {VERSION})")
        return cls(
            every=d["every"], window=d["window"], n_classes=d["n_classes"], first_step=d["first_step"],
            losses=list(d["losses"]),
            steps=[_step_from_dict(s) for s in d["steps"]],
            modules=[ModuleInfo(**m) for m in d["modules"]],
            output_module=d.get("output_module"),
            matrices=list(d.get("matrices", [])),
            unit_maps={k: [UnitMap(**m) for m in v] for k, v in d.get("unit_maps", {}).items()},
            meta=dict(d.get("meta", {})),
            init_loss=d.get("init_loss"),
        )

    def save(self, path: str | Path) -> None:
        """Write the records as JSON (atomically: a temp file renamed over `path`)."""
        write_text_atomic(Path(path), json.dumps(self.to_dict(), separators=(",", ":")))

    @classmethod
    def load(cls, path: str | Path) -> Records:
        with Path(path).open(encoding="utf-8") as f:
            return cls.from_dict(json.load(f))


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path`, then rename it over `path`: a reader never sees
    half a file. (The diagnostics keep their own copy so that they import nothing from the app.)"""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; the file gets the mode open() would give
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _hist(d: dict[str, Any] | None) -> Histogram | None:
    return Histogram(**d) if d is not None else None


def _step_from_dict(d: dict[str, Any]) -> StepRecord:
    return StepRecord(
        step=d["step"], loss=d["loss"],
        acts={k: ActStats(**{**v, "hist": _hist(v["hist"])}) for k, v in d["acts"].items()},
        grads={k: GradStats(**{**v, "hist": _hist(v["hist"])}) for k, v in d["grads"].items()},
        params={k: ParamStats(**{**v, "grad_hist": _hist(v["grad_hist"])}) for k, v in d["params"].items()},
        norms={k: NormStats(**v) for k, v in d["norms"].items()},
        time={k: TimeStats(**v) for k, v in d.get("time", {}).items()},
        lr=d.get("lr"), skipped=d.get("skipped", False),
    )


__all__ = [
    "write_text_atomic", "Histogram", "ActStats", "GradStats", "ParamStats", "NormStats", "TimeStats", "StepRecord", "ModuleInfo", "UnitMap", "Records",
]
