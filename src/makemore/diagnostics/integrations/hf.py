"""The doctor in the Hugging Face Trainer: a TrainerCallback that monitors the model and its optimizer.

    from makemore.diagnostics.integrations.hf import DoctorCallback
    trainer = transformers.Trainer(model, args, train_dataset=ds, callbacks=[DoctorCallback()])

On each recording step the diagnostics' scalars (the tags of `common`) and the findings so far
(doctor/finding/<code>) are appended to the Trainer's log history (`trainer.state.log_history`,
saved in trainer_state.json with each checkpoint), with the step they belong to. At the end of
training the findings are logged and the HTML report is written (by default doctor_report.html in
`args.output_dir`).

The loss is read from the model's output (`output.loss`, as transformers' models return it when
given labels); with gradient accumulation, the step's loss as the Trainer logs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..monitor import DEFAULT_EVERY, Monitor
from .common import Update, Watch, check_stop_on, finding_scalars, finish_run, require, step_loss, stop_reason

transformers = require("transformers", "hf", "makemore.diagnostics.integrations.hf")
logger = transformers.utils.logging.get_logger(__name__)


class DoctorCallback(transformers.TrainerCallback):
    """Monitors training health inside a transformers Trainer.

    Args:
        every: steps between full recordings (optimizer steps; every step's loss is kept).
        window: recordings over which a unit must stay inactive to count as dead.
        n_classes: classes of the output, for the step-0 loss check (default: the last dimension
            of the output's logits).
        report: where to write the HTML report at the end of training: True for
            doctor_report.html in `args.output_dir`, a path, or False for none.
        stop_on: "error" or "warning": stop training once a finding that serious appears.
    """

    def __init__(self, every: int = DEFAULT_EVERY, window: int = 5, n_classes: int | None = None,
                 report: bool | str | Path = True, stop_on: str | None = None) -> None:
        check_stop_on(stop_on)
        self.every, self.window, self.n_classes = every, window, n_classes
        self.report, self.stop_on = report, stop_on
        self.monitor: Monitor | None = None
        self.watch: Watch | None = None
        self.report_path: Path | None = None
        self._losses: list[torch.Tensor] = []  # this step's micro-batch losses, on the device
        self._summed = False  # the micro-batch losses are shares of the step's loss (see _read_loss)
        self._hook: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                       **kwargs: Any) -> None:
        optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the torch optimizer
        self.monitor = Monitor(model, optimizer, every=self.every, window=self.window, n_classes=self.n_classes,
                               start_step=state.global_step)
        self.watch = Watch(self.monitor)
        self._hook = model.register_forward_hook(self._read_loss, with_kwargs=True)

    def _read_loss(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        if not (module.training and torch.is_grad_enabled()):
            return
        loss = getattr(output, "loss", None)
        if isinstance(loss, torch.Tensor):
            # given the token count of the whole accumulated step, the model divides by it: each
            # micro-batch's loss is its share of the step's mean, and the shares add up
            self._summed = kwargs.get("num_items_in_batch") is not None
            self._losses.append(loss.detach())
        logits = getattr(output, "logits", None)
        if self.monitor is not None and self.monitor.records.n_classes is None and isinstance(logits, torch.Tensor):
            self.monitor.records.n_classes = int(logits.shape[-1])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.monitor is None or self.watch is None:
            return
        if not self._losses:
            raise ValueError("DoctorCallback reads the loss from the model's output (output.loss), and this model "
                             "returned none: give it labels")
        self.monitor.step(step_loss(self._losses, "sum" if self._summed else "mean"))
        self._losses.clear()
        if state.max_steps and state.global_step == state.max_steps - 1:
            self.monitor.record_next()  # the last step is always recorded
        if (up := self.watch.poll()) is not None:
            self._log(state, up)
            if (why := stop_reason(up.findings, self.stop_on)) is not None:
                logger.warning(why)
                control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.monitor is None or self.watch is None:
            return
        self._hook.remove()
        self.monitor.close()
        up = self.watch.poll(final=True)
        if up is not None:
            self._log(state, up)
        if state.is_world_process_zero:
            findings = up.findings if up is not None else []
            say = logger.warning if any(f.severity != "info" for f in findings) else logger.info
            self.report_path = finish_run(self.monitor.records, findings, self.report, args.output_dir, say)

    def _log(self, state: Any, up: Update) -> None:
        for rec, scalars in zip(up.records, up.scalars):
            state.log_history.append({**scalars, "step": rec.step})
        if up.findings:
            state.log_history.append({**finding_scalars(up.findings), "step": up.step})


__all__ = ["DoctorCallback"]
