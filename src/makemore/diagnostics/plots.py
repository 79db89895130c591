"""Pictures of the records (matplotlib, Agg, PNG): the views of Karpathy's makemore part 3 lecture.

    loss_curve              the loss on a log scale, raw and smoothed, against ln(classes)
    activation_histograms   per-layer output histograms at the first and the last recording
    histograms_over_time    per-layer heat maps: value (y) x recording step (x), one per layer
    gradient_histograms     per-layer histograms of the gradient reaching each layer's output
    weight_grad_histograms  per-matrix gradient histograms with their grad:data ratios
    update_ratio_curves     log10 update:data ratio per matrix over steps, with the 1e-3 guide
    unit_maps               per layer: every unit's activity over the recordings, and the
                            lecture's units x examples map of one batch

Every chart takes `Records` and a `Selection` (which series a finding names) and returns a
`Chart`: a matplotlib Figure (no pyplot, no global state) and its legend as data. The legend is
drawn by the page in HTML, below the picture, so it never covers a curve and wraps at any
width. Series that a finding names are always drawn, in `NAMED_COLOR` and thicker, next to a
few other layers spread over the depth of the model. `pictures` renders each chart twice: a
wide one for desktops and a narrow one, with the same fonts, for phones.
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .checks import Finding, moving_average, update_log_ratios
from .records import Histogram, ModuleInfo, Records, StepRecord

MAX_LINES = 8  # lines per panel, named ones included when there are fewer: more make a tangle
MAX_PANELS = 6  # small multiples per picture beyond the named layers
NAMED_COLOR = "#d0021b"  # only the series a finding names use it (the page's tests look for it)
# matplotlib's tab10 without its red, so that no other series can be mistaken for a named one
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
WIDE, NARROW = 9.0, 3.6  # figure widths in inches at DPI: ~900 px for a desktop column, ~360 px for a phone
DPI = 100


@dataclass(frozen=True)
class Selection:
    """What the findings name: layers (module names) and parameters; a parameter also names its
    layer and a layer names its own parameters."""

    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, records: Records, findings: Iterable[Finding]) -> Selection:
        modules = {m.name for m in records.modules}
        out: set[str] = set()
        for f in findings:
            out.add(f.where)
            parent = f.where.rsplit(".", 1)[0] if "." in f.where else None
            if f.where not in modules and parent in modules:
                out.add(parent)  # "lm_head.weight" names the layer lm_head too
        return cls(frozenset(out))

    def named(self, series: str) -> bool:
        return series in self.names or ("." in series and series.rsplit(".", 1)[0] in self.names)

    def pick(self, series: Sequence[str], limit: int) -> list[str]:
        """Every named series, then others spread evenly over `series` (first and last included)
        up to `limit` in all; in the order of `series` (the model's forward order)."""
        named = [s for s in series if self.named(s)]
        rest = [s for s in series if not self.named(s)]
        k = min(len(rest), max(0, limit - len(named)))
        if k == 1:
            chosen = {rest[-1]}
        else:
            chosen = {rest[round(i * (len(rest) - 1) / (k - 1))] for i in range(k)} if k else set()
        return [s for s in series if s in named or s in chosen]


@dataclass
class Series:
    """One legend entry: a colour and a label; `named` when a finding names the series."""

    label: str
    color: str
    named: bool = False
    style: str = "solid"  # solid | dashed | dotted | swatch (a filled square: heat maps, images)


@dataclass
class Chart:
    fig: object  # matplotlib.figure.Figure (typed loosely: matplotlib is imported lazily)
    legend: list[Series] = field(default_factory=list)


@dataclass
class Picture:
    """One rendered chart of the page."""

    anchor: str                   # the HTML id the findings link to
    title: str
    caption: str
    png: bytes                    # the wide rendering (desktop)
    png_narrow: bytes = b""       # the narrow rendering (phones)
    legend: list[Series] = field(default_factory=list)
    shows: tuple[str, ...] = ()   # finding-code prefixes this picture illustrates


def require_matplotlib() -> None:
    """Raise ImportError with one sentence saying how to install matplotlib, when it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("the training-health pictures need matplotlib, which is not installed: "
                          "pip install 'makemore[plots]'") from None


def _figure(width: float, height: float):  # -> Figure
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def png(fig: object, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # type: ignore[arg-type]
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)  # type: ignore[attr-defined]
    return buf.getvalue()


class _Colors:
    """A stable colour per series: NAMED_COLOR for named ones, the palette in turn for the others."""

    def __init__(self, sel: Selection) -> None:
        self.sel, self.given, self.i = sel, {}, 0

    def __call__(self, name: str) -> str:
        if self.sel.named(name):
            return NAMED_COLOR
        if name not in self.given:
            self.given[name] = PALETTE[self.i % len(PALETTE)]
            self.i += 1
        return self.given[name]


def _density(h: Histogram) -> tuple[list[float], list[float]]:
    """Bin centres and densities (integrates to 1), as the lecture's torch.histogram(density=True)."""
    edges = h.edges()
    total = sum(h.counts)
    width = (h.hi - h.lo) / len(h.counts) if h.counts and h.hi > h.lo else 1.0
    xs = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    ys = [c / (total * width) if total else 0.0 for c in h.counts]
    return xs, ys


def _hist_layers(r: Records) -> list[ModuleInfo]:
    """The layers whose outputs are worth a histogram: the nonlinearities, else the linear layers."""
    nonlinear = [m for m in r.modules if m.role in ("saturating", "relu")]
    return nonlinear or [m for m in r.modules if m.role == "linear"]


def _snapshots(r: Records) -> list[StepRecord]:
    """The first and the last recording step (one if they are the same)."""
    if not r.steps:
        return []
    return [r.steps[0]] if len(r.steps) == 1 else [r.steps[0], r.steps[-1]]


def _empty(width: float, text: str) -> Chart:
    fig = _figure(width, 1.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_axis_off()
    return Chart(fig)


def _line(ax, xs, ys, name: str, color: str, named: bool, **kw) -> None:  # noqa: ANN001
    ax.plot(xs, ys, color=color, linewidth=2.6 if named else 1.2, zorder=3 if named else 2, label=name, **kw)


def _layer_panels(r: Records, sel: Selection, width: float, title: str, empty: str,
                  entry: Callable[[StepRecord, str], tuple[Histogram, str] | None], names: Sequence[str]) -> Chart:
    """One panel per snapshot (first and last recording), one density line per chosen series;
    the legend describes the last snapshot."""
    snaps = _snapshots(r)
    chosen = sel.pick([n for n in names if any(entry(s, n) for s in snaps)], MAX_LINES)
    if not snaps or not chosen:
        return _empty(width, empty)
    fig = _figure(width, 2.6 * len(snaps) if width < WIDE else 3.2 * len(snaps))
    colors, labels = _Colors(sel), {}
    for i, rec in enumerate(snaps):
        ax = fig.add_subplot(len(snaps), 1, i + 1)
        for n in chosen:
            if (e := entry(rec, n)) is not None:
                _line(ax, *_density(e[0]), n, colors(n), sel.named(n))
                labels[n] = e[1]
        ax.set_title(f"{title}, step {rec.step}")
        ax.set_ylabel("density")
    return Chart(fig, [Series(f"{n}: {labels[n]}", colors(n), sel.named(n)) for n in chosen])


def activation_histograms(r: Records, sel: Selection = Selection(), width: float = WIDE) -> Chart:
    kinds = {m.name: m.kind for m in r.modules}

    def entry(rec: StepRecord, name: str) -> tuple[Histogram, str] | None:
        a = rec.acts.get(name)
        if a is None:
            return None
        label = f"{kinds.get(name, '?')}, mean {a.mean:+.2f}, std {a.std:.2f}"
        if a.saturated is not None:
            label += f", saturated {a.saturated:.1%}"
        if a.zero is not None:
            label += f", <=0 {a.zero:.1%}"
        return a.hist, label

    return _layer_panels(r, sel, width, "layer outputs", "no activations recorded", entry,
                         [m.name for m in _hist_layers(r)])


def gradient_histograms(r: Records, sel: Selection = Selection(), width: float = WIDE) -> Chart:
    kinds = {m.name: m.kind for m in r.modules}

    def entry(rec: StepRecord, name: str) -> tuple[Histogram, str] | None:
        g = rec.grads.get(name)
        return (g.hist, f"{kinds.get(name, '?')}, mean {g.mean:+.2e}, std {g.std:.2e}") if g is not None else None

    names = [m.name for m in r.modules if any(m.name in s.grads for s in r.steps)]
    return _layer_panels(r, sel, width, "gradient at each layer's output", "no gradients recorded", entry, names)


def weight_grad_histograms(r: Records, sel: Selection = Selection(), width: float = WIDE) -> Chart:
    def entry(rec: StepRecord, name: str) -> tuple[Histogram, str] | None:
        p = rec.params.get(name)
        if p is None or p.grad_hist is None:
            return None
        return p.grad_hist, f"std {p.grad_std:.2e}, grad:data {p.grad_data_ratio:.2e}"

    return _layer_panels(r, sel, width, "weight gradients", "no weight gradients recorded", entry, _matrices(r))


def _matrices(r: Records) -> list[str]:
    if r.matrices:
        return list(r.matrices)
    seen: dict[str, None] = {}
    for s in r.steps:
        seen |= {n: None for n, p in s.params.items() if p.grad_hist is not None}
    return list(seen)


def update_ratio_curves(r: Records, sel: Selection = Selection(), width: float = WIDE) -> Chart:
    def pts(n: str) -> list[tuple[int, float]]:
        return [(s.step, math.log10(s.params[n].update_ratio)) for s in r.steps  # type: ignore[arg-type]
                if n in s.params and s.params[n].update_ratio and math.isfinite(s.params[n].update_ratio)]  # type: ignore[arg-type]

    series = {n: p for n in _matrices(r) if (p := pts(n))}
    if not series:
        return _empty(width, "no update:data ratios recorded (the monitor needs the optimizer)")
    chosen = sel.pick(list(series), MAX_LINES)
    fig = _figure(width, 3.6 if width >= WIDE else 3.0)
    ax = fig.add_subplot(1, 1, 1)
    colors = _Colors(sel)
    legend = []
    for n in chosen:
        _line(ax, [p[0] for p in series[n]], [p[1] for p in series[n]], n, colors(n), sel.named(n))
        legend.append(Series(f"{n}: last {series[n][-1][1]:+.2f}", colors(n), sel.named(n)))
    ax.axhline(-3, color="k", linestyle="--", linewidth=1)
    legend.append(Series("1e-3 guide", "#000000", style="dashed"))
    med = [(s.step, statistics.median(u)) for s in r.steps if (u := update_log_ratios(s, r.matrices))]
    if med:
        ax.plot([m[0] for m in med], [m[1] for m in med], color="k", linewidth=2, alpha=0.45)
        legend.append(Series(f"median of all {len(series)} matrices", "#8c8c8c"))
    ax.set_title("log10 std(W_after - W_before) / std(W_before)")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 ratio")
    return Chart(fig, legend)


def loss_curve(r: Records, sel: Selection = Selection(), width: float = WIDE) -> Chart:
    pts = [(r.first_step + i, x) for i, x in enumerate(r.losses) if math.isfinite(x) and x > 0]
    if not pts:
        return _empty(width, "no finite loss recorded")
    fig = _figure(width, 3.6 if width >= WIDE else 3.0)
    ax = fig.add_subplot(1, 1, 1)
    steps, vals = [p[0] for p in pts], [p[1] for p in pts]
    ax.plot(steps, vals, color="#1f77b4", alpha=0.3, linewidth=0.8)
    legend = [Series("loss per step", "#a5c8e1")]
    w = max(5, len(vals) // 20)
    if len(vals) >= w:
        ax.plot(steps[w - 1 :], moving_average(vals, w)[w - 1 :], color="#1f77b4", linewidth=2)
        legend.append(Series(f"moving average ({w} steps)", "#1f77b4"))
    if r.n_classes and r.n_classes > 1:
        ax.axhline(math.log(r.n_classes), color="k", linestyle=":", linewidth=1)
        legend.append(Series(f"ln {r.n_classes} = {math.log(r.n_classes):.3f} (uniform guess)", "#000000", style="dotted"))
    bad = next((r.first_step + i for i, x in enumerate(r.losses) if not math.isfinite(x)), None)
    if bad is not None:
        ax.axvline(bad, color=NAMED_COLOR, linewidth=1.5)
        legend.append(Series(f"non-finite from step {bad}", NAMED_COLOR, named=True))
    from matplotlib.ticker import LogLocator, ScalarFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    ax.yaxis.set_minor_formatter(ScalarFormatter())  # plain numbers (2.3), not 2.3 x 10^0
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)")
    return Chart(fig, legend)


def _over_time(hists: list[tuple[int, Histogram]], bins: int = 48) -> tuple[list[list[float]], float, float] | None:
    """Histograms of one layer re-binned onto one value range: (bins, recordings) densities, each
    recording scaled to a peak of 1 so that its shape shows whatever its spread; with lo and hi."""
    hs = [(s, h) for s, h in hists if h.counts and math.isfinite(h.lo) and math.isfinite(h.hi)]
    if not hs:
        return None
    lo, hi = min(h.lo for _, h in hs), max(h.hi for _, h in hs)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    grid = [[0.0] * len(hs) for _ in range(bins)]
    for j, (_, h) in enumerate(hs):
        xs = [(a + b) / 2 for a, b in zip(h.edges(), h.edges()[1:])]
        for x, c in zip(xs, h.counts):
            grid[min(bins - 1, max(0, int((x - lo) / (hi - lo) * bins)))][j] += c
        peak = max(grid[i][j] for i in range(bins)) or 1.0
        for i in range(bins):
            grid[i][j] /= peak
    return grid, lo, hi


def histograms_over_time(r: Records, sel: Selection = Selection(), width: float = WIDE, what: str = "acts") -> Chart:
    """Small multiples, one heat map per chosen layer: value (y) against recording step (x), each
    column that recording's histogram (darker: more outputs there)."""
    names = [m.name for m in (_hist_layers(r) if what == "acts" else r.modules)]
    get = (lambda s, n: s.acts[n].hist if n in s.acts else None) if what == "acts" else \
          (lambda s, n: s.grads[n].hist if n in s.grads else None)
    data = {n: d for n in names if (d := _over_time([(s.step, h) for s in r.steps if (h := get(s, n)) is not None]))}
    if len(r.steps) < 2 or not data:
        return _empty(width, "fewer than two recordings: nothing to show over time")
    chosen = sel.pick(list(data), MAX_PANELS)
    cols = 3 if width >= WIDE else 1
    rows = math.ceil(len(chosen) / cols)
    fig = _figure(width, rows * (2.3 if cols > 1 else 1.9))
    steps = [s.step for s in r.steps]
    kinds = {m.name: m.kind for m in r.modules}
    for i, n in enumerate(chosen):
        grid, lo, hi = data[n]
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(grid, cmap="Greys", vmin=0, vmax=1, aspect="auto", origin="lower", interpolation="nearest",
                  extent=(steps[0], steps[-1], lo, hi))
        named = sel.named(n)
        ax.set_title(f"{n} ({kinds.get(n, '?')})", color=NAMED_COLOR if named else "black",
                     fontweight="bold" if named else "normal")
        if named:
            _frame(ax)
        ax.set_xlabel("step")
    return Chart(fig, _swatches(sel, chosen))


def _frame(ax) -> None:  # noqa: ANN001
    """Frame a panel of a named layer in the named colour."""
    for sp in ax.spines.values():
        sp.set_color(NAMED_COLOR)
        sp.set_linewidth(2.5)


def _swatches(sel: Selection, names: Sequence[str]) -> list[Series]:
    """The legend of small multiples: one entry per panel, named ones in the named colour."""
    return [Series(f"{n}{' (named by a finding)' if sel.named(n) else ''}", NAMED_COLOR if sel.named(n) else "#555555",
                   sel.named(n), style="swatch") for n in names]


def unit_activity(r: Records, name: str) -> list[list[float]]:
    """(recordings, units): the fraction of examples on which each unit passed gradient, for
    every recording of layer `name` that counted it; every unit of the layer is a column."""
    return [[a / s.acts[name].rows if s.acts[name].rows else 0.0 for a in s.acts[name].unit_active]  # type: ignore[union-attr]
            for s in r.steps if name in s.acts and s.acts[name].unit_active is not None]


def unit_maps(r: Records, sel: Selection = Selection(), width: float = WIDE) -> Chart:
    """Per chosen layer: every unit's activity over the recordings (a dead unit is a white
    column), and the lecture's units x examples map of one batch at the latest map."""
    names = [m.name for m in r.modules if unit_activity(r, m.name) or r.unit_maps.get(m.name)]
    if not names:
        return _empty(width, "no nonlinear layers recorded")
    chosen = sel.pick(names, 4)
    mods = {m.name: m for m in r.modules}
    cols = 2 if width >= WIDE else 1
    fig = _figure(width, len(chosen) * (2.6 if cols > 1 else 4.4))
    panel = 0
    for n in chosen:
        m, named = mods[n], sel.named(n)
        what = "saturated" if m.role == "saturating" else "<= 0"
        act = unit_activity(r, n)
        maps = r.unit_maps.get(n) or []
        for kind in ("activity", "batch"):
            panel += 1
            ax = fig.add_subplot(len(chosen) * (2 // cols), cols, panel)
            if kind == "activity" and act:
                steps = [s.step for s in r.steps if n in s.acts and s.acts[n].unit_active is not None]
                idle = sum(1 for u in zip(*act) if max(u) == 0)
                ax.imshow(act, cmap="gray_r", vmin=0, vmax=1, aspect="auto", interpolation="nearest",
                          extent=(-0.5, len(act[0]) - 0.5, steps[-1] + 0.5, steps[0] - 0.5))
                ax.set_title(f"{n} ({m.kind}): all {len(act[0])} units, {idle} passed no gradient at any recording",
                             fontsize="medium", color=NAMED_COLOR if named else "black", wrap=True)
                ax.set_xlabel("unit")
                ax.set_ylabel("step")
            elif kind == "batch" and maps:
                um = maps[-1]
                cells, total = sum(map(sum, um.inactive)), sum(map(len, um.inactive)) or 1
                ax.imshow(um.inactive, cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
                ax.set_title(f"step {um.step}: {cells / total:.0%} {what} (first {len(um.inactive[0])} units)",
                             fontsize="medium", color=NAMED_COLOR if named else "black")
                ax.set_xlabel("unit")
                ax.set_ylabel("example")
            else:
                ax.set_axis_off()
            if named and ax.axison:
                _frame(ax)
    return Chart(fig, _swatches(sel, chosen))


def activation_caption(r: Records) -> str:
    """What to look for in the activation pictures, for the nonlinearities this model has."""
    kinds = {m.role: set() for m in r.modules}
    for m in r.modules:
        kinds[m.role].add(m.kind)
    parts = ["Output distribution of each layer at the first and the last recorded step."]
    if kinds.get("saturating"):
        parts.append(f"{'/'.join(sorted(kinds['saturating']))} outputs piling up at the ends of their range are "
                     "saturated and pass almost no gradient.")
    relu = kinds.get("relu", set())
    if relu & {"ReLU", "ReLU6"}:
        parts.append(f"{'/'.join(sorted(relu & {'ReLU', 'ReLU6'}))} outputs at 0 pass no gradient.")
    if relu - {"ReLU", "ReLU6"}:
        parts.append(f"{'/'.join(sorted(relu - {'ReLU', 'ReLU6'}))} outputs below 0 pass a small gradient; "
                     "a unit below 0 on every example learns slowly.")
    if not kinds.get("saturating") and not relu:
        parts.append("The model has no nonlinearity modules, so these are its linear layers' outputs.")
    return " ".join(parts)


def charts(r: Records, findings: Sequence[Finding] = ()) -> list[tuple[str, str, str, Callable[..., Chart], tuple[str, ...]]]:
    """The page's charts in order: (anchor, title, caption, chart function, finding codes it shows)."""
    return [
        ("loss", "Loss", "Training loss per step (log scale) and its moving average; the dotted line is the loss of a "
         "uniform guess, where a healthy run starts.", loss_curve, ("init.", "loss.")),
        ("activations", "Activations", activation_caption(r), activation_histograms, ("act.saturated", "norm.batch")),
        ("activations-over-time", "Activations over time", "Each layer's output histogram at every recording: "
         "the value on the vertical axis, the step on the horizontal one, darker where more outputs fall.",
         histograms_over_time, ()),
        ("gradients", "Gradients", "Distribution of the gradient reaching each layer's output. Healthy layers have "
         "similar spreads; a spread shrinking towards the first layers means vanishing gradients.",
         gradient_histograms, ("grad.",)),
        ("gradients-over-time", "Gradients over time", "The gradient reaching each layer's output at every recording, "
         "as above.", lambda rr, sel, width: histograms_over_time(rr, sel, width, what="grads"), ()),
        ("weight-gradients", "Weight gradients", "Gradient distribution of each weight matrix, with its grad:data "
         "ratio (gradient std / weight std), at the first and the last recorded step.", weight_grad_histograms,
         ("norm.bias",)),
        ("updates", "Update:data ratio", "How much each step changes each weight matrix relative to its size; about "
         "1e-3 (the dashed line) is healthy.", update_ratio_curves, ("update.",)),
        ("units", "Dead and saturated units", "Left (above on a phone): every unit's share of examples that passed "
         "gradient at each recording; a white column is a dead unit. Right (below): the units x examples map of one "
         "batch, white where the unit passed no gradient.", unit_maps, ("act.dead",)),
    ]


def pictures(r: Records, findings: Sequence[Finding] = (), narrow: bool = True) -> list[Picture]:
    """Every chart of the page, rendered wide (and narrow unless `narrow` is False), in page order."""
    require_matplotlib()
    import matplotlib

    sel = Selection.of(r, findings)
    out = []
    for anchor, title, caption, fn, shows in charts(r, findings):
        renders, legend = [], []
        for width, size in ((WIDE, 9.5), (NARROW, 8.5)) if narrow else ((WIDE, 9.5),):
            with matplotlib.rc_context({"font.size": size, "axes.titlesize": size + 0.5}):
                chart = fn(r, sel, width)
                renders.append(png(chart.fig))
                legend = legend or chart.legend
        out.append(Picture(anchor, title, caption, renders[0], renders[1] if narrow else b"", legend, shows))
    return out


__all__ = ["require_matplotlib", "Picture", "Chart", "Series", "Selection", "NAMED_COLOR", "png", "activation_histograms",
           "histograms_over_time", "gradient_histograms", "weight_grad_histograms", "update_ratio_curves", "loss_curve",
           "unit_maps", "unit_activity", "activation_caption", "charts", "pictures"]
