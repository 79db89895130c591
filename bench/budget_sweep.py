"""The sweep behind `--model auto` (makemore.auto): which configuration is best for a budget of CPU time.

A machine shared with other work cannot time runs fairly, so the sweep separates the two halves
of "best in T seconds":

1. the step costs: seconds per training step of every candidate on the quiet machine, in the way
   its budget is spent (`STEP_S`: two threads alone, as `makemore train --time T` trains, or one
   thread beside another run, as each member of a two-member ensemble trains), times the
   corpus's cost against names.txt (`CORPUS_COST`). `--timing` measures them side by side (the
   candidates alternate, several rounds, the median kept);
2. the runs: each candidate for the number of steps that its step cost buys in the budget,
   `--steps round(T / step_s)`, at `--threads 1`, so the result of a run depends on its steps
   alone and not on the machine's load. The figure is the exact NLL of the best checkpoint (by
   validation) over the whole val and test splits. An ensemble `KxNAME` trains K members of NAME
   (seeds 1337, 1338, ...), each for the steps its share of the two cores buys, and is scored as
   the average of the members' probabilities.

The choice between candidates is made on val; test is reported beside it. The corpora are built
from PyPI packages when the sweep runs (nothing is committed or downloaded): `names` is
Karpathy's names.txt, `first` the `names` package's 5,163 US first names (the built-in corpus),
`surnames` its 88,799 US census last names (`dist.all.last`), `words` the `english-words`
package's web2 list (lowercase letters only).

    python bench/budget_sweep.py --timing --corpus names --corpus words   # step costs, side by side
    python bench/budget_sweep.py --timing --threads 1 --beside            # one thread beside another run
    python bench/budget_sweep.py --corpus names --budget 120 --candidates gru-s,2xgru-s,mlp
    python bench/budget_sweep.py --table                                  # the results so far, best per budget
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
# a candidate name may end in "+dN": the same with --dropout 0.N (e.g. gru-m+d2: dropout 0.2), and
# start with "Kx": an ensemble of K members of it trained side by side on the two cores, seeds
# SEED, SEED + 1, ... as `makemore train --members K` does
SEED = 1337

# Seconds per step on names.txt on the quiet 2-core machine (docs/budget.md gives the source of each):
# "alone" at two threads with nothing else running, as `makemore train --time T` trains; "beside" at
# one thread while another run trains on the other core, as each member of an ensemble trains.
STEP_S: dict[str, dict[str, float]] = {
    "gru-s": {"alone": 0.00221, "beside": 0.00294},
    "gru-m": {"alone": 0.0158, "beside": 0.0164},
    "gru-l": {"alone": 0.0224},
    "mlp": {"alone": 0.00139},
    "transformer": {"alone": 0.00473},
}
# A step's cost on a corpus over its cost on names.txt (longer items make longer batches), and the
# cost of dropout, each measured side by side with `--timing --threads 1`.
CORPUS_COST: dict[str, dict[str, float]] = {
    "surnames": {"gru-s": 1.07, "mlp": 1.10},
    "words": {"gru-s": 1.46, "mlp": 1.42},
    "first": {"gru-s": 0.92, "mlp": 0.97},
}
DROPOUT_COST: dict[str, float] = {"gru-s": 1.195, "gru-m": 1.004}


def parse(candidate: str) -> tuple[int, str, str]:
    """(members, base candidate, dropout digits) of a name such as "2xgru-s+d4" -> (2, "gru-s", "4")."""
    members = 1
    if candidate[:1].isdigit() and "x" in candidate:
        count, _, candidate = candidate.partition("x")
        members = int(count)
    base, _, drop = candidate.partition("+d")
    return members, base, drop


def options(candidate: str) -> list[str]:
    """The train options of a (member's) candidate name, with its "+dN" dropout suffix."""
    _, base, drop = parse(candidate)
    opts = list(CANDIDATES[base])
    if drop:
        opts += ["--dropout", f"0.{drop}"]
    return opts


def step_s(candidate: str, corpus: str = "names") -> float:
    """Seconds per step of the candidate (each member's, for an ensemble) on the corpus, quiet machine."""
    members, base, drop = parse(candidate)
    mode = "beside" if members > 1 else "alone"
    share = max(1.0, members / 2)  # more members than cores take turns on them
    if mode not in STEP_S[base]:
        raise SystemExit(f"no step cost of {base} {mode} (STEP_S); measure it with --timing first")
    if corpus != "names" and base not in CORPUS_COST.get(corpus, {}):
        raise SystemExit(f"no step cost of {base} on {corpus} (CORPUS_COST); measure it with --timing first")
    factor = CORPUS_COST.get(corpus, {}).get(base, 1.0) * (DROPOUT_COST.get(base, 1.0) if drop else 1.0)
    return STEP_S[base][mode] * factor * share


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


def train(corpus: str, candidate: str, steps: int, threads: int, out: Path, seed: int | None = None) -> dict[str, Any]:
    """One `makemore train` process for `steps` steps into `out` (kept: a finished run there is
    reused); its summary.json."""
    if not (out / "summary.json").is_file():
        cmd = [sys.executable, "-m", "makemore", "train", str(corpus_path(corpus)), *options(candidate),
               "--steps", str(steps), "--threads", str(threads), "--samples", "0", "--device", "cpu", "--out", str(out)]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        if out.exists():  # an unfinished run: start again
            shutil.rmtree(out)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads((out / "summary.json").read_text())


def ensemble_metrics(run_dirs: list[Path]) -> dict[str, dict[str, float]]:
    """Exact NLL of the average of the members' probabilities (each member's best checkpoint by
    validation) on the whole val and test splits, and train on the fixed sample the runs use."""
    from makemore.evaluate import evaluate_split
    from makemore.models.ensemble import Ensemble
    from makemore.run import load_run

    loaded = [load_run(d) for d in run_dirs]
    ckpt, _, ds = loaded[0]
    for _, _, other in loaded[1:]:
        if other.vocab.chars != ds.vocab.chars or other.splits["val"].items != ds.splits["val"].items:
            raise SystemExit(f"the members {', '.join(map(str, run_dirs))} were not trained on the same splits")
    model = Ensemble([m for _, m, _ in loaded])
    splits = dict(ds.splits)
    if ckpt.train_config.val_subset:
        splits["train"] = splits["train"].sample(ckpt.train_config.val_subset, seed=0)
    return {name: evaluate_split(model, split, fast=False, stream=io.StringIO()) for name, split in splits.items()}


def run(corpus: str, candidate: str, steps: int, threads: int, runs: Path) -> dict[str, Any]:
    """A candidate's run (an ensemble's members one after another, then the ensemble scored): the exact
    NLL of its best checkpoint on each split."""
    members, _, _ = parse(candidate)
    member = candidate.partition("x")[2] if members > 1 else candidate
    t0 = time.perf_counter()
    if members == 1:
        summary = train(corpus, member, steps, threads, runs / f"{corpus}-{member}-{steps}")
        m, best_step, extra = summary["metrics"], summary["best_step"], {}
    else:
        seeds = [SEED + k for k in range(members)]
        dirs = [runs / f"{corpus}-{member}-{steps}-s{seed}" for seed in seeds]
        summaries = [train(corpus, member, steps, threads, d, seed) for d, seed in zip(dirs, seeds)]
        m = ensemble_metrics(dirs)
        best_step = max(s["best_step"] for s in summaries)
        extra = {"members": [{"seed": seed, "best_step": s["best_step"], "val": s["metrics"]["val"]["nll"],
                              "test": s["metrics"]["test"]["nll"]} for seed, s in zip(seeds, summaries)]}
    return {"corpus": corpus, "candidate": candidate, "steps": steps, "best_step": best_step,
            "train": m["train"]["nll"], "val": m["val"]["nll"], "test": m["test"]["nll"],
            "wall_s": time.perf_counter() - t0, **extra}


def append_result(path: str, record: dict[str, object]) -> None:
    """One JSON line per run, appended, so a long sweep keeps what it has done."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def timing(corpora: list[str], candidates: list[str], threads: int, rounds: int, n_steps: int, beside: bool) -> None:
    """Seconds per step of each candidate on each corpus in one process, alternating, median of
    `rounds` rounds; with `beside`, while another run trains (the small GRU on names.txt, one thread)."""
    import torch

    from makemore.data import load_dataset
    from makemore.options import run_config
    from makemore.run import setup_model
    from makemore.train import Trainer

    torch.set_num_threads(threads)
    trainers = {}
    for corpus in corpora:
        for c in candidates:
            opts = options(c)
            kw = {opts[i][2:].replace("-", "_"): opts[i + 1] for i in range(0, len(opts), 2)}
            model = kw.pop("model")
            kw = {k: (int(v) if v.isdigit() else float(v)) for k, v in kw.items()}
            cfg = run_config(model, input=str(corpus_path(corpus)), steps=10**9, **kw)
            ds = load_dataset(cfg.data, io.StringIO())
            _, net = setup_model(cfg.model, ds, torch.device("cpu"), cfg.train.seed)
            trainers[corpus, c] = Trainer(net, ds, cfg.train, torch.device("cpu"), [], stream=io.StringIO())
    other = None
    with tempfile.TemporaryDirectory() as tmp:
        if beside:
            out = Path(tmp) / "beside"
            cmd = [sys.executable, "-m", "makemore", "train", str(NAMES), *options("gru-s"), "--steps", str(10**8),
                   "--threads", "1", "--samples", "0", "--out", str(out)]
            other = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while '"kind": "train"' not in ((out / "metrics.jsonl").read_text() if (out / "metrics.jsonl").is_file() else ""):
                if other.poll() is not None:
                    raise SystemExit(f"{' '.join(cmd)} stopped before its first logged step")
                time.sleep(0.2)  # it has trained its first logged steps: it is under way
        try:
            times: dict[tuple[str, str], list[float]] = {k: [] for k in trainers}
            for _ in range(rounds):
                for k, tr in trainers.items():
                    for _ in range(5):
                        tr.step()  # warm
                    t0 = time.perf_counter()
                    for _ in range(n_steps):
                        tr.step()
                    times[k].append((time.perf_counter() - t0) / n_steps)
        finally:
            if other is not None:
                other.terminate()
                other.wait()
    where = "beside another run (gru-s on names, one thread)" if beside else "nothing else of the sweep running"
    print(f"seconds per step, {threads} thread(s), {where}; median of {rounds} alternating rounds of {n_steps} steps")
    ref = statistics.median(times[corpora[0], candidates[0]])
    print(f"| candidate | {' | '.join(corpora)} | x {candidates[0]} on {corpora[0]} |\n|---|{'---:|' * (len(corpora) + 1)}")
    for c in candidates:
        own = statistics.median(times[corpora[0], c])
        cells = [f"{statistics.median(times[k, c]) * 1000:.2f} ms (x{statistics.median(times[k, c]) / own:.2f})" for k in corpora]
        print(f"| {c} | {' | '.join(cells)} | {own / ref:.3f} |")
    print(f"(in brackets: against the same candidate on {corpora[0]})")


def table(results: Path) -> None:
    """The results file as a table per corpus and budget, the best by val in bold (train: on a fixed
    sample of 10,000 train items, all of them for smaller corpora)."""
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    def group(r: dict[str, Any]) -> tuple[str, float, int]:  # a budget's runs, or the runs of one fixed step count
        return r["corpus"], r["budget"] or 0.0, 0 if r["budget"] else r["steps"]

    print("| corpus | budget | candidate | steps | best step | train NLL | val NLL | test NLL |\n"
          "|---|---:|---|---:|---:|---:|---:|---:|")
    for key in sorted({group(r) for r in rows}):
        for i, r in enumerate(sorted((r for r in rows if group(r) == key), key=lambda r: r["val"])):
            mark = "**" if i == 0 else ""
            members = parse(r["candidate"])[0]
            steps = f"{members} x {r['steps']:,}" if members > 1 else f"{r['steps']:,}"
            budget = f"{r['budget']:g} s" if r["budget"] else "fixed steps"
            print(f"| {r['corpus']} | {budget} | {mark}{r['candidate']}{mark} | {steps} | {r['best_step']:,} | "
                  f"{r['train']:.4f} | {r['val']:.4f} | {r['test']:.4f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", action="append", default=None, help="names, first, surnames, words (repeatable)")
    p.add_argument("--budget", type=float, action="append", default=None, help="seconds of a quiet 2-core CPU (repeatable)")
    p.add_argument("--candidates", default="gru-s,2xgru-s,mlp",
                   help=f"comma-separated candidates: {', '.join(CANDIDATES)}; +dN: dropout 0.N; KxNAME: an ensemble of K (2x, 3x, ...)")
    p.add_argument("--steps", type=int, default=None, help="train every candidate (each member) this many steps instead of a budget's")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", default="budget_sweep.jsonl", help="JSON lines, one per run (appended)")
    p.add_argument("--runs", default=None, help="keep the run directories here (a finished run there is reused)")
    p.add_argument("--timing", action="store_true", help="measure the candidates' seconds per step instead")
    p.add_argument("--beside", action="store_true", help="with --timing: while another run trains on one thread")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--timing-steps", type=int, default=100)
    p.add_argument("--table", action="store_true", help="print the results file as a table")
    a = p.parse_args(argv)
    candidates = [c for c in a.candidates.split(",") if c]
    for c in candidates:
        if parse(c)[1] not in CANDIDATES:
            raise SystemExit(f"unknown candidate {c!r}; choose from {', '.join(CANDIDATES)} (+dN for dropout 0.N, KxNAME for an ensemble of K)")
    if a.timing:
        timing(a.corpus or ["names"], candidates, a.threads, a.rounds, a.timing_steps, a.beside)
        return 0
    if a.table:
        table(Path(a.results))
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from speed import machine

    print(machine(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(a.runs) if a.runs else Path(tmp)
        for corpus in a.corpus or ["names"]:
            for budget in [None] if a.steps else a.budget or [120.0]:
                for c in candidates:
                    steps = a.steps or max(1, round(budget / step_s(c, corpus)))
                    r = {"budget": budget, **run(corpus, c, steps, a.threads, runs)}
                    append_result(a.results, r)
                    print(f"{corpus:<9} {f'{budget:g} s' if budget else 'fixed':>7}  {c:<14} {steps:>7,} steps  val {r['val']:.4f}  test {r['test']:.4f}  "
                          f"({r['wall_s']:.0f} s wall)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
