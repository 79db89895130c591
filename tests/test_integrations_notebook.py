"""Jupyter: Monitor, Records and Finding render themselves as HTML; the live view redraws in place.

The end-to-end test runs a small training in a real kernel (nbclient) and reads the notebook's
rendered outputs: the saturated tanh layer's finding must be in them."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import torch

from integrations_fixtures import tanh_mlp, train_steps
from makemore.diagnostics import Monitor, plots
from makemore.diagnostics.integrations import notebook
from makemore.diagnostics.integrations.notebook import LiveView

TESTS = Path(__file__).resolve().parent


def saturated_monitor(steps: int = 40, every: int = 10) -> Monitor:
    model = tanh_mlp(saturated=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    mon = Monitor(model, opt, every=every)
    train_steps(model, opt, steps, mon.step)
    return mon


def test_monitor_records_and_finding_render_the_report_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    mon = saturated_monitor()
    findings = mon.findings()
    assert [f.code for f in findings] == ["act.saturated"]
    page = mon._repr_html_()
    with monkeypatch.context() as m:  # the records render the same report (pictures left out: slow)
        m.setattr(notebook, "pictures", lambda *a, **k: [])
        assert notebook.records_html(mon.records, figures=False) in mon.records._repr_html_()
    assert "act.saturated" in page and "Fix:" in page
    # the report's charts, embedded, one rendering each (a notebook is never a phone's width)
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', page)) == len(plots.charts(mon.records))
    card = findings[0]._repr_html_()
    assert "act.saturated" in card and findings[0].evidence.split(" ")[0] in card
    # the style is scoped to the element: no rule may reach the notebook around it
    for style in re.findall(r"<style>(.*?)</style>", page + card, re.S):
        for selectors in re.findall(r"([^{}]+)\{", style):
            assert all(s.strip().startswith(f".{notebook.SCOPE}") for s in selectors.split(",")), selectors


def test_a_healthy_run_renders_as_healthy() -> None:
    model = tanh_mlp(saturated=False)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    mon = Monitor(model, opt, every=10)
    train_steps(model, opt, 30, mon.step)
    assert mon.findings() == []
    assert "Every check passed" in notebook.records_html(mon.records, figures=False)


def test_live_view_outside_a_kernel_writes_new_findings_once() -> None:
    model = tanh_mlp(saturated=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    mon = Monitor(model, opt, every=10)
    out = io.StringIO()
    live = LiveView(stream=out)
    updates = []
    train_steps(model, opt, 35, lambda loss: (mon.step(loss), updates.append(live.update(mon))))
    # one update per recording step (steps 0, 10, 20, 30), None in between
    assert [u.step for u in updates if u is not None] == [0, 10, 20, 30]
    assert out.getvalue().count("act.saturated") == 1 and out.getvalue().startswith("step 0: error act.saturated")


NOTEBOOK_CELLS = [
    # a training with the live view (plain display handle), as a user writes it
    f"""import sys; sys.path.insert(0, {str(TESTS)!r})
import torch
from integrations_fixtures import tanh_mlp, train_steps
from makemore.diagnostics import Monitor, plots
from makemore.diagnostics.integrations.notebook import LiveView
torch.set_num_threads(1)
model = tanh_mlp(saturated=True)
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
mon = Monitor(model, opt, every=10)
live = LiveView(widget=False)
train_steps(model, opt, 40, lambda loss: (mon.step(loss), live.update(mon)))
live.update(mon, final=True)""",
    "mon",
    # the same with the ipywidgets view
    """model = tanh_mlp(saturated=True)
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
mon2 = Monitor(model, opt, every=10)
live2 = LiveView(widget=True)
train_steps(model, opt, 20, lambda loss: (mon2.step(loss), live2.update(mon2)))
live2.update(mon2, final=True)""",
]


def test_notebook_kernel_shows_the_finding_live_and_inline() -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True).execute()
    live, inline, widget = (cell.outputs for cell in nb.cells)
    # the live view is one display, redrawn in place: the last drawing (the end) is what it shows
    shown = [o for o in live if o.output_type == "display_data"]
    assert len(shown) == 1, live
    html = shown[0].data["text/html"]
    assert "act.saturated" in html and "recording at step 30" in html and "at step 39" in html and "<polyline" in html
    assert inline[0].output_type == "execute_result" and "act.saturated" in inline[0].data["text/html"]
    # the widget's last value is kept in the notebook's widget state
    assert widget[0].data.get("application/vnd.jupyter.widget-view+json"), widget
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    values = [s["state"].get("value", "") for s in state.values() if s["model_name"] == "HTMLModel"]
    assert any("act.saturated" in v and "step 10" in v for v in values), values


def test_live_loss_curve_stays_small_on_a_long_run() -> None:
    """200,000 steps draw as at most 400 vertices per line, each a block mean of the losses."""
    from makemore.diagnostics import Records

    losses = [3.0 / (1 + i / 1000) for i in range(200_000)]
    svg = notebook.loss_svg(Records(every=250, window=5, n_classes=27, first_step=0, losses=losses))
    lines = re.findall(r'points="([^"]*)"', svg)
    assert len(lines) == 3 and all(len(pts.split()) <= 400 for pts in lines)
    assert "loss 0.015 at step 199999" in svg
    # without the ln(V) guide the falling loss starts at the top left; the last vertex (the last
    # block's mean) sits at the bottom right
    svg = notebook.loss_svg(Records(every=250, window=5, n_classes=None, first_step=0, losses=losses))
    faint = re.findall(r'points="([^"]*)"', svg)[0].split()
    assert faint[0] == "4,4" and faint[-1] == "636,176"
