"""`makemore lab`: the lectures' experiments, reproducible with one command each.

Karpathy's makemore lectures (parts 1-5) found every lesson this project grows from by an
experiment run cell by cell in a notebook. Each experiment here is one small module that
composes the library (models from the registry, `makemore.train.Trainer`, the diagnostics
monitor, `makemore.functional`, `makemore.batchnorm`) and returns its tables as plain data;
`run_experiment` prints them and writes the pictures, `results.json` and a short
self-contained HTML page into the output directory. Same corpus, seed and size: same table.

    from makemore.lab import LabSettings, run_experiment
    result = run_experiment("init-ladder", LabSettings(input="names.txt", steps=20000, out=Path("lab/ladder")))
    print(result.table.records())
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import IO

from ..errors import MakemoreError
from . import batchnorm_coupling, bigram, cross_entropy, deep_tanh, embedding, init_ladder, mlp, update_ratio, wavenet_log
from .common import Experiment, Lab, LabResult, LabSettings, Table, write_page

# the lectures' tables in lecture order (parts 1, 2, 3, 5), then the single lessons
EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (bigram.COUNTS, bigram.NEURAL, mlp.EXPERIMENT, init_ladder.EXPERIMENT, wavenet_log.EXPERIMENT,
              deep_tanh.EXPERIMENT, update_ratio.EXPERIMENT, batchnorm_coupling.EXPERIMENT, cross_entropy.EXPERIMENT,
              embedding.EXPERIMENT)
}


def get_experiment(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise MakemoreError(f"unknown experiment {name!r}; choose one of: {', '.join(EXPERIMENTS)} (see `makemore lab --list`)") from None


def reproduce_command(name: str, settings: LabSettings, steps: int) -> str:
    """The `makemore lab` command line that gives the same result."""
    cmd = ["makemore", "lab", name] + ([settings.input] if settings.input else [])
    cmd += ["--steps", str(steps), "--seed", str(settings.seed)]
    if settings.split != "lecture":
        cmd += ["--split", ",".join(f"{f:g}" for f in settings.split)]
    if settings.batches != "examples":
        cmd += ["--batches", settings.batches]
    if settings.rows is not None:
        cmd += ["--rows", ",".join(map(str, settings.rows))]
    if settings.out is not None:
        cmd += ["--out", str(settings.out)]
    return shlex.join(cmd)


def run_experiment(name: str, settings: LabSettings, stream: IO[str] | None = None, echo: IO[str] | None = None) -> LabResult:
    """Run experiment `name`; print its tables on `echo` (default stdout) and write its files into `settings.out`.

    Progress lines go to `stream` (default stderr). Nothing is written when `settings.out` is None.
    """
    exp = get_experiment(name)
    steps = settings.steps if settings.steps is not None else (exp.quick_steps if settings.quick else exp.steps)
    if steps < 1:
        raise MakemoreError(f"--steps must be at least 1 for experiment {name}, got {steps}")
    if settings.rows is not None:
        if not exp.rows:
            raise MakemoreError(f"experiment {name} runs whole; --rows is for experiments with one run per row")
        bad = [r for r in settings.rows if not 1 <= r <= exp.rows]
        if bad or not settings.rows:
            raise MakemoreError(f"--rows must name rows 1 to {exp.rows} of experiment {name}, got {list(settings.rows)}")
    out = settings.out
    if out is not None and out.exists() and not out.is_dir():
        raise MakemoreError(f"--out {out} exists and is not a directory")
    lab = Lab(settings, steps, stream)
    lab.say(f"lab {name}: {exp.description} ({steps} {exp.steps_means})")
    outcome = exp.run(lab)
    echo = echo or sys.stdout
    for t in outcome.tables:
        echo.write(t.format() + "\n\n")
    for note in outcome.notes:
        echo.write(f"* {note}\n")
    images: list[Path] = []
    page = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for stem, fig in outcome.figures.items():
            images.append(out / f"{stem}.png")
            fig.savefig(images[-1], dpi=100)
        command = reproduce_command(name, settings, steps)
        results = {"experiment": name, "command": command, "steps": steps, "seed": settings.seed,
                   "input": settings.input or "builtin:names", "split": settings.split, "batches": settings.batches,
                   "rows": settings.rows, "tables": [t.to_dict() for t in outcome.tables],
                   "notes": outcome.notes}
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        page = write_page(out / "index.html", exp.title, command, outcome, images)  # written last
        echo.write(f"\npage: {page}\n")
    return LabResult(name, exp.title, outcome.tables, images, page, outcome.notes, outcome.runs)


__all__ = ["EXPERIMENTS", "Experiment", "LabSettings", "LabResult", "Table", "get_experiment",
           "run_experiment", "reproduce_command"]
