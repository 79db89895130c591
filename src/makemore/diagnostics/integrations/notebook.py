"""The doctor in Jupyter: findings and reports that render themselves, and a live view of training.

    mon                       # a Monitor, Records or Finding as a cell's last line renders inline:
                              # the findings, then the report's pictures (embedded PNG)
    live = LiveView()
    for step in range(n):
        ...; optimizer.step()
        mon.step(loss)
        live.update(mon)      # on recording steps: the loss curve and the findings, redrawn in place

The inline HTML is the report's (same finding cards, same pictures) with its style scoped to one
element, so it does not restyle the notebook around it; it needs matplotlib. The live view draws
its loss curve as a small SVG (cheap enough to redraw while training); it needs IPython (a
notebook kernel) and draws into an ipywidgets.HTML when ipywidgets is installed, else into a
display handle that it updates (`display(..., display_id=True)`), which a saved notebook keeps.
"""

from __future__ import annotations

import html
import math
import re
import sys
import time
from typing import IO, Any

import numpy as np

from ..checks import Finding, run_checks
from ..monitor import Monitor
from ..plots import pictures
from ..records import Records
from ..report import _CSS, _finding_html, render_report
from .common import Budget, Update, Watch

SCOPE = "mm-doctor"  # class of the element the inline HTML lives in


def _scoped_css(css: str) -> str:
    """The report's style with each selector limited to the SCOPE element (`body` becomes it)."""
    def scope(sel: str) -> str:
        sel = sel.strip()
        return f".{SCOPE}" if sel == "body" else f".{SCOPE} {sel}"

    rules = re.findall(r"([^{}]+)\{([^{}]*)\}", css)
    return "".join(",".join(scope(s) for s in sels.split(",")) + "{" + body + "}" for sels, body in rules)


_STYLE = f"<style>{_scoped_css(_CSS)}</style>"


def _wrap(inner: str) -> str:
    return f'<div class="{SCOPE}">{_STYLE}{inner}</div>'


def findings_html(findings: list[Finding]) -> str:
    """The report's finding cards, or its 'healthy' note."""
    if not findings:
        return "<div class=healthy>Every check passed: training looks healthy.</div>"
    return "\n".join(_finding_html(f) for f in findings)


def finding_html(finding: Finding) -> str:
    """One finding, as `Finding._repr_html_` shows it."""
    return _wrap(_finding_html(finding))


def records_html(records: Records, findings: list[Finding] | None = None, title: str | None = None,
                 figures: bool = True) -> str:
    """The report as an inline element: the page's content (summary, findings and, with `figures`,
    the charts in their wide rendering) without the page around it."""
    findings = run_checks(records) if findings is None else findings
    note = ""
    try:
        pics = pictures(records, findings, narrow=False) if figures else []
    except ImportError:  # matplotlib is an extra: the findings still show
        pics, note = [], "<p class=meta>The charts need matplotlib: pip install 'makemore[notebook]'</p>"
    page = render_report(records, findings, title, figures=pics)
    return _wrap(page[page.index("<main>") + len("<main>") : page.rindex("</main>")] + note)


def monitor_html(monitor: Monitor) -> str:
    """`Monitor._repr_html_`: the report of what it recorded so far."""
    return records_html(monitor.flush())


