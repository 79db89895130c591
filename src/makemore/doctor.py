"""The doctor for makemore runs: the monitor as a Trainer callback, a short monitored run, and
the makemore options that carry out each generic fix.

`makemore.diagnostics` knows PyTorch, not this app. This module is the glue: `MonitorCallback`
plugs a `Monitor` into `makemore.train.Trainer` (the loop knows nothing about diagnostics);
`makemore train --monitor` uses it to write `diagnostics.json` and `report.html` into the run
directory. `doctor_run` trains a configuration for a few hundred steps with the monitor on and
returns the records and findings (`makemore doctor`, `bench/doctor_suite.py`). `with_flags` adds
to each finding's fix the command-line options that apply it to a makemore run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

from .callbacks import Progress
from .config import DataConfig, ModelConfig, TrainConfig, to_dict
from .data import load_dataset
from .diagnostics.checks import Finding, run_checks
from .diagnostics.monitor import DEFAULT_EVERY, Monitor
from .diagnostics.records import Records
from .errors import MakemoreError
from .run import resolve_device, setup_model
from .train import Trainer, validate_train_config

RECORDS_FILE = "diagnostics.json"
REPORT_FILE = "report.html"


class MonitorCallback:
    """Attaches a Monitor to the Trainer's model and optimizer when training starts.

    Args:
        every, window: the Monitor's recording interval and unit-activity window.
        out_dir: when set, `diagnostics.json` and `report.html` are written there at the end.
        stop_on_nonfinite: ask the Trainer to stop once a recorded loss is NaN/Inf (the doctor:
            nothing more is learned from training on NaN).
        meta: extra entries for the records' meta (the configs), shown in the report.
    """

    def __init__(self, every: int = DEFAULT_EVERY, window: int = 5, out_dir: str | Path | None = None,
                 stop_on_nonfinite: bool = False, meta: dict[str, Any] | None = None) -> None:
        self.every, self.window = every, window
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.stop_on_nonfinite = stop_on_nonfinite
        self.meta = meta or {}
        self.monitor: Monitor | None = None
        self.findings: list[Finding] = []  # set by finish(): what the report shows

    def on_train_start(self, trainer: Any) -> None:
        if trainer.optimizer is None:  # fitted in closed form (counts): no steps to watch
            return
        self.monitor = Monitor(trainer.model, trainer.optimizer, every=self.every, window=self.window,
                               n_classes=trainer.dataset.vocab.size, start_step=trainer.state.step)
        self.monitor.records.meta |= {"app": "makemore", **self.meta}

    @property
    def recording(self) -> bool:
        """Whether the next step is a recording step (the Trainer runs it through the eager model)."""
        return self.monitor is not None and self.monitor.armed

    def on_step_end(self, trainer: Any, loss: torch.Tensor) -> None:
        mon = self.monitor
        if mon is None:
            return
        mon.step(loss)
        if trainer.cfg.steps is not None and trainer.state.step == trainer.cfg.steps - 1:
            mon.record_next()  # the last step is always recorded
        steps = mon.records.steps
        if self.stop_on_nonfinite and steps and steps[-1].step == trainer.state.step - 1 and not math.isfinite(steps[-1].loss):
            trainer.request_stop()

    def on_train_end(self, trainer: Any) -> None:
        self.finish()

    def finish(self) -> Records:
        """Detach the monitor and write the files (if `out_dir`); safe to call twice."""
        if self.monitor is None:
            return Records(every=self.every, window=self.window, n_classes=None, first_step=0, meta=dict(self.meta))
        records = self.monitor.close()
        if self.out_dir is not None:
            from .diagnostics.report import write_report

            self.findings = with_flags(run_checks(records))
            records.save(self.out_dir / RECORDS_FILE)
            write_report(records, self.out_dir / REPORT_FILE, self.findings)
        return records


@dataclass
class DoctorResult:
    records: Records
    findings: list[Finding]
    diverged: bool                # training stopped on a non-finite loss
    steps: int                    # optimizer steps taken


def fit_monitored(trainer: Any, cb: MonitorCallback) -> tuple[Records, bool]:
    """`trainer.fit()` with `cb` among its callbacks; a run stopped by a NaN loss is a result, not
    an error. Returns the records and whether the loss went non-finite."""
    diverged = False
    try:
        trainer.fit()
    except MakemoreError:
        # the Trainer refuses to go on with a NaN loss; that is a finding here, not a failure
        if cb.monitor is None or all(math.isfinite(x) for x in cb.monitor.flush().losses):
            raise
        diverged = True
    records = cb.finish()
    return records, diverged or any(not math.isfinite(x) for x in records.losses)


def default_every(steps: int) -> int:
    """About 40 recordings over a doctor run."""
    return max(1, steps // 40)


def doctor_run(
    data_cfg: DataConfig, model_cfg: ModelConfig, train_cfg: TrainConfig, every: int | None = None, window: int = 5,
    stream: IO[str] | None = None,
) -> DoctorResult:
    """Train the configuration for `train_cfg.steps` steps with the monitor on; no run directory.
    With `stream`, progress is shown there."""
    steps = train_cfg.steps or 300
    train_cfg = dataclasses.replace(train_cfg, steps=steps, time=None, eval_interval=steps + 1, log_interval=steps + 1)
    validate_train_config(train_cfg)
    device = resolve_device(train_cfg.device)
    dataset = load_dataset(data_cfg)
    model_cfg, model = setup_model(model_cfg, dataset, device, train_cfg.seed)
    meta = {"model_config": to_dict(model_cfg), "train_config": to_dict(train_cfg), "source": dataset.source}
    cb = MonitorCallback(every or default_every(steps), window, stop_on_nonfinite=True, meta=meta)
    progress = [Progress(stream, desc="doctor")] if stream is not None else []  # a bar on a timer: runs take a while
    trainer = Trainer(model, dataset.to(device), train_cfg, device, progress, monitor=cb)
    records, diverged = fit_monitored(trainer, cb)
    if stream is not None and cb.monitor is None:
        stream.write(f"{model_cfg.name} is fitted in closed form; there is no training to diagnose\n")
    return DoctorResult(records, with_flags(run_checks(records)), diverged, trainer.state.step)


# the makemore options that carry out each code's generic fix
FLAGS: dict[str, str] = {
    "init.loss_too_high": "--init-output-scale 0.1",
    "act.saturated": "leave --init-gain at its default, or --norm batch",
    "act.dead_units": "--bias-init 0, or --activation tanh; a lower --lr if they die during training",
    "grad.vanishing": "leave --init-gain at its default, or --norm batch",
    "grad.exploding": "a lower --lr, --grad-clip 1.0",
    "update.too_large": "a lower --lr, --warmup 100",
    "update.too_small": "a higher --lr",
    "norm.batch_stats_mismatch": "--bn-momentum 0.1, or --norm layer",
    "norm.bias_before_batchnorm": "drop --hidden-bias",
    "loss.diverging": "a lower --lr, --grad-clip 1.0, --warmup 100",
    "loss.plateau": "a higher --lr",
}


def with_flags(findings: list[Finding]) -> list[Finding]:
    """The findings of a makemore run, each fix followed by the options that apply it."""
    return [dataclasses.replace(f, fix=f"{f.fix} (makemore: {FLAGS[f.code]})") if f.code in FLAGS else f
            for f in findings]


def is_makemore_run(records: Records) -> bool:
    """Whether the records come from a makemore run (its configuration is in their meta)."""
    return records.meta.get("app") == "makemore" or "model_config" in records.meta


__all__ = ["MonitorCallback", "DoctorResult", "doctor_run", "fit_monitored", "default_every", "with_flags",
           "is_makemore_run", "FLAGS", "RECORDS_FILE", "REPORT_FILE"]
