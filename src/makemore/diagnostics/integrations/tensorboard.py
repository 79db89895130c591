"""The doctor in TensorBoard: a Monitor's records as scalars and histograms, its findings as text.

    tb = TensorBoardWriter("runs/tb")
    for step in range(n):
        ...; optimizer.step()
        mon.step(loss)
        tb.update(mon)            # writes on recording steps only
    tb.update(mon, final=True); tb.close()

Tags are the ones of `common` (doctor/saturation/<layer>, doctor/update_ratio_log10/<param>, ...),
plus the lecture's histograms: doctor/act_hist/<layer>, doctor/grad_hist/<layer> (the gradient
reaching the layer's output) and doctor/weight_grad_hist/<param>; doctor/loss has the loss, averaged
over blocks of `loss_every` steps (0 leaves it to a logger that writes the loss already);
doctor/findings is text.
The Custom Scalars tab overlays each family on one chart, the update:data ratios with the 1e-3 guide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..monitor import Monitor
from ..records import Histogram, Records, StepRecord
from .common import PREFIX, Update, Watch, finding_scalars, findings_text, require

require("torch.utils.tensorboard", "tensorboard", "makemore.diagnostics.integrations.tensorboard", package="tensorboard")
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402
from torch.utils.tensorboard.summary import text  # noqa: E402


def masked_crc32c(data: bytes) -> int:
    """TensorBoard's record checksum (CRC-32C, masked as its record_writer masks it), computed in C."""
    import google_crc32c

    x = google_crc32c.value(data)
    return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def use_fast_checksums() -> bool:
    """TensorBoard checksums every record it writes in pure Python, a few bytes at a time: with the
    google-crc32c package (in makemore[tensorboard]) its writers get the same checksums from C.
    Without it nothing changes; True when the C checksums are in use."""
    try:
        import google_crc32c
    except ImportError:
        return False
    if google_crc32c.implementation != "c":
        return False
    from tensorboard.summary.writer import record_writer

    record_writer.masked_crc32c = masked_crc32c  # the name its RecordWriter.write calls
    return True


use_fast_checksums()

# one chart per family in the Custom Scalars tab: every layer (and the guide) on the same axes
LAYOUT = {PREFIX: {
    "update:data ratio, log10 (guide: -3)": ["Multiline", [rf"{PREFIX}/update_ratio_log10/.*"]],
    "saturated fraction (tanh/sigmoid)": ["Multiline", [rf"{PREFIX}/saturation/.*"]],
    "dead fraction": ["Multiline", [rf"{PREFIX}/dead_fraction/.*"]],
    "activation std": ["Multiline", [rf"{PREFIX}/act_std/.*"]],
    "gradient std at each layer's output": ["Multiline", [rf"{PREFIX}/grad_std/.*"]],
}}


class Events:
    """Summaries gathered by step, then written as one event per step: each event is a trip through
    the writer's queue to its writing thread, and a recording step has dozens of values. The
    values are the ones `add_scalar`, `add_histogram_raw` and `add_text` would write."""

    def __init__(self) -> None:
        self.by_step: dict[int, list[Any]] = {}

    def add(self, step: int, summary: Summary) -> None:
        self.by_step.setdefault(step, []).extend(summary.value)

    def scalar(self, tag: str, value: float, step: int) -> None:
        # the value add_scalar's summary holds (its simple_value of float(value)), without the numpy round trip
        self.by_step.setdefault(step, []).append(Summary.Value(tag=tag, simple_value=float(value)))

    def send(self, writer: SummaryWriter) -> None:
        """Write the gathered steps in the order they were first added, then forget them."""
        file_writer = writer._get_file_writer()  # the FileWriter that add_scalar writes through
        for step, values in self.by_step.items():
            file_writer.add_summary(Summary(value=values), step)
        self.by_step.clear()


def _histogram(events: Events, tag: str, h: Histogram | None, mean: float, sum_squares_per: float, step: int) -> None:
    """One histogram from the recorded bins; `sum_squares_per` is the mean of the squares."""
    n = sum(h.counts) if h is not None else 0
    if h is None or n == 0:
        return
    # the value add_histogram_raw's summary holds, made directly
    histo = HistogramProto(min=h.lo, max=h.hi, num=n, sum=mean * n, sum_squares=sum_squares_per * n,
                           bucket_limit=h.edges()[1:], bucket=h.counts)
    events.by_step.setdefault(step, []).append(Summary.Value(tag=tag, histo=histo))


def add_histograms(events: Events, rec: StepRecord) -> None:
    """The record's activation, output-gradient and weight-gradient histograms."""
    for name, a in rec.acts.items():
        _histogram(events, f"{PREFIX}/act_hist/{name}", a.hist, a.mean, a.std**2 + a.mean**2, rec.step)
    for name, g in rec.grads.items():
        _histogram(events, f"{PREFIX}/grad_hist/{name}", g.hist, g.mean, g.std**2 + g.mean**2, rec.step)
    for name, p in rec.params.items():
        _histogram(events, f"{PREFIX}/weight_grad_hist/{name}", p.grad_hist, p.grad_mean, p.grad_rms**2, rec.step)


def write_histograms(writer: SummaryWriter, rec: StepRecord) -> None:
    """Write the record's histograms (one event)."""
    events = Events()
    add_histograms(events, rec)
    events.send(writer)


class TensorBoardWriter:
    """Writes what a Monitor records to TensorBoard event files.

    Args:
        logdir: the directory of the event files (or pass `writer`).
        writer: a SummaryWriter to write into instead (e.g. one a framework already has).
        loss_every: write the loss as doctor/loss, its mean over each block of this many steps
            (at the block's last step); 0 for none.
    """

    def __init__(self, logdir: str | Path | None = None, writer: Any = None, loss_every: int = 50) -> None:
        if (logdir is None) == (writer is None):
            raise ValueError("give either logdir or writer")
        self.writer = writer if writer is not None else SummaryWriter(str(logdir))
        self.loss_every = loss_every
        self.watch: Watch | None = None
        self._loss_upto = 0   # losses written so far (whole blocks of loss_every)
        self.writer.add_custom_scalars(LAYOUT)

    def update(self, monitor: Monitor, final: bool = False) -> Update | None:
        """Write the recording steps since the last call (call after `monitor.step`); with `final`,
        also the last losses and the findings at the end of the run."""
        if self.watch is None or self.watch.monitor is not monitor:
            self.watch = Watch(monitor)
        up = self.watch.poll(final=final)
        if up is not None:
            self.write(monitor.records, up, final)
        return up

    def write(self, records: Records, up: Update, final: bool = False) -> None:
        ev = Events()
        k, n = self.loss_every, len(records.losses)
        if k:  # whole blocks only, and at the end the rest
            end = n if final else n - n % k
            for i in range(self._loss_upto, end, k):
                block = records.losses[i : min(i + k, end)]
                ev.scalar(f"{PREFIX}/loss", sum(block) / len(block), records.first_step + i + len(block) - 1)
            self._loss_upto = end
        for rec, scalars in zip(up.records, up.scalars):
            for tag, value in scalars.items():
                ev.scalar(tag, value, rec.step)
            add_histograms(ev, rec)
        for tag, value in finding_scalars(up.findings).items():
            ev.scalar(tag, value, up.step)
        if up.new or final:
            ev.add(up.step, text(f"{PREFIX}/findings", findings_text(up.findings)))
        ev.send(self.writer)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


__all__ = ["TensorBoardWriter", "Events", "add_histograms", "write_histograms", "LAYOUT", "masked_crc32c",
           "use_fast_checksums"]
