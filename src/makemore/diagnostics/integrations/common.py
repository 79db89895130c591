"""What every integration shares: a record's numbers under stable tags, and following a Monitor.

Tags (the same in TensorBoard, Lightning's loggers and the Hugging Face log history; `<layer>` and
`<param>` are the names in the model, as `named_modules()` / `named_parameters()` give them):

    doctor/act_std/<layer>            std of the layer's output
    doctor/grad_std/<layer>           std of the gradient reaching the layer's output
    doctor/saturation/<layer>         tanh/sigmoid-like layers: fraction of outputs in the flat tails
    doctor/zero_fraction/<layer>      ReLU-like layers: fraction of outputs <= 0
    doctor/dead_fraction/<layer>      fraction of units that passed no gradient on any example of the
                                      last `window` recordings (as the dead-unit check counts them)
    doctor/update_ratio_log10/<param> log10 std(W_after - W_before) / std(W_before), weight matrices
    doctor/update_ratio_log10/median  the median over the matrices
    doctor/update_ratio_log10/guide   -3, the lecture's 1e-3 guide line
    doctor/finding/<code>             present while a check finds <code>: 1 info, 2 warning, 3 error
"""

from __future__ import annotations

import importlib
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from ..checks import SEVERITIES, Finding, run_checks, update_log_ratios
from ..monitor import Monitor
from ..records import Records, StepRecord

PREFIX = "doctor"
REPORT_FILE = "doctor_report.html"  # the framework callbacks' report, in the run's output directory
GUIDE_LOG10 = -3.0  # the lecture's healthy update:data ratio, 1e-3


