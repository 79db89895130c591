"""Training health: watch any PyTorch model train, judge what is wrong, show it, say how to fix it.

A pipeline of plain data, one module per stage (after Karpathy's "Building makemore Part 3:
Activations & Gradients, BatchNorm"):

    stats.py    the statistics, as tensor functions that stay on the device
    monitor.py  Monitor: hooks on any nn.Module and optimizer -> Records
    tracing.py  what the model computes outside its modules (activation functions, the loss, unit axes)
    recurrent.py  nn.RNN/GRU/LSTM step by step on recording steps: every layer, gradients through time
    records.py  Records: plain dataclasses of host numbers, JSON save/load
    checks.py   pure functions Records -> [Finding(code, severity, where, evidence, fix)]
    plots.py    matplotlib pictures of the records
    report.py   one self-contained HTML file: findings first, then the pictures

The diagnostics know PyTorch, not the makemore app: `makemore.doctor` plugs them into the Trainer
and adds the command-line options to their fixes.

    from makemore.diagnostics import Monitor
    with Monitor(model, optimizer) as mon:
        for step in range(n):
            ...; optimizer.step()
            mon.step(loss)
        print(mon.findings()); mon.save_report("report.html")
"""

from .checks import CODES, DEFAULT, SEVERITIES, Finding, Thresholds, run_checks, worst_severity
from .monitor import Monitor
from .records import Records

__all__ = ["Monitor", "Records", "Finding", "Thresholds", "DEFAULT", "CODES", "SEVERITIES", "run_checks", "worst_severity"]
