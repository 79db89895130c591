"""Progress on a timer, and the package's logger.

`ProgressBar` is a tqdm bar on a terminal, redrawn by a timer thread at least once a second
whatever the loop is doing (a slow step, an evaluation), so the elapsed time, the rate and the
ETA stay live. Elsewhere (a log file, CI, a pipe) it writes a plain line every `line_every_s`
seconds. Counting a step is a Python integer increment: nothing waits for the device, so a
loop shows a loss only where it already has one on the host (its log steps).

    with ProgressBar(total=len(batches), desc="eval") as bar:
        for b in batches:
            ...
            bar.update()

`track(iterable)` does the same for a plain loop. Messages that a library user may want to
redirect or silence go through `logger` (`logging.getLogger("makemore")`); the command line
sends them to stderr with `setup_logging`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import IO, Any, TypeVar

from tqdm import tqdm

logger = logging.getLogger("makemore")
T = TypeVar("T")


def fmt_time(seconds: float) -> str:
    """12s, 3m05s, 1h02m."""
    s = max(0, int(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class ProgressBar:
    """A bar on a terminal (tqdm, redrawn on a timer), plain periodic lines elsewhere.

    Args:
        total: how many units the loop will do (None: unknown; the bar counts up).
        desc: what is running, shown first ("train", "doctor", "eval").
        unit: what is counted ("step", "batch").
        stream: where to draw (default: stderr).
        tty: draw a bar (default: whether `stream` is a terminal).
        refresh_s: seconds between redraws of the bar.
        line_every_s: seconds between plain lines when not on a terminal.
        initial: units already done (a resumed run).
        delay_s: show nothing for this many seconds (a task that ends sooner stays silent).
    """

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "step", stream: IO[str] | None = None,
                 tty: bool | None = None, refresh_s: float = 0.5, line_every_s: float = 10.0, initial: int = 0,
                 delay_s: float = 0.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = _isatty(self.stream) if tty is None else tty
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.initial = initial
        self.postfix = ""
        self.line_every_s, self.delay_s = line_every_s, delay_s
        self.t0 = time.perf_counter()
        self.last_line = self.t0 + delay_s - line_every_s  # the first plain line comes after delay_s
        self._bar: Any = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        if self.tty:
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, initial=initial, mininterval=refresh_s,
                             dynamic_ncols=True, smoothing=0.1, delay=delay_s)
            self._timer = threading.Thread(target=self._tick, args=(refresh_s,), name="makemore-progress", daemon=True)
            self._timer.start()

    def _tick(self, every: float) -> None:
        bar = self._bar
        while not self._stop.wait(every):
            if time.perf_counter() - self.t0 >= self.delay_s:
                bar.refresh()  # tqdm takes its own lock: safe beside update() on the main thread
                bar.last_print_t = bar._time()  # what tqdm's update() records: close() then ends the line

    def update(self, n: int = 1) -> None:
        """Count `n` units done."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif time.perf_counter() - self.last_line >= self.line_every_s:
            self.line()

    def set_postfix(self, text: str) -> None:
        """Text shown after the counts, e.g. "loss 2.3141"."""
        self.postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def rate(self) -> float:
        dt = time.perf_counter() - self.t0
        return (self.n - self.initial) / dt if dt > 0 else 0.0

    def eta(self) -> float | None:
        """Seconds left at the rate so far (None when the total or the rate is unknown)."""
        r = self.rate()
        return (self.total - self.n) / r if self.total is not None and r > 0 else None

    def line(self, text: str | None = None) -> None:
        """Write a plain progress line now (or `text`), above the bar on a terminal."""
        if text is None:
            total = f"/{self.total:,}" if self.total is not None else ""
            units = self.unit + ("es" if self.unit.endswith(("s", "x", "ch", "sh")) else "s")
            eta = self.eta()
            count = f"{self.n:,}{total} {units}"
            parts = [f"{self.desc}: {count}" if self.desc else count, *([self.postfix] if self.postfix else []),
                     f"{self.rate():.1f} {units}/s", f"eta {fmt_time(eta) if eta is not None else '?'}"]
            text = " | ".join(parts)
        self.last_line = time.perf_counter()
        self.write(text)

    def write(self, text: str) -> None:
        """Write a line of text without breaking the bar."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
            self._timer = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class TaskProgress:
    """One long task measured in units of work (bytes read, positions evaluated): silent for the
    first `delay` seconds, then a `ProgressBar`; plain lines at most every `every` seconds when
    not on a terminal."""

    def __init__(self, desc: str, total: int, unit: str = "", stream: IO[str] | None = None,
                 delay: float = 2.0, every: float | None = None) -> None:
        self.bar = ProgressBar(max(total, 1), desc, unit.strip() or "item", stream, line_every_s=every or 5.0,
                               delay_s=delay)

    def update(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def track(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "item",
          stream: IO[str] | None = None, tty: bool | None = None) -> Iterator[T]:
    """Iterate over `items` with a `ProgressBar` (total: `len(items)` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with ProgressBar(total, desc, unit, stream, tty) as bar:
        for x in items:
            yield x
            bar.update()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like object without isatty
        return False


def setup_logging(level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Send makemore's log messages to `stream` (default stderr) as bare lines (the command line's setup)."""
    for h in [h for h in logger.handlers if isinstance(h, _CliHandler)]:
        logger.removeHandler(h)
    handler = _CliHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


class _CliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler that writes to `sys.stderr` as it is at each message (tests swap it), or to a fixed stream."""

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__(stream)
        self._fixed = stream

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


__all__ = ["ProgressBar", "TaskProgress", "track", "fmt_time", "logger", "setup_logging"]
