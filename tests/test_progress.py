"""Progress on a timer (makemore.progress, the training callback) and the package's logger."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from makemore.callbacks import Progress
from makemore.machine import busy_machine_hint, fit_threads
from makemore.progress import ProgressBar, logger, setup_logging, track


def test_the_bar_redraws_on_a_timer_while_a_step_is_slow() -> None:
    stream = io.StringIO()
    with ProgressBar(10, "train", stream=stream, tty=True, refresh_s=0.2) as bar:
        bar.update()
        before = stream.getvalue().count("\r")
        time.sleep(1.3)  # one slow step: nothing calls update()
        during = stream.getvalue().count("\r")
    assert during - before >= 3  # redrawn several times without an update (at least once a second)
    assert "00:01" in stream.getvalue()  # the elapsed time moved on


def test_plain_lines_on_a_timer_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with ProgressBar(None, "eval", unit="batch", stream=stream, tty=False, line_every_s=0.05) as bar:
        for _ in range(4):
            time.sleep(0.06)
            bar.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("eval: 4 batches |") and "\r" not in stream.getvalue()
    assert list(track(range(3), stream=io.StringIO(), tty=False)) == [0, 1, 2]


class NoHostSync:
    """A loss that fails if anything reads its value (that would wait for the device)."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the progress callback read the loss ({name})")

    def __float__(self) -> float:
        raise AssertionError("the progress callback read the loss")

    __bool__ = __format__ = __float__  # type: ignore[assignment]


def test_counting_a_step_does_not_read_the_loss() -> None:
    stream = io.StringIO()
    trainer = SimpleNamespace(cfg=SimpleNamespace(steps=3, time=None), state=SimpleNamespace(step=0, elapsed=0.0))
    cb = Progress(stream, tty=True)
    cb.on_train_start(trainer)  # type: ignore[arg-type]
    for _ in range(3):
        cb.on_step_end(trainer, NoHostSync())  # type: ignore[arg-type]
    cb.on_train_end(trainer)  # type: ignore[arg-type]
    assert "3/3" in stream.getvalue()


def test_training_progress_on_a_terminal_and_plain_lines_otherwise(names_file: Path, tmp_path: Path) -> None:
    from makemore.config import DataConfig, TrainConfig
    from makemore.models import model_config
    from makemore.run import train_run

    for tty in (True, False):
        stream = io.StringIO()
        cfg = TrainConfig(steps=40, log_interval=20, eval_interval=40, schedule="constant")
        train_run(DataConfig(input=str(names_file)), model_config("bigram"), cfg, tmp_path / f"r{tty}",
                  extra_callbacks=(Progress(stream, tty=tty),), stream=io.StringIO(), n_samples=0)
        text = stream.getvalue()
        assert "40/40" in text and "lr 5.00e-04" in text and "val loss" in text
        if tty:
            assert "\r" in text and "step/s" in text
        else:
            assert "\r" not in text and "step 20/40 | loss" in text and "steps/s | eta" in text


def test_a_busy_machine_suggests_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import torch

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 3.0, 3.0))
    assert "--threads 1" in (busy_machine_hint() or "")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.4, 0.3, 0.3))
    assert busy_machine_hint() is None
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 3.0, 3.0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert busy_machine_hint() is None  # already one thread


def test_log_messages_go_where_the_user_says() -> None:
    stream = io.StringIO()
    setup_logging(stream=stream)
    try:
        logger.info("a note")
        assert stream.getvalue() == "a note\n"
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.setLevel(logging.NOTSET)


def test_threads_fitted_to_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        monkeypatch.setattr(os, "cpu_count", lambda: 8)
        torch.set_num_threads(8)
        monkeypatch.setattr(os, "getloadavg", lambda: (6.2, 6.0, 6.0))
        threads, note = fit_threads()
        assert threads == 2 and torch.get_num_threads() == 2 and "load 6.2 on 8 cores" in (note or "")
        torch.set_num_threads(8)
        monkeypatch.setattr(os, "getloadavg", lambda: (20.0, 6.0, 6.0))
        assert fit_threads()[0] == 1  # never fewer than one
        torch.set_num_threads(8)
        monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 0.3, 0.3))
        assert fit_threads() == (8, None) and torch.get_num_threads() == 8  # idle: PyTorch's default
        assert fit_threads(3) == (3, None) and torch.get_num_threads() == 3  # the user's choice wins
        monkeypatch.setattr(os, "getloadavg", lambda: (6.2, 6.0, 6.0))
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert fit_threads() == (3, None)  # so does OMP_NUM_THREADS
    finally:
        torch.set_num_threads(before)
