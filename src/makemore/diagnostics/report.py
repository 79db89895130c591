"""The report: one self-contained HTML file, findings first, then the pictures; and the one
text form of the findings that every command prints.

Images are embedded as base64 PNG data URIs and the style is inline, so the file can be mailed
or opened from anywhere, offline. The layout is a single column that narrows to a phone's
width: each chart is embedded twice (wide and narrow, chosen by a media query), its legend is
HTML below it, and each finding links to the chart that shows it.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path

from .checks import Finding, run_checks
from .plots import Picture, Series, pictures
from .records import Records, write_text_atomic

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:1rem;color:#1d1d1f;background:#fafafa;line-height:1.45}
main{max-width:980px;margin:0 auto}
h1{font-size:1.5rem;margin:.2rem 0 .6rem}
h2{font-size:1.2rem;margin:1.6rem 0 .5rem}
.meta{color:#555;font-size:.9rem;overflow-wrap:anywhere}
pre.cmd{background:#fff;border-radius:6px;padding:.4rem .6rem;white-space:pre-wrap;overflow-wrap:anywhere;font-size:.85rem}
.finding{background:#fff;border-left:6px solid #999;border-radius:6px;padding:.6rem .8rem;margin:.6rem 0;box-shadow:0 1px 2px rgba(0,0,0,.08);overflow-wrap:anywhere}
.finding.error{border-color:#c62828}.finding.warning{border-color:#ef6c00}.finding.info{border-color:#1565c0}
.sev{display:inline-block;font-size:.75rem;font-weight:700;text-transform:uppercase;padding:.05rem .45rem;border-radius:4px;color:#fff;background:#999;margin-right:.4rem}
.error .sev{background:#c62828}.warning .sev{background:#ef6c00}.info .sev{background:#1565c0}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
.fix{margin-top:.3rem}
.healthy{background:#e8f5e9;border-left:6px solid #2e7d32;border-radius:6px;padding:.6rem .8rem}
figure{margin:0 0 1rem;background:#fff;border-radius:6px;padding:.5rem;box-shadow:0 1px 2px rgba(0,0,0,.08);scroll-margin-top:1rem}
figure img{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{font-size:.9rem;color:#444;margin-top:.3rem}
ul.legend{list-style:none;margin:.4rem 0 0;padding:0;font-size:.8rem;columns:2 20rem;column-gap:1.2rem}
ul.legend li{break-inside:avoid;overflow-wrap:anywhere;padding-left:1.6rem;text-indent:-1.6rem}
ul.legend li.named{font-weight:700}
.sw{display:inline-block;width:1.2rem;margin-right:.4rem;vertical-align:middle;border-top:3px solid}
.sw.dashed{border-top-style:dashed}.sw.dotted{border-top-style:dotted}
.sw.swatch{height:.8rem;border:0}
"""


def format_finding(f: Finding) -> str:
    """One finding as text: severity, code and place, then the evidence and the fix, indented."""
    step = f" (step {f.step})" if f.step is not None else ""
    return f"{f.severity.upper():<8}{f.code} at {f.where}{step}\n        {f.evidence}\n        fix: {f.fix}"


def format_findings(findings: Sequence[Finding]) -> str:
    """The findings as `makemore train --monitor`, `report` and `doctor` print them, and a verdict."""
    serious = [f for f in findings if f.severity != "info"]
    verdict = f"{len(serious)} problem(s) found" if serious else "healthy: no warnings or errors"
    return "\n".join([*(format_finding(f) for f in findings), verdict])


def exit_code(findings: Sequence[Finding]) -> int:
    """The exit code of the commands that judge a run: 1 when a finding is an error, else 0 (a
    warning is printed but does not fail a run, e.g. a training script's)."""
    return 1 if any(f.severity == "error" for f in findings) else 0


def _anchor_for(f: Finding, figures: Sequence[Picture]) -> Picture | None:
    return next((p for p in figures if any(f.code.startswith(s) for s in p.shows)), None)


