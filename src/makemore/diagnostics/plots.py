"""Pictures of the records (matplotlib, Agg, PNG): the views of Karpathy's makemore part 3 lecture.

    activation_histograms   per-layer output histograms, mean/std/saturation in the legend
    gradient_histograms     per-layer histograms of the gradient reaching each layer's output
    weight_grad_histograms  per-matrix gradient histograms with their grad:data ratios
    update_ratio_curves     log10 update:data ratio per matrix over steps, with the 1e-3 guide
    loss_curve              the loss on a log scale, raw and smoothed, against ln(classes)
    unit_maps               units x examples maps of units that passed no gradient

Every function takes `Records` only and returns a `matplotlib.figure.Figure` (no pyplot, no
global state); `png(fig)` renders one.
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .checks import moving_average, update_log_ratios
from .records import Histogram, ModuleInfo, Records, StepRecord

MAX_LINES = 12  # more lines than this make a legend unreadable


@dataclass
class Picture:
    title: str
    caption: str
    png: bytes


def png(fig: Figure, dpi: int = 110) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _density(h: Histogram) -> tuple[list[float], list[float]]:
    """Bin centres and densities (integrates to 1), as the lecture's torch.histogram(density=True)."""
    edges = h.edges()
    total = sum(h.counts)
    width = (h.hi - h.lo) / len(h.counts) if h.counts and h.hi > h.lo else 1.0
    xs = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    ys = [c / (total * width) if total else 0.0 for c in h.counts]
    return xs, ys


def _layers(r: Records) -> list[ModuleInfo]:
    """The layers whose outputs are worth a histogram: the nonlinearities, else the linear layers."""
    nonlinear = [m for m in r.modules if m.role in ("saturating", "relu")]
    return (nonlinear or [m for m in r.modules if m.role == "linear"])[:MAX_LINES]


def _snapshots(r: Records) -> list[StepRecord]:
    """The first and the last recording step (one if they are the same)."""
    if not r.steps:
        return []
    return [r.steps[0]] if len(r.steps) == 1 else [r.steps[0], r.steps[-1]]


def _empty(fig: Figure, text: str) -> Figure:
    ax = fig.add_subplot(1, 1, 1)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def _layer_panels(r: Records, title: str, empty: str, entry: Callable[[StepRecord, ModuleInfo], tuple[Histogram, str] | None]) -> Figure:
    """One panel per snapshot (first and last recording), one density line per layer."""
    snaps, layers = _snapshots(r), _layers(r)
    fig = Figure(figsize=(9, 3.6 * max(1, len(snaps))))
    if not snaps or not layers or not any(entry(rec, m) for rec in snaps for m in layers):
        return _empty(fig, empty)
    for i, rec in enumerate(snaps):
        ax = fig.add_subplot(len(snaps), 1, i + 1)
        for m in layers:
            if (e := entry(rec, m)) is not None:
                ax.plot(*_density(e[0]), label=e[1])
        ax.set_title(f"{title}, step {rec.step}")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="upper right")
    return fig


def activation_histograms(r: Records) -> Figure:
    def entry(rec: StepRecord, m: ModuleInfo) -> tuple[Histogram, str] | None:
        a = rec.acts.get(m.name)
        if a is None:
            return None
        label = f"{m.name} ({m.kind}): mean {a.mean:+.2f}, std {a.std:.2f}"
        if a.saturated is not None:
            label += f", saturated {a.saturated:.1%}"
        if a.zero is not None:
            label += f", <=0 {a.zero:.1%}"
        return a.hist, label

    return _layer_panels(r, "activation distribution", "no activations recorded", entry)


def gradient_histograms(r: Records) -> Figure:
    def entry(rec: StepRecord, m: ModuleInfo) -> tuple[Histogram, str] | None:
        g = rec.grads.get(m.name)
        return (g.hist, f"{m.name} ({m.kind}): mean {g.mean:+.2e}, std {g.std:.2e}") if g is not None else None

    return _layer_panels(r, "gradient distribution at each layer's output", "no gradients recorded", entry)


def weight_grad_histograms(r: Records) -> Figure:
    snaps = _snapshots(r)
    fig = Figure(figsize=(9, 3.6 * max(1, len(snaps))))
    if not snaps or not any(p.grad_hist for rec in snaps for p in rec.params.values()):
        return _empty(fig, "no weight gradients recorded")
    for i, rec in enumerate(snaps):
        ax = fig.add_subplot(len(snaps), 1, i + 1)
        mats = [(n, p) for n, p in rec.params.items() if p.grad_hist is not None][:MAX_LINES]
        for name, p in mats:
            ax.plot(*_density(p.grad_hist), label=f"{name}: std {p.grad_std:.2e}, grad:data {p.grad_data_ratio:.2e}")
        ax.set_title(f"weight gradient distribution, step {rec.step}")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="upper right")
    return fig


