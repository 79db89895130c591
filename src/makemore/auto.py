"""`--model auto`: the family, size and training settings for a budget of CPU time.

The rule is a small table fitted to the measurements of `bench/budget_sweep.py` and the timed
runs of `bench/budget_verify.py` (their tables and commands are in docs/budget.md): the budget in
seconds and the machine's CPU cores pick a row, and a small corpus adds dropout. A budget given
in steps (`--steps` without `--time`) is turned into seconds with the measured cost of a step of
the chosen row on a 2-core CPU.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    """One row of the rule: the configuration trained for budgets up to `up_to_s` seconds."""

    up_to_s: float               # the largest budget, in seconds, this row is chosen for
    step_s: float                # seconds per step on a quiet 2-core CPU, all its cores busy (bench/budget_sweep.py --timing)
    options: dict[str, Any]      # model and training options (as on the command line, with underscores)
    why: str                     # what the measurements showed, in a few words
    min_cores: int = 1           # the CPU cores the row needs (an ensemble's members train side by side)


# The winners by budget and cores (docs/budget.md): the small one-layer GRU beat the MLP in every
# sweep group on every corpus, and overfits names.txt as the budget grows; at 300 s a GRU twice as
# wide with dropout beat it. A GRU keeps only about one core busy, so on a machine with two cores or
# more several of them, trained side by side with different seeds and averaged (an ensemble), use
# the time of all of them. The wide GRU learns no more from the second half of 300 s on names.txt,
# so four members at half the steps each beat two at full length, and members with less dropout,
# each a little worse alone, average better. The switch at 200 s lies between the budgets measured.
_GRU_S = {"model": "gru", "n_embd": 64, "n_hidden": 128, "batch_size": 32, "lr": 1e-2, "weight_decay": 0.1,
          "warmup": 100}
_GRU_M = {"model": "gru", "n_embd": 64, "n_hidden": 256, "batch_size": 64, "lr": 1e-2, "weight_decay": 0.1,
          "warmup": 100, "dropout": 0.2}
RULE: list[Row] = [
    Row(200, 0.00588, {**_GRU_S, "members": 4},
        "at 120 s four small GRUs, two per core at half the steps, averaged, beat two and one", min_cores=2),
    Row(200, 0.00221, _GRU_S, "the small GRU learned the most per second of CPU up to 120 s"),
    Row(math.inf, 0.0324, {**_GRU_M, "dropout": 0.1, "members": 4},
        "at 300 s four wider GRUs, two per core at half the steps, averaged, beat one GRU on both cores "
        "and two at full length", min_cores=2),
    Row(math.inf, 0.0159, _GRU_M, "at 300 s a wider GRU with dropout overfits less than the small one"),
]
# Items in the training file below which the rule adds dropout: a small corpus is learned by heart
# long before the budget ends (in the sweep dropout helped on the built-in first names and hurt on
# names.txt, six times bigger).
SMALL_CORPUS_ITEMS = 10_000
SMALL_CORPUS_DROPOUT = 0.4


@dataclass(frozen=True)
class Choice:
    """What auto chose: the options it sets (under the ones given explicitly) and why."""

    options: dict[str, Any]
    reason: str
    budget_s: float
    items: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"options": dict(self.options), "reason": self.reason, "budget_s": self.budget_s, "items": self.items}


def count_items(path: str | None) -> int | None:
    """Non-blank lines of the input file (the built-in corpus's items for None); None when the file
    cannot be read (loading the data then says why)."""
    if path is None:
        from .corpora import builtin_names

        try:
            return len(builtin_names())
        except Exception:  # noqa: BLE001 - the missing package is reported when the data are loaded
            return None
    try:
        return sum(1 for line in Path(path).read_bytes().splitlines() if line.strip())
    except OSError:
        return None


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on this platform
        return os.cpu_count() or 1


def rows_for(cores: int) -> list[Row]:
    """The rows of the rule a machine with `cores` CPU cores uses: those it has the cores for, less
    those behind one for the same budgets."""
    rows: list[Row] = []
    for r in RULE:
        if cores >= r.min_cores and (not rows or r.up_to_s > rows[-1].up_to_s):
            rows.append(r)
    return rows


def choose(time_s: float | None, steps: int | None, items: int | None, cores: int = 1) -> Choice:
    """The rule: of the rows for `cores`, the first for the budget (`time_s`, else `steps` converted
    with each row's step cost), plus dropout for a corpus of fewer than `SMALL_CORPUS_ITEMS` items."""
    rows = rows_for(cores)
    if time_s is not None:
        row = next(r for r in rows if time_s <= r.up_to_s)
        budget, given = time_s, f"{time_s:g} s"
    else:
        steps = steps or 0
        row = next(r for r in rows if steps * r.step_s <= r.up_to_s)
        budget, given = steps * row.step_s, f"{steps} steps (about {steps * row.step_s:.0f} s of a 2-core CPU)"
    options = dict(row.options)
    if steps is not None and time_s is None:
        options["warmup"] = min(options["warmup"], steps // 10)  # a short run warms up for a tenth of it at most
    why = row.why
    if items is not None and items < SMALL_CORPUS_ITEMS:
        options.update(n_layer=1, dropout=SMALL_CORPUS_DROPOUT)
        why += f"; {items:,} items is a small corpus: dropout {SMALL_CORPUS_DROPOUT}"
    sizes = f"{options['model']} {options['n_embd']}x{options['n_hidden']}"
    if options.get("members", 1) > 1:
        sizes = f"an ensemble of {options['members']} {sizes} (seeds apart, side by side on {cores} cores)"
    extras = "".join(f", {k.replace('_', ' ')} {v:g}" for k, v in options.items() if k == "dropout")
    reason = (f"auto: {sizes}, batch {options['batch_size']}, lr {options['lr']:g}, weight decay "
              f"{options['weight_decay']:g}, cosine with {options['warmup']} warm-up steps{extras} for {given}: {why}")
    return Choice(options, reason, budget, items)


__all__ = ["RULE", "Row", "Choice", "choose", "count_items", "rows_for", "usable_cores", "SMALL_CORPUS_ITEMS", "SMALL_CORPUS_DROPOUT"]
