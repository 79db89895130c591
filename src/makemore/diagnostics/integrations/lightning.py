"""The doctor in PyTorch Lightning: a Callback that monitors the LightningModule and its optimizer.

    from makemore.diagnostics.integrations.lightning import DoctorCallback
    trainer = lightning.pytorch.Trainer(callbacks=[DoctorCallback(stop_on="error")])

On each recording step the diagnostics' scalars (the tags of `common`) and the findings so far
(doctor/finding/<code>) go to every logger of the Trainer through `log_metrics`; a logger whose
experiment is a TensorBoard SummaryWriter also gets the histograms and the findings as text.
At the end of fit the findings are printed and the HTML report is written (by default
doctor_report.html in the Trainer's log directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..monitor import DEFAULT_EVERY, Monitor
from .common import (
    PREFIX, Update, Watch, check_stop_on, finding_scalars, findings_text, finish_run, require, step_loss, stop_reason,
)

pl = require("lightning.pytorch", "lightning", "makemore.diagnostics.integrations.lightning")
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn  # noqa: E402


class DoctorCallback(pl.Callback):
    """Monitors training health inside a Lightning Trainer.

    Args:
        every: steps between full recordings (optimizer steps; every step's loss is kept).
        window: recordings over which a unit must stay inactive to count as dead.
        n_classes: classes of the model's output, for the step-0 loss check (default: the last
            dimension of the LightningModule's output when its forward is called).
        report: where to write the HTML report at the end of fit: True for doctor_report.html in
            the Trainer's log directory, a path, or False for none.
        stop_on: "error" or "warning": stop training once a finding that serious appears.
    """

    # Lightning calls each callable hook of each callback at every batch, inside a profiler context;
    # it skips a hook that is not callable. The per-batch hooks this callback does not use are None.
    on_train_batch_start = on_before_backward = on_after_backward = None  # type: ignore[assignment]
    on_before_optimizer_step = on_before_zero_grad = None  # type: ignore[assignment]
    on_validation_batch_start = on_validation_batch_end = None  # type: ignore[assignment]

    def __init__(self, every: int = DEFAULT_EVERY, window: int = 5, n_classes: int | None = None,
                 report: bool | str | Path = True, stop_on: str | None = None) -> None:
        check_stop_on(stop_on)
        self.every, self.window, self.n_classes = every, window, n_classes
        self.report, self.stop_on = report, stop_on
        self.monitor: Monitor | None = None
        self.watch: Watch | None = None
        self.report_path: Path | None = None
        self._stepped = -1  # trainer.global_step at the last monitored step (gradient accumulation)
        self._losses: list[torch.Tensor] = []  # the step's micro-batch losses, on the device
        self._last_step: int | None = None  # the step before max_steps, recorded fully

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        self.monitor = Monitor(pl_module, optimizer, every=self.every, window=self.window, n_classes=self.n_classes,
                               start_step=trainer.global_step)
        self.watch = Watch(self.monitor)
        self._stepped = trainer.global_step
        self._last_step = trainer.max_steps - 1 if trainer.max_steps > 0 else None

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.monitor is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._losses.append(loss.detach())
        step = trainer.global_step  # a chain of properties in Lightning: read once
        if step == self._stepped:
            return  # no optimizer step on this batch (accumulating gradients)
        self._stepped = step
        # each micro-batch's loss comes divided by the number of micro-batches: they add up to the step's
        self.monitor.step(step_loss(self._losses, "sum"))
        self._losses.clear()
        if step == self._last_step:
            self.monitor.record_next()  # the last step is always recorded
        assert self.watch is not None
        if (up := self.watch.poll()) is not None:
            self._log(trainer, up)
            if (why := stop_reason(up.findings, self.stop_on)) is not None:
                rank_zero_warn(why)
                trainer.should_stop = True

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is None or self.watch is None:
            return
        self.monitor.close()
        up = self.watch.poll(final=True)
        if up is not None:
            self._log(trainer, up, final=True)
        if trainer.is_global_zero:
            self.report_path = finish_run(self.monitor.records, up.findings if up is not None else [], self.report,
                                          trainer.log_dir or trainer.default_root_dir, rank_zero_info)

    # ---------------------------------------------------------------------------------------

    def _log(self, trainer: Any, up: Update, final: bool = False) -> None:
        for logger in trainer.loggers:
            for rec, scalars in zip(up.records, up.scalars):
                logger.log_metrics(scalars, step=rec.step)
            if up.findings:
                logger.log_metrics(finding_scalars(up.findings), step=up.step)
            writer = getattr(logger, "experiment", None)
            if hasattr(writer, "add_histogram_raw"):  # a TensorBoard SummaryWriter
                from .tensorboard import write_histograms

                for rec in up.records:
                    write_histograms(writer, rec)
                if up.new or final:
                    writer.add_text(f"{PREFIX}/findings", findings_text(up.findings), up.step)


__all__ = ["DoctorCallback"]
