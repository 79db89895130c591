"""Pieces every lab experiment shares: settings, result tables, pictures, the HTML page, training.

An experiment computes plain data (`Table`s of rows and columns) and matplotlib figures; the
runner in `makemore.lab` prints the tables and writes the PNGs, `results.json` and one short
self-contained HTML page. Training goes through `makemore.train.Trainer` with the diagnostics
monitor attached as a callback (`makemore.doctor.MonitorCallback`), so every
experiment trains exactly as `makemore train` does and gets the doctor's verdict for free.
"""

from __future__ import annotations

import base64
import html
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from ..batchnorm import calibrate
from ..callbacks import Progress
from ..config import DataConfig, TrainConfig
from ..data import Dataset, load_dataset
from ..diagnostics import SEVERITIES, run_checks
from ..doctor import MonitorCallback, fit_monitored
from ..train import Trainer

# The lectures' batches are 32 single (context, next character) examples.
LECTURE_CHARS_PER_STEP = 32


@dataclass(frozen=True)
class LabSettings:
    input: str | None = None        # file of lines; None: the built-in corpus
    steps: int | None = None        # None: the experiment's default size (or its quick size)
    seed: int = 1337                # initialization and batches
    out: Path | None = None         # where the page, pictures and results.json go (None: nowhere)
    quick: bool = False             # the small size the tests use
    device: str = "cpu"
    # "lecture": the lectures' split of their shuffle; or train/val/test fractions (makemore's split)
    split: tuple[float, ...] | str = "lecture"
    # "examples": the lectures' 32 independent (context, next) pairs per step; "items": whole items
    batches: str = "examples"
    rows: tuple[int, ...] | None = None  # only these rows of the table (1-based), for experiments that allow it


@dataclass
class Table:
    """A result table as plain data: `rows[i][j]` is the value of `columns[j]` in row i."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def add(self, *values: Any) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"row of {len(values)} values for {len(self.columns)} columns of {self.title!r}")
        self.rows.append(list(values))

    def column(self, name: str) -> list[Any]:
        j = self.columns.index(name)
        return [r[j] for r in self.rows]

    def records(self) -> list[dict[str, Any]]:
        """The rows as {column: value} dicts."""
        return [dict(zip(self.columns, r)) for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": [[_jsonable(v) for v in r] for r in self.rows]}

    def format(self) -> str:
        """Fixed-width text, as printed on the terminal."""
        cells = [self.columns] + [[fmt(v) for v in r] for r in self.rows]
        widths = [max(len(row[j]) for row in cells) for j in range(len(self.columns))]
        lines = [self.title, "  ".join(c.ljust(w) for c, w in zip(self.columns, widths))]
        lines.append("  ".join("-" * w for w in widths))
        for row in cells[1:]:
            # numbers right-aligned, words left-aligned
            lines.append("  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths)))
        return "\n".join(line.rstrip() for line in lines)

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td{' class=num' if _numeric(fmt(v)) else ''}>{html.escape(fmt(v))}</td>" for v in r) + "</tr>"
            for r in self.rows
        )
        return f"<h2>{html.escape(self.title)}</h2>\n<div class=scroll><table><tr>{head}</tr>{body}</table></div>"

    def _repr_html_(self) -> str:
        """Jupyter shows a table as HTML."""
        return self.to_html()


def fmt(v: Any) -> str:
    """One table cell as text: 4 decimals for ordinary floats, scientific for tiny or huge ones."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v) or v == 0:
            return f"{v:g}"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.4f}"
    if isinstance(v, (list, tuple)):
        return " ".join(fmt(x) for x in v) if v else "-"
    return str(v)


def _numeric(s: str) -> bool:
    try:
        float(s.replace(",", ""))
        return True
    except ValueError:
        return False


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no inf/nan
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


@dataclass
class Outcome:
    """What an experiment computed: tables (the first is the main one), figures, and words for the page."""

    tables: list[Table]
    figures: dict[str, Any] = field(default_factory=dict)  # file stem -> matplotlib Figure
    intro: str = ""                 # what the experiment shows (one paragraph, HTML allowed)
    method: list[str] = field(default_factory=list)     # the recipe, one sentence each
    notes: list[str] = field(default_factory=list)      # conclusions drawn from this run's numbers
    runs: dict[str, Trained] = field(default_factory=dict)  # row name -> its trained model and monitor records


@dataclass(frozen=True)
class Experiment:
    """One entry of the lab's registry."""

    name: str                       # command-line name, e.g. "init-ladder"
    title: str                      # the page's heading
    description: str                # one line for `makemore lab --list`
    run: Callable[[Lab], Outcome]
    steps: int                      # default size (training steps per row, or timing repeats)
    quick_steps: int                # the size `--quick` and the tests use
    steps_means: str = "training steps per configuration"
    rows: int = 0                   # rows `LabSettings.rows` may pick from (0: the experiment runs whole)


@dataclass
class LabResult:
    name: str
    title: str
    tables: list[Table]
    figures: list[Path]             # the PNGs written
    page: Path | None               # the HTML page
    notes: list[str]
    runs: dict[str, Trained] = field(default_factory=dict)  # row name -> trained model and records (notebooks plot them)

    @property
    def table(self) -> Table:
        return self.tables[0]


