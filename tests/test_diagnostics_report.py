"""Pictures, the HTML report (rendered in headless Chromium), and the CLI: train --monitor,
makemore report, makemore doctor."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from makemore.cli import main
from makemore.diagnostics import Monitor, Records
from makemore.diagnostics.checks import Finding, run_checks
from makemore.diagnostics.plots import (MAX_LINES, NAMED_COLOR, PALETTE, Selection, activation_caption, pictures,
                                        unit_activity, unit_maps, update_ratio_curves, weight_grad_histograms)
from makemore.diagnostics.records import ModuleInfo
from makemore.diagnostics.report import render_report, write_report


def train_monitored(model: nn.Module, opt: torch.optim.Optimizer, every: int, steps: int) -> Records:
    """`steps` steps of 6 -> 5 classification on seeded random data under a Monitor; its records."""
    g = torch.Generator().manual_seed(0)
    with Monitor(model, opt, every=every) as mon:
        for _ in range(steps):
            x, y = torch.randn(64, 6, generator=g), torch.randint(0, 5, (64,), generator=g)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    return mon.records


def small_records() -> Records:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5))
    with torch.no_grad():
        model[4].weight.mul_(30)  # a confidently wrong output layer, so there is a finding to show
    return train_monitored(model, torch.optim.Adam(model.parameters(), 1e-2), every=5, steps=30)


class Deep(nn.Module):
    """Seventeen weight matrices (more than a legend can hold), GELU throughout, a last hidden
    layer of 160 units (more than the lecture's units x examples map shows), 100 of them pushed
    dead by their bias, and a confidently wrong output layer `lm_head` last."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(6, 32), nn.GELU()]
        for _ in range(14):
            layers += [nn.Linear(32, 32), nn.GELU()]
        layers += [nn.Linear(32, 160), nn.GELU()]
        self.body = nn.Sequential(*layers)
        self.lm_head = nn.Linear(160, 5)
        with torch.no_grad():
            self.body[-2].bias[:100].fill_(-8.0)
            self.lm_head.weight.mul_(30)
            self.lm_head.bias.copy_(torch.tensor([8.0, -8.0, 0.0, 4.0, -4.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.body(x))


@pytest.fixture(scope="module")
def deep() -> tuple[Records, list[Finding]]:
    torch.manual_seed(0)
    model = Deep()
    records = train_monitored(model, torch.optim.AdamW(model.parameters(), 1e-3), every=3, steps=15)
    records.meta["command"] = "makemore doctor --model mlp --steps 24"
    return records, run_checks(records)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory, deep: tuple[Records, list[Finding]]) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(deep[0], path, deep[1])
    return path


TOLERANCE = 40  # per channel, for a pixel to count as the named colour in a screenshot

TITLES = ["Loss", "Activations", "Activations over time", "Gradients", "Gradients over time", "Weight gradients",
          "Update:data ratio", "Dead and saturated units"]


def test_pictures_are_pngs(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    assert re.findall(r"<h2>([^<]+)</h2><figure", text) == TITLES
    pngs = [base64.b64decode(s) for s in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]
    assert len(pngs) == len(TITLES) and all(p.startswith(b"\x89PNG\r\n\x1a\n") and len(p) > 5000 for p in pngs)


def test_pictures_of_empty_records_still_render() -> None:
    pics = pictures(Records(every=10, window=5, n_classes=None, first_step=0), narrow=False)
    assert all(p.png.startswith(b"\x89PNG") for p in pics)


def test_the_deep_model_has_the_findings_the_page_must_show(deep: tuple[Records, list[Finding]]) -> None:
    records, findings = deep
    where = {f.code: f.where for f in findings}
    assert where["init.loss_too_high"] == "lm_head" and where["act.dead_units"] == "body.31"
    assert len(records.matrices) == 17 and records.matrices[-1] == "lm_head.weight"


def test_every_named_series_is_drawn_plus_a_few_others(deep: tuple[Records, list[Finding]]) -> None:
    records, findings = deep
    sel = Selection.of(records, findings)
    assert sel.named("lm_head.weight") and sel.named("body.31") and not sel.named("body.5")
    for chart in (weight_grad_histograms(records, sel), update_ratio_curves(records, sel)):
        named = [s for s in chart.legend if s.named]
        assert [s.label.split(":")[0] for s in named] == ["lm_head.weight"] and named[0].color == NAMED_COLOR
        assert 3 <= len(chart.legend) <= MAX_LINES + 2
        assert chart.legend[0].label.startswith("body.0.weight")  # the first layer is among the few others
    picked = sel.pick([f"x{i}" for i in range(20)] + ["lm_head.weight"], 4)
    assert picked == ["x0", "x10", "x19", "lm_head.weight"]


def test_only_named_series_use_the_named_colour() -> None:
    def rgb(c: str) -> tuple[int, ...]:
        return tuple(int(c[i : i + 2], 16) for i in (1, 3, 5))

    red = rgb(NAMED_COLOR)  # twice the screenshot test's tolerance away from every other colour
    assert all(max(abs(a - b) for a, b in zip(rgb(c), red)) > 2 * TOLERANCE for c in PALETTE)


def test_unit_map_shows_every_unit_of_a_named_layer(deep: tuple[Records, list[Finding]]) -> None:
    records, findings = deep
    act = unit_activity(records, "body.31")
    assert len(act) == len(records.steps) and all(len(row) == 160 for row in act)
    assert all(max(col) == 0 for col in list(zip(*act))[:100])  # the units the bias pushed below zero
    assert len(records.unit_maps["body.31"][0].inactive[0]) < 160  # the batch map alone shows fewer
    assert "body.31 (named by a finding)" in [s.label for s in unit_maps(records, Selection.of(records, findings)).legend]


def test_captions_fit_the_activation() -> None:
    gelu = Records(every=1, window=1, n_classes=None, first_step=0, modules=[ModuleInfo("h", "GELU", "relu", 4)])
    tanh = Records(every=1, window=1, n_classes=None, first_step=0, modules=[ModuleInfo("h", "Tanh", "saturating", 4)])
    assert "Tanh" not in activation_caption(gelu) and "GELU" in activation_caption(gelu)
    assert "Tanh outputs piling up" in activation_caption(tanh)


def test_fix_text_fits_the_activation(deep: tuple[Records, list[Finding]]) -> None:
    dead = next(f for f in deep[1] if f.code == "act.dead_units")
    assert "GELU" in dead.evidence and "ReLU" not in dead.fix  # no "dead ReLUs ... use GELU" on a GELU layer


def test_header_names_the_public_optimizer_and_the_command(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    assert "AdamW lr" in text and "makemore doctor --model mlp --steps 24" in text

    class FastAdamW(torch.optim.AdamW):  # a private speed-up subclass shows as the class it speeds up
        pass

    model = nn.Linear(2, 2)
    with Monitor(model, FastAdamW(model.parameters())) as mon:
        pass
    assert mon.records.meta["optimizer"] == "AdamW"


def test_each_finding_links_to_its_chart(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    links = re.findall(r'<a href="#(fig-[\w-]+)">', text)
    assert {"fig-loss", "fig-units"} <= set(links)
    assert all(f'id="{a}"' in text for a in links)


def test_report_is_self_contained_with_findings_first(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    assert text.index('id=findings') < text.index('id=pictures')
    assert "init.loss_too_high" in text and "Fix:" in text
    assert 'name=viewport' in text
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', text) + re.findall(r'<source [^>]*srcset="([^"]+)"', text)
    assert len(srcs) == 16 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert all(base64.b64decode(s.split(",", 1)[1]).startswith(b"\x89PNG") for s in srcs)
    assert "http://" not in text and "https://" not in text  # nothing to fetch


def test_report_escapes_text() -> None:
    r = Records(every=1, window=1, n_classes=None, first_step=0, meta={"model": "<script>x</script>"})
    html = render_report(r, [Finding("loss.plateau", "warning", "<b>", "a < b", "c & d")], figures=[])
    assert "<script>x" not in html and "&lt;b&gt;" in html and "c &amp; d" in html


def test_report_file_mode_follows_the_umask(report_file: Path) -> None:
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(report_file.stat().st_mode) == 0o666 & ~mask


# -- in a real browser --------------------------------------------------------------------------------

# On load: measure the whole page, then show only the charts under test, without their HTML
# legends (which also use the named colour), and measure where their images landed.
CHECK_JS = """
<style>body.shot main > :not(#pictures), body.shot #pictures > h2, body.shot ul.legend, body.shot figcaption,
body.shot figure:not(#fig-weight-gradients):not(#fig-updates){display:none}</style>
<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const f = document.getElementById('findings').getBoundingClientRect();
  const probe = {
    images: imgs.length, loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    findingsHeight: f.height, findingsTop: f.top, viewport: window.innerWidth, viewportHeight: window.innerHeight,
    scrollWidth: document.documentElement.scrollWidth,
    imgWidths: imgs.map(i => i.getBoundingClientRect().width)};
  document.body.classList.add('shot');
  probe.charts = {};
  for (const id of ['fig-weight-gradients', 'fig-updates']) {
    const img = document.querySelector('#' + id + ' img'), r = img.getBoundingClientRect();
    const narrow = document.querySelector('#' + id + ' source').srcset;
    probe.charts[id] = {x: r.left, y: r.top, w: r.width, h: r.height, narrow: img.currentSrc === narrow};
  }
  const out = document.createElement('pre');
  out.id = 'probe';
  out.style.display = 'none';
  out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(page: Path, profile: Path, width: int, height: int, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={profile}", f"--window-size={width},{height}", "--virtual-time-budget=10000",
           *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def count_near(image: Any, color: str, tol: int = TOLERANCE) -> int:
    """Pixels of `image` within `tol` of `color` in every channel."""
    rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(np.asarray(image, dtype=np.int64) - rgb) <= tol).all(axis=-1).sum())


@pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed (CI installs it: .ci/run)")
@pytest.mark.parametrize("width,height", [(390, 844), (1366, 768)])  # a phone and a laptop
def test_report_renders_in_headless_chromium(report_file: Path, tmp_path: Path, width: int, height: int) -> None:
    from PIL import Image

    page = tmp_path / "probe.html"
    page.write_text(report_file.read_text(encoding="utf-8").replace("</body>", CHECK_JS + "</body>"), encoding="utf-8")
    proc = run_chromium(page, tmp_path / "profile", width, height, "--dump-dom")
    m = re.search(r'<pre id="probe"[^>]*>(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no probe output; chromium said: {proc.stderr[-2000:]}"
    probe = json.loads(m.group(1).replace("&quot;", '"'))
    assert probe["images"] == 8 and probe["loaded"] == 8  # every embedded picture decoded
    assert probe["findingsHeight"] > 50 and probe["findingsTop"] < probe["viewportHeight"]  # findings visible on load
    assert probe["scrollWidth"] <= probe["viewport"]  # nothing wider than the screen
    assert all(0 < w <= probe["viewport"] for w in probe["imgWidths"])

    # the screenshot: lm_head.weight, which the init.loss_too_high finding names, is drawn in the
    # named colour in both charts of weight matrices, in the rendering made for this width
    charts = probe["charts"]
    shot_height = int(max(c["y"] + c["h"] for c in charts.values())) + 20
    run_chromium(page, tmp_path / "profile2", width, shot_height, f"--screenshot={tmp_path / 'shot.png'}")
    shot = Image.open(tmp_path / "shot.png").convert("RGB")
    for name, c in charts.items():
        assert c["narrow"] == (width < 600), name  # the phone gets the narrow rendering
        assert c["w"] > 0.8 * min(width - 40, 900), name  # no postage stamp
        box = shot.crop((int(c["x"]), int(c["y"]), int(c["x"] + c["w"]), int(c["y"] + c["h"])))
        red = count_near(box, NAMED_COLOR)
        assert red > 150, f"{name}: {red} pixels of the named layer's colour at width {width}"


# -- command line -------------------------------------------------------------------------------------


# -- command line -------------------------------------------------------------------------------------


def test_train_monitor_writes_the_report_and_report_regenerates_it(names_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    rc = main(["train", str(names_file), "--model", "mlp", "--n-hidden", "32", "--steps", "30", "--eval-interval", "30",
               "--device", "cpu", "--out", str(out), "--samples", "0", "--monitor", "--monitor-every", "10"])
    assert rc == 0
    records = Records.load(out / "diagnostics.json")
    assert [s.step for s in records.steps] == [0, 10, 20, 29] and len(records.losses) == 30
    assert records.n_classes == json.loads((out / "config.json").read_text())["model"]["vocab_size"]
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(tmp_path)]) == 2  # no records there: one sentence, exit 2
    assert "train with --monitor" in capsys.readouterr().err


def test_report_of_a_corrupt_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "diagnostics.json"
    bad.write_text("{}")
    assert main(["report", str(bad)]) == 2
    assert "not a readable diagnostics file" in capsys.readouterr().err


def test_doctor_exit_codes_and_findings(names_file: Path, tmp_path: Path, capsys) -> None:
    common = [str(names_file), "--model", "mlp", "--n-hidden", "32", "--steps", "20", "--device", "cpu"]
    assert main(["doctor", *common, "--report", str(tmp_path / "ok.html")]) == 0
    assert "healthy: no warnings" in capsys.readouterr().out
    rc = main(["doctor", *common, "--init-output-scale", "10", "--report", str(tmp_path / "bad.html"),
               "--records", str(tmp_path / "bad.json")])
    out = capsys.readouterr().out
    assert rc == 1 and "ERROR   init.loss_too_high at lm_head (step 0)" in out and "fix: scale lm_head" in out
    assert (tmp_path / "bad.html").is_file() and Records.load(tmp_path / "bad.json").steps
    assert main(["doctor", *common, "--init-output-scale", "10", "--json", "--report", str(tmp_path / "j.html")]) == 1
    found = json.loads(capsys.readouterr().out)
    assert found[0]["code"] == "init.loss_too_high" and found[0]["severity"] == "error"


def test_doctor_on_a_diverging_run_reports_instead_of_failing(names_file: Path, tmp_path: Path, capsys) -> None:
    rc = main(["doctor", str(names_file), "--model", "mlp", "--n-hidden", "32", "--steps", "30", "--device", "cpu",
               "--optimizer", "sgd", "--lr", "1e6", "--grad-clip", "0", "--report", str(tmp_path / "r.html")])
    out = capsys.readouterr().out
    assert rc == 1 and "loss.diverging" in out


def test_doctor_on_a_closed_form_model(names_file: Path, tmp_path: Path, capsys) -> None:
    assert main(["doctor", str(names_file), "--model", "counts", "--steps", "5", "--report", str(tmp_path / "c.html")]) == 0
    assert "closed form" in capsys.readouterr().err
