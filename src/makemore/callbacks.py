"""Callbacks that plug into `Trainer`: metrics file, progress display, checkpoints, TensorBoard, a target loss."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import IO, Any

from .checkpoint import Checkpoint, RunDir, save_checkpoint
from .config import DataConfig
from .data import Vocab
from .errors import MakemoreError
from .machine import busy_machine_hint
from .progress import ProgressBar, fmt_time
from .train import Trainer


class MetricsLogger:
    """Appends one JSON object per log and evaluation to metrics.jsonl."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def on_log(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self._write({"kind": "train", **metrics})

    def on_eval(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self._write({"kind": "eval", **metrics})


class Progress:
    """Training progress on a timer: a bar on a terminal (redrawn at least once a second, the loss
    updated at log steps), plain lines otherwise (at log steps, and every `line_every_s` seconds
    between them). Counting steps never reads the loss off the device.

    On a machine busier than its cores, a run with several threads is told about `--threads 1`.
    """

    def __init__(self, stream: IO[str] | None = None, tty: bool | None = None, line_every_s: float = 10.0,
                 desc: str = "train") -> None:
        self.stream = stream or sys.stderr
        self.tty = tty
        self.line_every_s = line_every_s
        self.desc = desc
        self.bar: ProgressBar | None = None
        self.hinted = False

    def on_train_start(self, trainer: Trainer) -> None:
        c, s = trainer.cfg, trainer.state
        desc = f"{self.desc} ({c.time:g}s)" if c.time is not None and c.steps is None else self.desc
        self.bar = ProgressBar(c.steps, desc, "step", self.stream, self.tty, line_every_s=self.line_every_s, initial=s.step)

    def on_step_end(self, trainer: Trainer, loss: Any) -> None:
        if self.bar is not None:
            self.bar.update()

    def on_log(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.bar is None:
            return
        c, s = trainer.cfg, trainer.state
        self.bar.set_postfix(f"loss {metrics['loss']:.4f} | lr {metrics['lr']:.2e}")
        if not self.bar.tty:
            left = [x for x in (self.bar.eta(), c.time - s.elapsed if c.time is not None else None) if x is not None]
            total = f"/{c.steps}" if c.steps is not None else ""
            self.bar.line(f"step {s.step}{total} | loss {metrics['loss']:.4f} | lr {metrics['lr']:.2e} | "
                          f"{self.bar.rate():.1f} steps/s | eta {fmt_time(min(left)) if left else '?'}")
        self._thread_hint(s.elapsed)

    def _thread_hint(self, elapsed: float) -> None:
        """Once, after a few seconds: several threads on a machine whose load exceeds its cores."""
        if self.hinted or elapsed < 5 or self.bar is None:
            return
        self.hinted = True
        hint = busy_machine_hint()
        if hint:
            self.bar.write(hint)

    def on_eval(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if "val_loss" not in metrics or self.bar is None:
            return
        mark = " (best)" if metrics.get("is_best") else ""
        self.bar.write(f"step {metrics['step']} | val loss {metrics['val_loss']:.4f}{mark}")

    def on_train_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StepZeroReport:
    """Prints the loss of the very first batch next to ln(vocab size): a confidently wrong
    softmax at initialization shows up here as a loss far above ln(V)."""

    def __init__(self, vocab_size: int, stream: IO[str] | None = None) -> None:
        self.vocab_size = vocab_size
        self.stream = stream or sys.stderr
        self.printed = False

    def on_step_end(self, trainer: Trainer, loss: Any) -> None:
        if not self.printed and trainer.state.step0_loss is not None:
            self.printed = True
            expected = math.log(self.vocab_size)
            self.stream.write(
                f"step-0 loss {trainer.state.step0_loss:.4f}, ln(vocab size {self.vocab_size}) = {expected:.4f}"
                f" (ratio {trainer.state.step0_loss / expected:.2f})\n"
            )
            self.stream.flush()


class Checkpointer:
    """Writes last.pt at every evaluation (and at the end) and best.pt when validation improves."""

    def __init__(self, run: RunDir, model_config: Any, train_config: Any, data_config: DataConfig, vocab: Vocab) -> None:
        self.run = run
        self.configs = (model_config, train_config, data_config)
        self.vocab = vocab

    def checkpoint(self, trainer: Trainer) -> Checkpoint:
        m, t, d = self.configs
        return Checkpoint(
            model_config=m, train_config=t, data_config=d, vocab=self.vocab, step=trainer.state.step,
            model_state=trainer.model.state_dict(),
            optimizer_state=trainer.optimizer.state_dict() if trainer.optimizer else None,
            rng_state=trainer.rng_state(), best_val=trainer.state.best_val, elapsed=trainer.state.elapsed,
        )

    def on_eval(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        ckpt = self.checkpoint(trainer)
        if metrics.get("is_best"):
            save_checkpoint(self.run.best, ckpt)
        save_checkpoint(self.run.last, ckpt)


def require_tensorboard() -> None:
    """Raise a one-sentence error when the tensorboard package is missing."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise MakemoreError("--tensorboard needs the tensorboard package: pip install tensorboard") from None


class TensorBoardLogger:
    """Loss, learning rate and validation loss as TensorBoard scalars (needs `tensorboard`)."""

    def __init__(self, logdir: Path) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(logdir))

    def on_log(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.writer.add_scalar("train/loss", metrics["loss"], int(metrics["step"]))
        self.writer.add_scalar("train/lr", metrics["lr"], int(metrics["step"]))

    def on_eval(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if "val_loss" in metrics:
            self.writer.add_scalar("val/loss", metrics["val_loss"], int(metrics["step"]))

    def on_train_end(self, trainer: Trainer) -> None:
        self.writer.close()


class MonitorTensorBoard:
    """The training-health monitor's records and findings into TensorBoard (`--tensorboard --monitor`);
    comes after the MonitorCallback `monitor_cb` in the callback list."""

    def __init__(self, monitor_cb: Any, logdir: Path) -> None:
        require_tensorboard()
        self.monitor_cb, self.logdir = monitor_cb, logdir
        self.tb: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        from .diagnostics.integrations.tensorboard import TensorBoardWriter

        self.tb = TensorBoardWriter(self.logdir, loss_every=0)  # train/loss has the loss already

    def on_step_end(self, trainer: Trainer, loss: Any) -> None:
        if self.monitor_cb.monitor is not None:
            self.tb.update(self.monitor_cb.monitor)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.monitor_cb.monitor is not None:
            self.tb.update(self.monitor_cb.monitor, final=True)
        self.tb.close()


class StopAtValLoss:
    """Stops training once the validation loss first reaches `target` (nats/char)."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.reached_at: dict[str, float] | None = None

    def on_eval(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        val = metrics.get("val_loss")
        if val is not None and val <= self.target and self.reached_at is None:
            self.reached_at = dict(metrics)
            trainer.request_stop()
