"""Steps/s of Karpathy's makemore and of ours on the same machine in the same minutes.

The CPU targets of issue 5 are ratios to makemore's own training loop. Quoting fixed figures
measured at another time is fragile on a shared machine, where the speed of both programs moves
by 30% or more from one minute to the next; so this script alternates them, model by model and
round by round, and reports the ratio of each adjacent pair and the median ratio.

makemore is not part of this project: pass the path of its makemore.py (a checkout of
github.com/karpathy/makemore; it needs `pip install tensorboard`). It runs as its README says,
`python makemore.py -i names.txt -o DIR --type MODEL --max-steps N` (batch 32, its default
four DataLoader workers); its steps/s is 1 / the mean of the step times it prints every ten
steps from step 50 on (its own timing of load + forward + backward + update). Ours is
`bench/speed.py`'s measurement at batch 32, eager, the same model sizes, --threads threads.

    python bench/vs_makemore.py --makemore ~/makemore/makemore.py --rounds 3
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from makemore.config import DataConfig
from makemore.data import load_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import NAMES, machine, measure  # noqa: E402

STEP_TIME = re.compile(r"^step (\d+) \| loss \S+ \| step time ([\d.]+)ms", re.M)


def makemore_rate(script: str, data: str, model: str, steps: int) -> float:
    """makemore's steps/s over its printed step times from step 50 on."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, script, "-i", data, "-o", tmp, "--type", model, "--max-steps", str(steps)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp)
    times = [float(ms) for step, ms in STEP_TIME.findall(proc.stdout) if int(step) >= 50]
    if proc.returncode or not times:
        raise RuntimeError(f"makemore --type {model} failed: {(proc.stderr.strip().splitlines() or ['no step times'])[-1]}")
    return 1000.0 / statistics.fmean(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--makemore", required=True, help="path of Karpathy's makemore.py")
    p.add_argument("--data", default=str(NAMES), help="names.txt (default ../shared/data/names.txt)")
    p.add_argument("--models", default="transformer,mlp,gru,rnn,bow,bigram")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--makemore-steps", type=int, default=350)
    p.add_argument("--steps", type=int, default=150, help="our timed steps per run (3 runs, median)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    if not Path(a.makemore).is_file():
        print(f"error: {a.makemore} does not exist; pass the makemore.py of a checkout of karpathy/makemore", file=sys.stderr)
        return 2
    if not Path(a.data).is_file():
        print(f"error: {a.data} does not exist; pass --data names.txt", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    dataset = load_dataset(DataConfig(input=a.data))
    print(machine())
    print(f"data: {a.data}; batch 32; makemore {a.makemore_steps} steps per run; ours 3 x {a.steps} steps, "
          f"{a.threads} threads; {a.rounds} alternating rounds\n")
    print(f"{'model':<12} {'round':>5} {'makemore':>9} {'ours':>9} {'ratio':>6}", flush=True)
    ratios: dict[str, list[float]] = {m: [] for m in a.models.split(",")}
    for r in range(1, a.rounds + 1):
        for name in ratios:
            theirs = makemore_rate(a.makemore, a.data, name, a.makemore_steps)
            ours = measure(name, 32, "eager", torch.device("cpu"), dataset, a.steps, 3, 10, "float32", "makemore")["steps_per_s"]
            ratios[name].append(ours / theirs)
            print(f"{name:<12} {r:>5} {theirs:>9.1f} {ours:>9.1f} {ours / theirs:>5.2f}x", flush=True)
    print("\nmedian ratio (ours / makemore, same minutes):")
    for name, rs in ratios.items():
        print(f"  {name:<12} {statistics.median(rs):.2f}x  (rounds: {', '.join(f'{x:.2f}' for x in rs)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
