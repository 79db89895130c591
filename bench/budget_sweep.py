"""The sweep behind `--model auto` (makemore.auto): which configuration is best for a budget of CPU time.

A machine shared with other work cannot time runs fairly, so the sweep separates the two halves
of "best in T seconds":

1. `--timing`: seconds per training step of every candidate, measured side by side (the
   candidates alternate, several rounds, the median kept), at the thread count of the run;
2. the runs: each candidate for the number of steps that its step cost buys in the budget,
   `--steps round(T / step_s)`, at `--threads 1`, so the result of a run depends on its steps
   alone and not on the machine's load. The figure is the exact NLL of the best checkpoint (by
   validation) over the whole val and test splits.

The choice between candidates is made on val; test is reported beside it. The corpora are built
from PyPI packages when the sweep runs (nothing is committed or downloaded): `names` is
Karpathy's names.txt, `first` the `names` package's 5,163 US first names (the built-in corpus),
`surnames` its 88,799 US census last names (`dist.all.last`), `words` the `english-words`
package's web2 list (lowercase letters only).

    python bench/budget_sweep.py --timing                       # step costs, side by side
    python bench/budget_sweep.py --corpus names --budget 120    # every candidate at 120 s
    python bench/budget_sweep.py --corpus names --budget 300 --candidates gru-s,gru-m
    python bench/budget_sweep.py --table                        # the results so far, best per budget
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# names.txt beside the repository (as in CI), else the development machine's shared copy
NAMES = next((p for p in (ROOT.parent / "shared" / "data" / "names.txt", Path("/work/shared/data/names.txt")) if p.is_file()),
             ROOT.parent / "shared" / "data" / "names.txt")
CORPUS_DIR = Path(tempfile.gettempdir()) / "makemore-budget-corpora"

# name -> makemore train options. The GRU rows are makemore.auto's rows; the others are the
# families' own defaults (makemore models), the strongest of the zoo at 5 minutes after the GRU.
CANDIDATES: dict[str, list[str]] = {
    "gru-s": ["--model", "gru", "--n-embd", "64", "--n-hidden", "128", "--batch-size", "32", "--lr", "1e-2",
              "--weight-decay", "0.1", "--warmup", "100"],
    "gru-m": ["--model", "gru", "--n-embd", "64", "--n-hidden", "256", "--batch-size", "64", "--lr", "1e-2",
              "--weight-decay", "0.1", "--warmup", "100"],
    "gru-l": ["--model", "gru", "--n-embd", "96", "--n-hidden", "384", "--batch-size", "64", "--lr", "6e-3",
              "--weight-decay", "0.1", "--warmup", "100"],
    "mlp": ["--model", "mlp"],
    "transformer": ["--model", "transformer"],
}
# a candidate name may end in "+dN": the same with --dropout 0.N (e.g. gru-m+d2: dropout 0.2)

# seconds per step on the quiet 2-core machine at two threads, as a user's run trains
# (`--timing --threads 2`); a run of budget T takes T / step_s steps. gru-m: its timed 300-s run;
# gru-l: the small GRU's cost times their ratio at one thread on the busy machine.
STEP_S = {"gru-s": 0.00221, "gru-m": 0.0159, "gru-l": 0.0224, "mlp": 0.00139, "transformer": 0.00473}


def options(candidate: str) -> list[str]:
    """The train options of a candidate name (with its "+dN" dropout suffix)."""
    base, _, drop = candidate.partition("+d")
    opts = list(CANDIDATES[base])
    if drop:
        opts += ["--dropout", f"0.{drop}"]
    return opts


def step_s(candidate: str) -> float:
    return STEP_S[candidate.partition("+d")[0]]


def corpus_path(name: str) -> Path:
    """The corpus file, built from its package on first use."""
    if name == "names":
        return NAMES
    path = CORPUS_DIR / f"{name}.txt"
    if path.is_file():
        return path
    if name == "first":
        from makemore.corpora import builtin_names

        items = builtin_names()
    elif name == "surnames":
        import names as names_pkg  # type: ignore[import-untyped]

        text = (Path(names_pkg.__file__).parent / "dist.all.last").read_text(encoding="ascii")
        items = [line.split()[0].lower() for line in text.splitlines() if line.strip()]
    elif name == "words":
        from english_words import get_english_words_set  # type: ignore[import-untyped]

        items = sorted(get_english_words_set(["web2"], lower=True, alpha=True))
    else:
        raise SystemExit(f"unknown corpus {name!r}; choose names, first, surnames or words")
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(items) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def run(corpus: str, candidate: str, steps: int, threads: int) -> dict[str, object]:
    """One `makemore train` process for `steps` steps; the exact val and test NLL of its best checkpoint."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "makemore", "train", str(corpus_path(corpus)), *options(candidate),
               "--steps", str(steps), "--threads", str(threads), "--samples", "0", "--device", "cpu", "--out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        summary = json.loads((out / "summary.json").read_text())
    m = summary["metrics"]
    return {"corpus": corpus, "candidate": candidate, "steps": steps, "best_step": summary["best_step"],
            "train": m["train"]["nll"], "val": m["val"]["nll"], "test": m["test"]["nll"], "train_s": summary["train_seconds"],
            "wall_s": time.perf_counter() - t0}