def require(module: str, extra: str, what: str, package: str | None = None) -> ModuleType:
    """Import `module`, or raise an ImportError of one sentence: `what` needs `package` (default:
    the module's top-level name), installed with makemore's extra `extra`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = package or module.split(".")[0]
        raise ImportError(f"{what} needs the {package} package: pip install 'makemore[{extra}]'") from None


def step_loss(losses: list[Tensor], reduce: str) -> Tensor | None:
    """An optimizer step's loss from its micro-batches' losses (device tensors): their "sum" or
    "mean" in float32. One micro-batch, the usual case, is its own sum and mean: no op is run."""
    if not losses:
        return None
    if len(losses) == 1:
        return losses[0].float()
    stacked = torch.stack(losses).float()
    return stacked.sum() if reduce == "sum" else stacked.mean()


def severity_level(severity: str) -> int:
    """info 1, warning 2, error 3 (0 stays free for 'not found')."""
    return SEVERITIES.index(severity) + 1


def dead_fraction(records: Records, name: str, upto: int) -> float | None:
    """Fraction of `name`'s units inactive on every example of the `window` recordings ending at
    `records.steps[upto]` (None when the layer has no per-unit activity)."""
    win = [s.acts[name].unit_active for s in records.steps[max(0, upto - records.window + 1) : upto + 1]
           if name in s.acts and s.acts[name].unit_active is not None]
    if not win:
        return None
    active = [sum(col) for col in zip(*win)]  # type: ignore[misc]
    return sum(1 for a in active if a == 0) / len(active) if active else None


def record_scalars(records: Records, index: int = -1) -> dict[str, float]:
    """The scalars of one recording step (`records.steps[index]`) under the tags above."""
    index = index % len(records.steps)
    rec = records.steps[index]
    out: dict[str, float] = {}
    for m in records.modules:
        a, g = rec.acts.get(m.name), rec.grads.get(m.name)
        if a is not None:
            out[f"{PREFIX}/act_std/{m.name}"] = a.std
            if a.saturated is not None:
                out[f"{PREFIX}/saturation/{m.name}"] = a.saturated
            if a.zero is not None:
                out[f"{PREFIX}/zero_fraction/{m.name}"] = a.zero
            if (d := dead_fraction(records, m.name, index)) is not None:
                out[f"{PREFIX}/dead_fraction/{m.name}"] = d
        if g is not None:
            out[f"{PREFIX}/grad_std/{m.name}"] = g.std
    for name in records.matrices or [n for n, p in rec.params.items() if p.grad_hist is not None]:
        p = rec.params.get(name)
        if p is not None and p.update_ratio is not None and p.update_ratio > 0 and math.isfinite(p.update_ratio):
            out[f"{PREFIX}/update_ratio_log10/{name}"] = math.log10(p.update_ratio)
    if ratios := update_log_ratios(rec, records.matrices):
        out[f"{PREFIX}/update_ratio_log10/median"] = statistics.median(ratios)
        out[f"{PREFIX}/update_ratio_log10/guide"] = GUIDE_LOG10
    return out


def finding_scalars(findings: list[Finding]) -> dict[str, float]:
    """`doctor/finding/<code>`: the worst severity level of each code found."""
    out: dict[str, float] = {}
    for f in findings:
        key = f"{PREFIX}/finding/{f.code}"
        out[key] = max(out.get(key, 0), severity_level(f.severity))
    return out


def findings_text(findings: list[Finding]) -> str:
    """The findings as Markdown lines (TensorBoard's text plugin renders Markdown)."""
    if not findings:
        return "No problems found: every check passed."
    return "\n\n".join(f"**{f.severity}** `{f.code}` at `{f.where}`: {f.evidence}. Fix: {f.fix}" for f in findings)


def check_stop_on(stop_on: str | None) -> None:
    if stop_on is not None and stop_on not in SEVERITIES:
        raise ValueError(f"stop_on must be one of {SEVERITIES} or None, not {stop_on!r}")


def stop_reason(findings: list[Finding], stop_on: str | None) -> str | None:
    """Why to stop training: the worst finding, when it is at least as serious as `stop_on`."""
    if stop_on is None or not findings:
        return None
    worst = max(findings, key=lambda f: f.rank)
    if worst.rank < SEVERITIES.index(stop_on):
        return None
    return f"the doctor stops training: {worst.severity} {worst.code} at {worst.where}: {worst.evidence}"


def finish_run(records: Records, findings: list[Finding], report: bool | str | Path, default_dir: str | Path,
               say: Callable[[str], None]) -> Path | None:
    """The end of a framework's run: `say` the findings, write the report (`report`: True for
    doctor_report.html in `default_dir`, a path, or False for none) and return its path."""
    from ..report import format_findings, write_report

    say("training health:\n" + format_findings(findings))
    if report is False:
        return None
    path = Path(default_dir) / REPORT_FILE if report is True else Path(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_report(records, path, findings)
    say(f"training health report: {path}")
    return path


@dataclass
class Update:
    """What a Monitor recorded since the last look: the new recording steps and the findings now."""

    step: int                                  # the latest recorded step
    records: list[StepRecord]                  # the new recording steps, oldest first (may be empty at the end)
    scalars: list[dict[str, float]]            # record_scalars of each, in the same order
    findings: list[Finding]                    # every finding on the records so far
    new: list[Finding] = field(default_factory=list)  # findings whose (code, where) is new since the last update


class Budget:
    """Keeps a repeated piece of work to a share of the time: `due()` says whether it may run now,
    given that the last run took `d` seconds and may take no more than `share` of the time since."""

    def __init__(self, share: float = 0.01) -> None:
        self.share = share
        self._next = 0.0  # time.perf_counter() from which the work may run again

    def due(self) -> bool:
        return time.perf_counter() >= self._next

    def spent(self, started: float) -> None:
        """The work that started at `started` (a time.perf_counter()) has just ended."""
        now = time.perf_counter()
        self._next = now + (now - started) / self.share


class Watch:
    """Follows a Monitor: after `monitor.step(...)`, `poll()` returns an Update when a recording
    step was collected since the last poll (and None otherwise, at the cost of one comparison).

    The checks read every loss so far, so their cost grows with the run; they run at a recording
    step unless the last time they ran took more than `check_share` of the time since (the first
    recording and the end of the run are always checked). Until then an Update carries the last
    findings.
    """

    def __init__(self, monitor: Monitor, check_share: float = 0.01) -> None:
        self.monitor = monitor
        self.budget = Budget(check_share)
        self.seen = 0
        self.known: set[tuple[str, str]] = set()
        self.findings: list[Finding] = []

    def poll(self, final: bool = False) -> Update | None:
        """The Update since the last poll; with `final`, also when there is no new recording (the
        end of a run: the losses since the last recording may add findings)."""
        records = self.monitor.records
        n = len(records.steps)
        if n == self.seen and not (final and n):
            return None
        new_idx = range(self.seen, n)
        self.seen = n
        new: list[Finding] = []
        if final or self.budget.due():
            t0 = time.perf_counter()
            self.findings = run_checks(self.monitor.flush())
            self.budget.spent(t0)
            new = [f for f in self.findings if (f.code, f.where) not in self.known]
            self.known |= {(f.code, f.where) for f in self.findings}
        return Update(records.steps[-1].step, [records.steps[i] for i in new_idx],
                      [record_scalars(records, i) for i in new_idx], self.findings, new)


__all__ = ["require", "step_loss", "severity_level", "dead_fraction", "record_scalars", "finding_scalars", "findings_text",
           "check_stop_on", "stop_reason", "finish_run", "Update", "Budget", "Watch", "PREFIX", "GUIDE_LOG10", "REPORT_FILE"]
