"""Same-minute A/B of training speed between two checkouts of makemore (e.g. before and after a change).

Runs each checkout's own `bench/speed.py` (its own code, through PYTHONPATH=CHECKOUT/src) one model
at a time, alternating A and B within each round and swapping which goes first every round, so
that both see the same minutes of a shared machine. Prints every measurement, then per model the
median steps/s of each side and the median of the per-round ratios B/A.

`--clock cpu` times the steps in CPU seconds of the measuring process instead of wall seconds (the
measuring processes read `time.perf_counter` as `time.process_time`): on a machine shared with other
work, a process's own CPU time moves much less from minute to minute than the wall clock, which also
counts the time others hold the cores.

    git worktree add /tmp/base <commit>
    python bench/ab.py --a /tmp/base --b . --rounds 5 --models transformer,gru,mlp
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

NAMES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "names.txt"


def rate(checkout: Path, model: str, a: argparse.Namespace) -> float:
    """Steps/s of `model` measured by `checkout`'s bench/speed.py (eager, one batch size)."""
    cmd = [sys.executable, str(checkout / "bench" / "speed.py"), "--models", model, "--modes", "eager",
           "--batches", str(a.batch), "--steps", str(a.steps), "--repeats", str(a.repeats), "--data", a.data,
           "--sizes", a.sizes] + (["--threads", str(a.threads)] if a.threads else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*a.clock_path, str(checkout / "src")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    row = next((line.split() for line in proc.stdout.splitlines() if line.startswith(model + " ")), None)
    if proc.returncode or row is None or len(row) < 4:
        raise RuntimeError(f"{checkout}: {model} failed: {(proc.stderr.strip().splitlines() or ['no row'])[-1]}")
    return float(row[3])  # model, mode, batch, steps/s


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="checkout A (the reference, e.g. the commit before a change)")
    p.add_argument("--b", default=".", help="checkout B (default: this one)")
    p.add_argument("--models", default="transformer,mlp,wavenet,gru,rnn,lstm,bow,bigram")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=100, help="timed steps per run (speed.py --steps)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (speed.py --repeats)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sizes", default="makemore", choices=["makemore", "defaults"])
    p.add_argument("--data", default=str(NAMES))
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="time steps in wall seconds or the process's CPU seconds")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        a.clock_path = []
        if a.clock == "cpu":  # Python imports sitecustomize at start-up, before speed.py reads the clock
            (Path(tmp) / "sitecustomize.py").write_text("import time\n\ntime.perf_counter = time.process_time\n")
            a.clock_path = [tmp]
        return compare(a)


def compare(a: argparse.Namespace) -> int:
    sides = {"A": Path(a.a).resolve(), "B": Path(a.b).resolve()}
    for side, path in sides.items():
        if not (path / "bench" / "speed.py").is_file():
            print(f"error: {path} has no bench/speed.py; pass the root of a makemore checkout as --{side.lower()}", file=sys.stderr)
            return 2
    models = a.models.split(",")
    print(f"A = {sides['A']}\nB = {sides['B']}\nbatch {a.batch}, eager, {a.repeats} x {a.steps} steps per measurement, "
          f"{a.threads} thread(s), {a.rounds} rounds, sizes {a.sizes}, {a.clock} clock\n")
    print(f"{'model':<12} {'round':>5} {'A steps/s':>10} {'B steps/s':>10} {'B/A':>6}", flush=True)
    got: dict[str, dict[str, list[float]]] = {m: {"A": [], "B": []} for m in models}
    for r in range(a.rounds):
        for model in models:
            for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
                got[model][side].append(rate(sides[side], model, a))
            ra, rb = got[model]["A"][-1], got[model]["B"][-1]
            print(f"{model:<12} {r + 1:>5} {ra:>10.1f} {rb:>10.1f} {rb / ra:>6.3f}", flush=True)
    print(f"\n{'model':<12} {'A median':>10} {'B median':>10} {'median B/A':>11}  (per-round B/A)")
    for model in models:
        ra, rb = got[model]["A"], got[model]["B"]
        ratios = [y / x for x, y in zip(ra, rb)]
        print(f"{model:<12} {statistics.median(ra):>10.1f} {statistics.median(rb):>10.1f} {statistics.median(ratios):>11.3f}"
              f"  ({', '.join(f'{x:.2f}' for x in ratios)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
