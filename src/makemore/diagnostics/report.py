"""The report: one self-contained HTML file, findings first, then the pictures.

Images are embedded as base64 PNG data URIs and the style is inline, so the file can be mailed
or opened from anywhere, offline. The layout is a single column that narrows to a phone's
width (viewport meta tag, images at 100% width).
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from .checks import Finding, run_checks
from .plots import Picture, pictures
from .records import Records

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:1rem;color:#1d1d1f;background:#fafafa;line-height:1.45}
main{max-width:980px;margin:0 auto}
h1{font-size:1.5rem;margin:.2rem 0 .6rem}
h2{font-size:1.2rem;margin:1.6rem 0 .5rem}
.meta{color:#555;font-size:.9rem;overflow-wrap:anywhere}
.finding{background:#fff;border-left:6px solid #999;border-radius:6px;padding:.6rem .8rem;margin:.6rem 0;box-shadow:0 1px 2px rgba(0,0,0,.08);overflow-wrap:anywhere}
.finding.error{border-color:#c62828}.finding.warning{border-color:#ef6c00}.finding.info{border-color:#1565c0}
.sev{display:inline-block;font-size:.75rem;font-weight:700;text-transform:uppercase;padding:.05rem .45rem;border-radius:4px;color:#fff;background:#999;margin-right:.4rem}
.error .sev{background:#c62828}.warning .sev{background:#ef6c00}.info .sev{background:#1565c0}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
.fix{margin-top:.3rem}
.healthy{background:#e8f5e9;border-left:6px solid #2e7d32;border-radius:6px;padding:.6rem .8rem}
figure{margin:0 0 1rem;background:#fff;border-radius:6px;padding:.5rem;box-shadow:0 1px 2px rgba(0,0,0,.08)}
figure img{display:block;width:100%;height:auto}
figcaption{font-size:.9rem;color:#444;margin-top:.3rem}
"""


def _finding_html(f: Finding) -> str:
    e = html.escape
    step = f" <span class=meta>(step {f.step})</span>" if f.step is not None else ""
    return (
        f'<div class="finding {e(f.severity)}"><div><span class=sev>{e(f.severity)}</span>'
        f"<code>{e(f.code)}</code> at <code>{e(f.where)}</code>{step}</div>"
        f"<div>{e(f.evidence)}</div><div class=fix><b>Fix:</b> {e(f.fix)}</div></div>"
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
    """The report as an HTML string (findings default to `run_checks(records)`)."""
    findings = run_checks(records) if findings is None else findings
    figures = pictures(records) if figures is None else figures
    title = title or f"Training health: {records.meta.get('model', 'model')}"
    serious = [f for f in findings if f.severity != "info"]
    if findings:
        head = (f"{len(serious)} problem(s) found" if serious else "No problems found") + (
            f", {len(findings) - len(serious)} note(s)" if len(findings) > len(serious) else "")
        body = "\n".join(_finding_html(f) for f in findings)
    else:
        head, body = "No problems found", '<div class=healthy>Every check passed: training looks healthy.</div>'
    figs = "\n".join(
        f'<h2>{html.escape(p.title)}</h2><figure><img alt="{html.escape(p.title)}" '
        f'src="data:image/png;base64,{base64.b64encode(p.png).decode("ascii")}">'
        f"<figcaption>{html.escape(p.caption)}</figcaption></figure>"
        for p in figures
    )
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<h1>{html.escape(title)}</h1><p class=meta>{_summary(records)}</p>"
        f'<section id=findings><h2>Findings: {html.escape(head)}</h2>{body}</section>'
        f"<section id=pictures>{figs}</section></main></body></html>\n"
    )


def write_report(records: Records, path: Path, findings: list[Finding] | None = None, title: str | None = None) -> Path:
    """Write the report to `path` atomically and return the path."""
    from ..checkpoint import atomic_write_bytes

    text = render_report(records, findings, title)
    atomic_write_bytes(Path(path), lambda f: f.write(text.encode("utf-8")))
    return Path(path)


__all__ = ["render_report", "write_report"]