def update_ratio_curves(r: Records) -> Figure:
    fig = Figure(figsize=(9, 4))
    names = (r.matrices or [n for n, p in (r.steps[0].params.items() if r.steps else []) if p.grad_hist is not None])[:MAX_LINES]
    series = {n: [(s.step, math.log10(s.params[n].update_ratio)) for s in r.steps
                  if n in s.params and s.params[n].update_ratio and math.isfinite(s.params[n].update_ratio)]
              for n in names}
    if not any(series.values()):
        return _empty(fig, "no update:data ratios recorded (the monitor needs the optimizer)")
    ax = fig.add_subplot(1, 1, 1)
    for name, pts in series.items():
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name)
    ax.axhline(-3, color="k", linestyle="--", linewidth=1, label="1e-3 guide")
    med = [(s.step, statistics.median(u)) for s in r.steps if (u := update_log_ratios(s, r.matrices))]
    ax.set_title("update:data ratio, log10 std(W_after - W_before) / std(W_before)")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 ratio")
    if med:
        ax.plot([m[0] for m in med], [m[1] for m in med], color="k", linewidth=2, alpha=0.5, label="median")
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    return fig


def loss_curve(r: Records) -> Figure:
    fig = Figure(figsize=(9, 4))
    pts = [(r.first_step + i, x) for i, x in enumerate(r.losses) if math.isfinite(x) and x > 0]
    if not pts:
        return _empty(fig, "no finite loss recorded")
    ax = fig.add_subplot(1, 1, 1)
    steps, vals = [p[0] for p in pts], [p[1] for p in pts]
    ax.plot(steps, vals, color="tab:blue", alpha=0.3, linewidth=0.8, label="loss per step")
    w = max(5, len(vals) // 20)
    if len(vals) >= w:
        ax.plot(steps[w - 1 :], moving_average(vals, w)[w - 1 :], color="tab:blue", linewidth=2, label=f"moving average ({w} steps)")
    if r.n_classes and r.n_classes > 1:
        ax.axhline(math.log(r.n_classes), color="k", linestyle=":", linewidth=1, label=f"ln {r.n_classes} (uniform guess)")
    bad = next((r.first_step + i for i, x in enumerate(r.losses) if not math.isfinite(x)), None)
    if bad is not None:
        ax.axvline(bad, color="tab:red", linewidth=1, label=f"non-finite from step {bad}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)")
    ax.set_title("training loss")
    ax.legend(fontsize=7, loc="upper right")
    return fig


def unit_maps(r: Records) -> Figure:
    layers = [m for m in r.modules if m.name in r.unit_maps and r.unit_maps[m.name]][:6]
    cols = max((len(r.unit_maps[m.name]) for m in layers), default=1)
    fig = Figure(figsize=(4.5 * cols, 2.6 * max(1, len(layers))))
    if not layers:
        return _empty(fig, "no nonlinear layers recorded")
    for i, m in enumerate(layers):
        for j, um in enumerate(r.unit_maps[m.name]):
            ax = fig.add_subplot(len(layers), cols, i * cols + j + 1)
            ax.imshow(um.inactive, cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
            cells = sum(map(sum, um.inactive))
            total = sum(map(len, um.inactive)) or 1
            what = "saturated" if m.role == "saturating" else "<= 0"
            ax.set_title(f"{m.name} ({m.kind}) step {um.step}: {cells / total:.0%} {what}", fontsize=8)
            ax.set_xlabel("unit", fontsize=7)
            ax.set_ylabel("example", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.suptitle("white: the unit passed (almost) no gradient for that example; a white column is a dead unit", fontsize=9)
    return fig


def pictures(r: Records) -> list[Picture]:
    """Every picture of the report, rendered, in report order."""
    specs = [
        ("Loss", "Training loss per step (log scale) and its moving average; the dotted line is the loss of a uniform "
         "guess, where a healthy run starts.", loss_curve),
        ("Activations", "Output distribution of each layer at the first and the last recorded step. Tanh outputs "
         "piling up at -1 and +1 are saturated.", activation_histograms),
        ("Gradients", "Distribution of the gradient reaching each layer's output. Healthy layers have similar "
         "spreads; a spread shrinking towards the first layers means vanishing gradients.", gradient_histograms),
        ("Weight gradients", "Gradient distribution of each weight matrix, with its grad:data ratio "
         "(gradient std / weight std).", weight_grad_histograms),
        ("Update:data ratio", "How much each step changes each weight matrix relative to its size; about 1e-3 "
         "(the dashed line) is healthy.", update_ratio_curves),
        ("Dead and saturated units", "Units (columns) x examples (rows) of one batch: white cells passed no "
         "gradient; at the first and the last recorded step.", unit_maps),
    ]
    return [Picture(title, caption, png(fn(r))) for title, caption, fn in specs]


__all__ = ["Picture", "png", "activation_histograms", "gradient_histograms", "weight_grad_histograms",
           "update_ratio_curves", "loss_curve", "unit_maps", "pictures"]
