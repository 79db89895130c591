"""Pictures, the HTML report (rendered in headless Chromium), and the CLI: train --monitor,
makemore report, makemore doctor."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from makemore.cli import main
from makemore.diagnostics import Monitor, Records
from makemore.diagnostics.checks import Finding
from makemore.diagnostics.plots import pictures
from makemore.diagnostics.report import render_report, write_report


def small_records() -> Records:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5))
    with torch.no_grad():
        model[4].weight.mul_(30)  # a confidently wrong output layer, so there is a finding to show
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    with Monitor(model, opt, every=5) as mon:
        for _ in range(30):
            x, y = torch.randn(64, 6, generator=g), torch.randint(0, 5, (64,), generator=g)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    return mon.records


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(small_records(), path)
    return path


def test_pictures_are_pngs() -> None:
    pics = pictures(small_records())
    assert [p.title for p in pics] == ["Loss", "Activations", "Gradients", "Weight gradients", "Update:data ratio",
                                       "Dead and saturated units"]
    assert all(p.png.startswith(b"\x89PNG\r\n\x1a\n") and len(p.png) > 5000 for p in pics)


def test_pictures_of_empty_records_still_render() -> None:
    pics = pictures(Records(every=10, window=5, n_classes=None, first_step=0))
    assert all(p.png.startswith(b"\x89PNG") for p in pics)


def test_report_is_self_contained_with_findings_first(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    assert text.index('id=findings') < text.index('id=pictures')
    assert "init.loss_too_high" in text and "Fix:" in text
    assert 'name=viewport' in text
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert len(srcs) == 6 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert all(base64.b64decode(s.split(",", 1)[1]).startswith(b"\x89PNG") for s in srcs)
    assert "http://" not in text and "https://" not in text  # nothing to fetch


def test_report_escapes_text() -> None:
    r = Records(every=1, window=1, n_classes=None, first_step=0, meta={"model": "<script>x</script>"})
    html = render_report(r, [Finding("loss.plateau", "warning", "<b>", "a < b", "c & d")], figures=[])
    assert "<script>x" not in html and "&lt;b&gt;" in html and "c &amp; d" in html


# -- in a real browser --------------------------------------------------------------------------------

CHECK_JS = """
<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const f = document.getElementById('findings').getBoundingClientRect();
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({
    images: imgs.length, loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    findingsHeight: f.height, findingsTop: f.top, viewport: window.innerWidth, viewportHeight: window.innerHeight,
    scrollWidth: document.documentElement.scrollWidth,
    imgWidths: imgs.map(i => i.getBoundingClientRect().width)});
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed (CI installs it: .ci/run)")
@pytest.mark.parametrize("width,height", [(390, 844), (1366, 768)])  # a phone and a laptop
def test_report_renders_in_headless_chromium(report_file: Path, tmp_path: Path, width: int, height: int) -> None:
    page = tmp_path / "probe.html"
    page.write_text(report_file.read_text(encoding="utf-8").replace("</body>", CHECK_JS + "</body>"), encoding="utf-8")
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},{height}", "--virtual-time-budget=10000",
           "--dump-dom", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no probe output; chromium said: {proc.stderr[-2000:]}"
    probe = json.loads(m.group(1).replace("&quot;", '"'))
    assert probe["images"] == 6 and probe["loaded"] == 6  # every embedded picture decoded
    assert probe["findingsHeight"] > 50 and probe["findingsTop"] < probe["viewportHeight"]  # findings visible on load
    assert probe["scrollWidth"] <= probe["viewport"]  # nothing wider than the screen
    assert all(0 < w <= probe["viewport"] for w in probe["imgWidths"])


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