def loss_svg(records: Records, width: int = 640, height: int = 180, points: int = 400) -> str:
    """The loss so far as a small inline SVG (log scale): the loss faint (block means once there
    are more than `points` steps), its moving average solid, ln(classes) dotted. Drawn by hand,
    not by matplotlib, and in time that hardly grows with the run: it is redrawn while training runs."""
    losses, first = records.losses, records.first_step
    n = len(losses)
    block = max(1, -(-n // points))  # steps per vertex
    starts = np.arange(0, n, block)
    values = np.asarray(losses, dtype=np.float64)
    means = np.add.reduceat(values, starts) / np.diff(np.append(starts, n)) if n else values
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(means) & (means > 0)  # finite blocks only
    xs = first + np.minimum(starts + block, n)[keep] - 1  # each block's last step
    with np.errstate(divide="ignore"):
        ys = np.log10(means[keep])
    if not len(xs):
        return "<p class=meta>no finite loss yet</p>"
    w = max(5, len(xs) // 20)
    # trailing means of full windows (none while there are fewer points than one window)
    smooth_ys = np.convolve(ys, np.full(w, 1 / w), "valid") if len(ys) >= w else ys[:0]
    guide = math.log10(math.log(records.n_classes)) if records.n_classes and records.n_classes > 1 else None
    lo, hi = float(ys.min()), float(ys.max())
    if guide is not None:
        lo, hi = min(lo, guide), max(hi, guide)
    x0, y1, y0 = float(xs[0]), max(hi, lo + 1e-3), lo
    x1 = max(float(xs[-1]), x0 + 1)
    pad = 4

    def line(x: np.ndarray, y: np.ndarray, style: str) -> str:
        px = pad + (x - x0) / (x1 - x0) * (width - 2 * pad)
        py = pad + (y1 - y) / (y1 - y0) * (height - 2 * pad)
        # whole units: the curve is drawn at most `width` pixels wide (and ints format fast)
        xy = " ".join(["%d,%d"] * len(px)) % tuple(np.rint(np.column_stack([px, py])).astype(np.int64).ravel().tolist())
        return f'<polyline fill="none" points="{xy}" {style}/>'

    out = [line(xs, ys, 'stroke="#1f77b4" stroke-opacity="0.3"')]
    if len(smooth_ys):
        out.append(line(xs[w - 1 :], smooth_ys, 'stroke="#1f77b4" stroke-width="2"'))
    if guide is not None:
        out.append(line(np.array([x0, x1]), np.array([guide, guide]), 'stroke="#000" stroke-dasharray="2,3"'))
    label = (f"loss {records.losses[-1]:.3f} at step {first + n - 1} (log scale, {10 ** y0:.3g} to {10 ** y1:.3g})"
             + (f"; dotted: ln {records.n_classes}" if guide is not None else ""))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'style="width:100%;max-width:{width}px;background:#fff" role="img" aria-label="training loss">'
            f'{"".join(out)}</svg><p class=meta>{html.escape(label)}</p>')


def live_html(records: Records, update: Update | None) -> str:
    """The live view's content: the loss curve so far and the latest findings."""
    findings = update.findings if update is not None else []
    step = f"last recording at step {update.step}" if update is not None else "no recording yet"
    return _wrap(f"<p class=meta>Training health, {step} ({len(records.steps)} so far)</p>"
                 f"{loss_svg(records)}{findings_html(findings)}")


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


class LiveView:
    """The loss curve and the latest findings, updated in place at every recording step.

    Args:
        widget: draw into an `ipywidgets.HTML` (True), into an updated display handle (False), or
            the widget when ipywidgets is installed (None).
        stream: outside a notebook kernel, new findings are written here as text lines (default stderr).
        draw_share: a redraw is skipped while the last one took more than this share of the time
            since (on a long run the curve and the checks cost more; the end is always drawn).
    """

    def __init__(self, widget: bool | None = None, stream: IO[str] | None = None, draw_share: float = 0.01) -> None:
        self.widget_wanted = widget
        self.stream = stream
        self.watch: Watch | None = None
        self._out: Any = None   # the ipywidgets.HTML or the display handle, once shown
        self.budget = Budget(draw_share)
        self.last: Update | None = None

    def update(self, monitor: Monitor, final: bool = False) -> Update | None:
        """Redraw if `monitor` collected a recording step since the last call; call after `monitor.step`.
        With `final` (at the end of training) redraw anyway: the losses since the last recording count too."""
        if self.watch is None or self.watch.monitor is not monitor:
            self.watch = Watch(monitor)
        up = self.watch.poll(final=final)
        if up is not None:
            self.last = up
            if final or self.budget.due():
                t0 = time.perf_counter()
                self._draw(monitor.records, up)
                self.budget.spent(t0)
        return up

    def _draw(self, records: Records, up: Update) -> None:
        if not _in_kernel():
            out = self.stream or sys.stderr
            for f in up.new:
                out.write(f"step {up.step}: {f.severity} {f.code} at {f.where}: {f.evidence}\n")
            return
        from IPython.display import HTML, display

        content = live_html(records, up)
        if self._out is None:
            widgets = self._widgets()
            if widgets is not None:
                self._out = widgets.HTML(value=content)
                display(self._out)
            else:
                self._out = display(HTML(content), display_id=True)
        elif hasattr(self._out, "value"):
            self._out.value = content
        else:
            self._out.update(HTML(content))

    def _widgets(self) -> Any:
        if self.widget_wanted is False:
            return None
        try:
            import ipywidgets
        except ImportError:
            if self.widget_wanted:
                raise ImportError("LiveView(widget=True) needs the ipywidgets package: "
                                  "pip install 'makemore[notebook]'") from None
            return None
        return ipywidgets


__all__ = ["LiveView", "findings_html", "finding_html", "records_html", "monitor_html", "live_html", "SCOPE"]