class Lab:
    """What an experiment gets: its settings, its size, the corpus (loaded once), a progress stream."""

    def __init__(self, settings: LabSettings, steps: int, stream: IO[str] | None = None) -> None:
        self.settings = settings
        self.steps = steps
        self.quick = settings.quick
        self.seed = settings.seed
        self.device = torch.device(settings.device)
        self.stream = stream or sys.stderr
        self._dataset: Dataset | None = None

    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = load_dataset(DataConfig(input=self.settings.input, split=self.settings.split))
        return self._dataset

    @property
    def batch_size(self) -> int:
        """Rows per step: the lectures' 32 examples, or as many whole items as predict about 32 characters."""
        return LECTURE_CHARS_PER_STEP if self.settings.batches == "examples" else lecture_batch_size(self.dataset)

    def batch_words(self, batch_size: int | None = None) -> str:
        """What one step sees, in words: '32 examples' or '4 items (~29 characters)'."""
        bs = batch_size or self.batch_size
        if self.settings.batches == "examples":
            return f"{bs} examples"
        split = self.dataset.splits["train"]
        return f"{bs} items (~{bs * split.n_chars / max(1, len(split.items)):.0f} characters)"

    def split_words(self) -> str:
        """The split, in a few words: "lectures'" or "0.8/0.1/0.1"."""
        split = self.settings.split
        return "lectures'" if split == "lecture" else "/".join(f"{f:g}" for f in split)

    def data_words(self) -> str:
        """The data and batches, one sentence for an experiment's recipe."""
        d = self.dataset
        n = {k: len(d.splits[k].items) for k in ("train", "val", "test")}
        how = ("the lectures' split (random.seed(42), shuffle, first 80% / next 10% / last 10%)"
               if self.settings.split == "lecture" else f"a {'/'.join(f'{f:g}' for f in self.settings.split)} split")
        batches = ("each step draws 32 independent (context, next character) examples from every position of every "
                   "training item, as the lectures do" if self.settings.batches == "examples" else
                   f"each step draws {self.batch_words()}: whole items, not single characters")
        return (f"Data: {d.source}, {n['train']} train / {n['val']} val / {n['test']} test items, {how}, "
                f"vocabulary {d.vocab.size}; {batches}.")

    def train(self, model: nn.Module, cfg: TrainConfig, progress: bool = False,
              batches_from: torch.Generator | None = None) -> Trained:
        """Train `model` on the corpus with `makemore.train.Trainer`, the diagnostics monitor attached.

        The monitor records about 40 steps of a run (4 in the quick size, where every step counts
        for the tests' time); step 0 is always recorded. `progress`: print progress lines.
        `batches_from`: draw the batch indices on from this generator's state (the lecture draws
        them from the generator that drew its parameters); default: the Trainer's, seeded `cfg.seed`.
        A run whose loss turns NaN/Inf stops there (the Trainer refuses to go on) and comes back
        with `diverged=True`; that is a result of the experiment, not an error.
        """
        steps = cfg.steps or 1
        cb = MonitorCallback(every=max(1, steps // (4 if self.quick else 40)), stop_on_nonfinite=True)
        callbacks: list[Any] = [Progress(self.stream)] if progress else []
        trainer = Trainer(model.to(self.device), self.dataset.to(self.device), cfg, self.device, callbacks, monitor=cb)
        if batches_from is not None:
            trainer.batch_gen.set_state(batches_from.get_state())
        records, diverged = fit_monitored(trainer, cb)
        if progress and self.stream.isatty():
            self.stream.write("\n")
        return Trained(model, trainer, records, run_checks(records), diverged)

    def recipe(self, batch_size: int | None = None, lr: float = 0.1, decay: bool = True, drop: float = 0.5) -> TrainConfig:
        """The lectures' SGD recipe at this lab's size, seed, batches and device (`lecture_recipe`)."""
        return lecture_recipe(self.steps, batch_size or self.batch_size, self.seed, lr=lr, decay=decay,
                              device=self.settings.device, batches=self.settings.batches, drop=drop)

    def selected(self, n: int) -> list[int]:
        """The 0-based rows of an n-row table this run computes: all, or those `LabSettings.rows` names."""
        return list(range(n)) if self.settings.rows is None else [r - 1 for r in self.settings.rows]

    def say(self, msg: str) -> None:
        self.stream.write(msg + "\n")
        self.stream.flush()


# ---------------------------------------------------------------------------------------------
# training the lectures' way


def lecture_batch_size(dataset: Dataset) -> int:
    """Whole items per batch so that a step predicts about the lectures' 32 characters.

    A whole item is a name and its closing boundary, about 7 characters in names.txt, so 32
    characters are about 4-5 items.
    """
    split = dataset.splits["train"]
    chars_per_item = split.n_chars / max(1, len(split.items))
    return max(1, round(LECTURE_CHARS_PER_STEP / chars_per_item))


def lecture_recipe(steps: int, batch_size: int, seed: int, lr: float = 0.1, decay: bool = True, device: str = "cpu",
                   batches: str = "examples", drop: float = 0.5) -> TrainConfig:
    """The lectures' optimization: plain SGD (no momentum, no weight decay, no clipping), lr
    divided by 10 at fraction `drop` of the run (`decay`; parts 2-3: half-way, part 5: 3/4), else constant."""
    return TrainConfig(
        steps=steps, batch_size=batch_size, batches=batches, optimizer="sgd", lr=lr, momentum=0.0, weight_decay=0.0,
        grad_clip=None, schedule="step" if decay else "constant", lr_drops=(drop,), lr_drop_factor=0.1,
        eval_interval=max(1, steps), log_interval=max(1, steps // 20), seed=seed, device=device,
    )


@dataclass
class Trained:
    """A finished (or diverged) training run of one model."""

    model: nn.Module
    trainer: Trainer
    records: Any                    # makemore.diagnostics.Records
    findings: list[Any]             # makemore.diagnostics.Finding, most serious first
    diverged: bool

    @property
    def step0_loss(self) -> float | None:
        return self.trainer.state.step0_loss

    def codes(self, min_severity: str = "warning") -> list[str]:
        """The doctor's finding codes at or above `min_severity`, each once, most serious first."""
        floor = SEVERITIES.index(min_severity)
        return list(dict.fromkeys(f.code for f in self.findings if f.rank >= floor))

    def calibrate(self) -> int:
        """Exact BatchNorm running statistics over the training split (`makemore.batchnorm.calibrate`)."""
        train = self.trainer.dataset.splits["train"]
        return calibrate(self.model, train.x, y=train.y)

    def losses(self, splits: Sequence[str] = ("train", "val")) -> dict[str, float]:
        """Exact NLL per character over whole splits (nan after divergence)."""
        if self.diverged:
            return {s: math.nan for s in splits}
        out = self.trainer.evaluate(splits)
        return {s: out[f"{s}_loss"] for s in splits}


def smoothed_losses(losses: Sequence[float], steps: int) -> tuple[list[float], list[float]]:
    """Per-step training losses as block means over 0.5% of the run: (block centres, means)."""
    w = max(1, steps // 200)
    t = torch.tensor(losses, dtype=torch.float64)
    if t.numel() < w:
        return [], []
    smooth = t.unfold(0, w, w).mean(1)  # (steps // w,) block means
    return (torch.arange(smooth.numel()) * w + w / 2).tolist(), smooth.tolist()


# ---------------------------------------------------------------------------------------------
# timing


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    """Median wall time of `fn()` in milliseconds over `repeats` calls, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


# ---------------------------------------------------------------------------------------------
# pictures and the page


def new_figure(rows: int = 1, cols: int = 1, width: float = 6.4, height: float = 4.0) -> tuple[Any, Any]:
    """A matplotlib Figure (no pyplot global state) and its axes array (squeezed like plt.subplots)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=True)
    return fig, axes


def plot_histogram(ax: Any, hist: Any, label: str, **kw: Any) -> None:
    """Draw a recorded `Histogram` (makemore.diagnostics.records) as a density line, the lectures' style.

    Density (fraction per unit of x) rather than counts, so layers whose values span
    different ranges (and so have different bin widths) can be compared on one axis.
    """
    edges = hist.edges()
    total = max(1, sum(hist.counts))
    width = (hist.hi - hist.lo) / len(hist.counts) if hist.counts and hist.hi > hist.lo else 1.0
    centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    ax.plot(centres, [c / total / width for c in hist.counts], label=label, **kw)


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.5rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block;margin:.5rem 0}
code,pre{background:#f4f4f4;padding:.1rem .3rem;border-radius:3px}pre{padding:.5rem;overflow-x:auto}
"""


def write_page(path: Path, title: str, command: str, outcome: Outcome, images: Sequence[Path]) -> Path:
    """One self-contained HTML page (images embedded as data URIs): intro, recipe, tables, pictures."""
    parts = ["<!doctype html><html lang=en><head><meta charset=utf-8>",
             "<meta name=viewport content='width=device-width,initial-scale=1'>",
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if outcome.intro:
        parts.append(f"<p>{outcome.intro}</p>")
    parts.append(f"<p>Reproduce with:</p><pre>{html.escape(command)}</pre>")
    if outcome.method:
        parts.append("<h2>Recipe</h2><ul>" + "".join(f"<li>{html.escape(m)}</li>" for m in outcome.method) + "</ul>")
    parts += [t.to_html() for t in outcome.tables]
    if outcome.notes:
        parts.append("<h2>What this run shows</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in outcome.notes) + "</ul>")
    if images:
        parts.append("<h2>Pictures</h2>")
    for img in images:
        data = base64.b64encode(img.read_bytes()).decode("ascii")
        parts.append(f"<img alt='{html.escape(img.stem)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>\n")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


__all__ = [
    "LabSettings", "Table", "Outcome", "Experiment", "LabResult", "Lab", "lecture_batch_size", "lecture_recipe", "Trained",
    "median_ms", "smoothed_losses", "new_figure", "plot_histogram", "write_page", "fmt", "LECTURE_CHARS_PER_STEP",
]