def append_result(path: str, record: dict[str, object]) -> None:
    """One JSON line per run, appended, so a long sweep keeps what it has done."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def timing(candidates: list[str], threads: int, rounds: int, n_steps: int) -> None:
    """Seconds per step of each candidate in one process, alternating, median of `rounds` rounds."""
    import io

    import torch

    from makemore.data import load_dataset
    from makemore.options import run_config
    from makemore.run import setup_model
    from makemore.train import Trainer

    torch.set_num_threads(threads)
    trainers = {}
    for c in candidates:
        opts = options(c)
        kw = {opts[i][2:].replace("-", "_"): opts[i + 1] for i in range(0, len(opts), 2)}
        model = kw.pop("model")
        kw = {k: (int(v) if v.isdigit() else float(v)) for k, v in kw.items()}
        cfg = run_config(model, input=str(corpus_path("names")), steps=10**9, **kw)
        ds = load_dataset(cfg.data, io.StringIO())
        _, net = setup_model(cfg.model, ds, torch.device("cpu"), cfg.train.seed)
        trainers[c] = Trainer(net, ds, cfg.train, torch.device("cpu"), [], stream=io.StringIO())
    times: dict[str, list[float]] = {c: [] for c in candidates}
    for _ in range(rounds):
        for c, tr in trainers.items():
            for _ in range(5):
                tr.step()  # warm
            t0 = time.perf_counter()
            for _ in range(n_steps):
                tr.step()
            times[c].append((time.perf_counter() - t0) / n_steps)
    print(f"seconds per step, {threads} thread(s), median of {rounds} alternating rounds of {n_steps} steps on names")
    ref = statistics.median(times[candidates[0]])
    for c in candidates:
        med = statistics.median(times[c])
        print(f"{c:<14} {med * 1000:8.2f} ms  x{med / ref:5.2f} of {candidates[0]}   (table: {step_s(c) * 1000:.2f} ms)")


def table(results: Path) -> None:
    """The results file as a table per corpus and budget, the best by val in bold (train: on a fixed
    sample of 10,000 train items; empty where the results file has none)."""
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    keys = sorted({(r["corpus"], r["budget"]) for r in rows})
    # the seconds a run's steps take at today's STEP_S (a sweep run with other step costs keeps
    # its steps, grouped under the budget it was run for)
    print("| corpus | candidate | steps | seconds at STEP_S | best step | train NLL | val NLL | test NLL |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|")
    for corpus, budget in keys:
        group = sorted((r for r in rows if (r["corpus"], r["budget"]) == (corpus, budget)), key=lambda r: r["val"])
        for i, r in enumerate(group):
            mark = "**" if i == 0 else ""
            train = f"{r['train']:.4f}" if r.get("train") is not None else ""
            print(f"| {corpus} | {mark}{r['candidate']}{mark} | {r['steps']:,} | {r['steps'] * step_s(r['candidate']):.0f} | "
                  f"{r['best_step']:,} | {train} | {r['val']:.4f} | {r['test']:.4f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", action="append", default=None, help="names, first, surnames, words (repeatable)")
    p.add_argument("--budget", type=float, action="append", default=None, help="seconds of a quiet 2-core CPU (repeatable)")
    p.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated candidate names (+dN: dropout 0.N)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", default="budget_sweep.jsonl", help="JSON lines, one per run (appended)")
    p.add_argument("--timing", action="store_true", help="measure the candidates' seconds per step instead")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--timing-steps", type=int, default=100)
    p.add_argument("--table", action="store_true", help="print the results file as a table")
    a = p.parse_args(argv)
    candidates = [c for c in a.candidates.split(",") if c]
    for c in candidates:
        if c.partition("+d")[0] not in CANDIDATES:
            raise SystemExit(f"unknown candidate {c!r}; choose from {', '.join(CANDIDATES)} (+dN for dropout 0.N)")
    if a.timing:
        timing(candidates, a.threads, a.rounds, a.timing_steps)
        return 0
    if a.table:
        table(Path(a.results))
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from speed import machine

    print(machine(), flush=True)
    for corpus in a.corpus or ["names"]:
        for budget in a.budget or [120.0]:
            for c in candidates:
                steps = max(1, round(budget / step_s(c)))
                r = {"budget": budget, **run(corpus, c, steps, a.threads)}
                append_result(a.results, r)
                print(f"{corpus:<9} {budget:>6g} s  {c:<14} {steps:>7,} steps  val {r['val']:.4f}  test {r['test']:.4f}  "
                      f"({r['wall_s']:.0f} s wall)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
