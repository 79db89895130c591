"""What the lecture notebooks (docs/notebooks/) share: their size, their data, pictures inline.

`MAKEMORE_QUICK=1` runs every notebook at a tiny size (seconds; the tests execute them so);
otherwise they run at the lectures' size. `MAKEMORE_NAMES` names the file of names (Karpathy's
names.txt); without it, `names.txt` in the working directory, else the built-in US names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .common import Table

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
    """The main table of the committed full-size run of `experiment` (docs/lab/<experiment>/results.json),
    or None outside a checkout of the repository."""
    path = LAB_DOCS / experiment / "results.json"
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    t = saved["tables"][0]
    return Table(f"{t['title']} (committed full-size run: {saved['command']})", t["columns"], t["rows"])


__all__ = ["QUICK", "size", "names_file", "show", "show_pictures", "full_size"]
