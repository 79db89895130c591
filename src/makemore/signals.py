"""Stopping a training run cleanly on SIGTERM or Ctrl-C.

The signal only asks the trainer to stop after the step it is in, so the checkpoint written
afterwards holds a whole step (model, optimizer and batch generator agree) and `--resume`
continues bit for bit. A second Ctrl-C stops at once, writing nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Interrupted(KeyboardInterrupt):
    """Training stopped by a signal after a last checkpoint; `signum` says which (the CLI exits 128 + signum)."""

    def __init__(self, signum: int, step: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step = signum, step


@contextmanager
def stop_on_signals(trainer: Any) -> Iterator[list[int]]:
    """While the block runs, SIGTERM and a first Ctrl-C call `trainer.interrupt()`; yields the signals received.

    Outside the main thread (where Python cannot install handlers) it does nothing.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: Any) -> None:
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait for the step
        received.append(signum)
        trainer.interrupt()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
