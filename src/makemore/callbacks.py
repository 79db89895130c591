"""Callbacks that plug into `Trainer`: metrics file, progress display, checkpoints, TensorBoard, a target loss."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import IO, Any

from .checkpoint import Checkpoint, RunDir, save_checkpoint
from .config import DataConfig
from .data import Vocab
from .errors import MakemoreError
from .train import Trainer


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


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
    """A one-line progress bar on a terminal; plain periodic lines otherwise (logs, CI, pipes)."""

    def __init__(self, stream: IO[str] | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.t0 = time.perf_counter()
        self.step0 = 0
        self.last_draw = 0.0

    def on_train_start(self, trainer: Trainer) -> None:
        self.t0 = time.perf_counter()
        self.step0 = trainer.state.step

    def _rate(self, trainer: Trainer) -> float:
        dt = time.perf_counter() - self.t0
        return (trainer.state.step - self.step0) / dt if dt > 0 else 0.0

    def _eta(self, trainer: Trainer, rate: float) -> str:
        c, s = trainer.cfg, trainer.state
        left = []
        if c.steps is not None and rate > 0:
            left.append((c.steps - s.step) / rate)
        if c.time is not None:
            left.append(c.time - s.elapsed)
        return _fmt_time(min(left)) if left else "?"

    def on_log(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        s, c = trainer.state, trainer.cfg
        rate = self._rate(trainer)
        total = f"/{c.steps}" if c.steps is not None else ""
        line = (
            f"step {s.step}{total} | loss {metrics['loss']:.4f} | lr {metrics['lr']:.2e} | "
            f"{rate:.1f} steps/s | eta {self._eta(trainer, rate)}"
        )
        if self.tty:
            frac = trainer.progress()
            bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
            self.stream.write(f"\r[{bar}] {line}\033[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def on_eval(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if "val_loss" not in metrics:
            return
        mark = " (best)" if metrics.get("is_best") else ""
        prefix = "\n" if self.tty else ""
        self.stream.write(f"{prefix}step {metrics['step']} | val loss {metrics['val_loss']:.4f}{mark}\n")
        self.stream.flush()


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

        self.tb = TensorBoardWriter(self.logdir, losses=False)  # train/loss has the loss already

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
