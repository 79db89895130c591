"""What the lecture notebooks (docs/notebooks/) share: their size, their data, pictures inline.

`MAKEMORE_QUICK=1` runs every notebook at a tiny size (seconds; the tests execute them so);
otherwise they run at the lectures' size. `MAKEMORE_NAMES` names the file of names (Karpathy's
names.txt); without it, `names.txt` in the working directory, else the built-in US names.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .common import LabResult, LabSettings, Table

QUICK = os.environ.get("MAKEMORE_QUICK", "") not in ("", "0")
LAB_DOCS = Path(__file__).resolve().parents[3] / "docs" / "lab"  # the committed full-size results, in a checkout


def size(full: int, quick: int) -> int:
    """`quick` under MAKEMORE_QUICK, else `full` (the lecture's)."""
    return quick if QUICK else full


def names_file() -> str | None:
    """The names to train on: $MAKEMORE_NAMES, ./names.txt, or None (the built-in corpus)."""
    given = os.environ.get("MAKEMORE_NAMES")
    if given:
        return given
    return "names.txt" if Path("names.txt").is_file() else None


def run(experiment: str, **settings: Any) -> LabResult:
    """`makemore lab EXPERIMENT` on `names_file()`: progress on stderr, the tables not printed (the
    notebook shows them), pictures and page in a temporary directory. `settings`: LabSettings fields."""
    from . import run_experiment

    out = Path(tempfile.mkdtemp(prefix=f"makemore-{experiment}-"))
    return run_experiment(experiment, LabSettings(input=names_file(), out=out, **settings), echo=io.StringIO())


def show(chart: Any) -> None:
    """Display a diagnostics chart (`makemore.diagnostics.plots`) or a matplotlib Figure inline as a PNG
    (no pyplot, no interactive backend needed)."""
    from IPython.display import Image, display

    from ..diagnostics.plots import png

    display(Image(data=png(getattr(chart, "fig", chart))))


def show_pictures(result: Any) -> None:
    """Display the PNGs a lab experiment wrote (`LabResult.figures`)."""
    from IPython.display import Image, display

    for path in result.figures:
        display(Image(filename=str(path)))


def full_size(experiment: str) -> Table | None:
    """The main table of the committed full-size run of `experiment`: docs/lab/<experiment>/results.json,
    or the rows run one at a time (`--rows`) in docs/lab/<experiment>/row-*/; None outside a checkout."""
    root = LAB_DOCS / experiment
    paths = [root / "results.json"] if (root / "results.json").is_file() else sorted(root.glob("row-*/results.json"))
    if not paths:
        return None
    saved = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    first = saved[0]["tables"][0]
    rows = [r for s in saved for r in s["tables"][0]["rows"]]
    commands = "; ".join(s["command"] for s in saved)
    return Table(f"{first['title']} (committed full-size runs: {commands})", first["columns"], rows)


__all__ = ["QUICK", "size", "names_file", "run", "show", "show_pictures", "full_size"]