def _finding_html(f: Finding, figures: Sequence[Picture] = ()) -> str:
    e = html.escape
    step = f" <span class=meta>(step {f.step})</span>" if f.step is not None else ""
    pic = _anchor_for(f, figures)
    link = f' <a href="#fig-{e(pic.anchor)}">see {e(pic.title)}</a>' if pic else ""
    return (
        f'<div class="finding {e(f.severity)}"><div><span class=sev>{e(f.severity)}</span>'
        f"<code>{e(f.code)}</code> at <code>{e(f.where)}</code>{step}{link}</div>"
        f"<div>{e(f.evidence)}</div><div class=fix><b>Fix:</b> {e(f.fix)}</div></div>"
    )


def _legend_html(legend: Sequence[Series]) -> str:
    if not legend:
        return ""
    e = html.escape
    items = "".join(
        f'<li{" class=named" if s.named else ""}><span class="sw {e(s.style)}" '
        f'style="{"background" if s.style == "swatch" else "border-color"}:{e(s.color)}"></span>{e(s.label)}</li>'
        for s in legend
    )
    return f"<ul class=legend>{items}</ul>"


def _figure_html(p: Picture) -> str:
    e = html.escape

    def uri(b: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(b).decode("ascii")

    source = f'<source media="(max-width: 600px)" srcset="{uri(p.png_narrow)}">' if p.png_narrow else ""
    return (
        f'<h2>{e(p.title)}</h2><figure id="fig-{e(p.anchor)}"><picture>{source}'
        f'<img alt="{e(p.title)}" src="{uri(p.png)}"></picture>{_legend_html(p.legend)}'
        f"<figcaption>{e(p.caption)}</figcaption></figure>"
    )


def _summary(r: Records) -> str:
    m = r.meta
    parts = [f"model {m.get('model', '?')}", f"{m['n_params']:,} parameters" if "n_params" in m else ""]
    if "optimizer" in m:
        parts.append(f"{m['optimizer']} lr {m.get('lr'):.3g}" if isinstance(m.get("lr"), float) else m["optimizer"])
    n = len(r.losses)
    parts.append(f"steps {r.first_step}-{r.first_step + n - 1}" if n else "no steps")
    parts.append(f"recorded every {r.every} steps ({len(r.steps)} recordings)")
    if r.n_classes and r.losses and math.isfinite(r.losses[0]) and r.first_step == 0:
        parts.append(f"step-0 loss {r.losses[0]:.3f} (ln {r.n_classes} = {math.log(r.n_classes):.3f})")
    return " · ".join(html.escape(p) for p in parts if p)


def render_report(records: Records, findings: list[Finding] | None = None, title: str | None = None,
                  figures: list[Picture] | None = None) -> str:
    """The report as an HTML string (findings default to `run_checks(records)`; figures to
    `pictures(records, findings)`). `records.meta["command"]`, when set, is shown as the
    command that reproduces the run."""
    findings = run_checks(records) if findings is None else findings
    figures = pictures(records, findings) if figures is None else figures
    title = title or f"Training health: {records.meta.get('model', 'model')}"
    serious = [f for f in findings if f.severity != "info"]
    if findings:
        head = (f"{len(serious)} problem(s) found" if serious else "No problems found") + (
            f", {len(findings) - len(serious)} note(s)" if len(findings) > len(serious) else "")
        body = "\n".join(_finding_html(f, figures) for f in findings)
    else:
        head, body = "No problems found", '<div class=healthy>Every check passed: training looks healthy.</div>'
    command = records.meta.get("command")
    cmd = f"<p class=meta>Reproduce this run:</p><pre class=cmd><code>{html.escape(command)}</code></pre>" if command else ""
    figs = "\n".join(_figure_html(p) for p in figures)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<h1>{html.escape(title)}</h1><p class=meta>{_summary(records)}</p>{cmd}"
        f'<section id=findings><h2>Findings: {html.escape(head)}</h2>{body}</section>'
        f"<section id=pictures>{figs}</section></main></body></html>\n"
    )


def write_report(records: Records, path: Path, findings: list[Finding] | None = None, title: str | None = None) -> Path:
    """Write the report to `path` atomically and return the path."""
    write_text_atomic(Path(path), render_report(records, findings, title))
    return Path(path)


__all__ = ["render_report", "write_report", "format_finding", "format_findings", "exit_code"]
