"""What one recording step of the Monitor costs, above a plain training step, on the CPU.

    python bench/recording_cost.py                          # this code: 5 runs
    git worktree add /tmp/base <commit>                     # another version of makemore, then:
    python bench/recording_cost.py --baseline /tmp/base     # this code against it, run by run

A run trains the lecture's MLP (the model of bench/integrations_overhead.py: embedding, linear,
BatchNorm, tanh, linear, batch 32, Adam) for `--steps` steps under a Monitor that records every
`--every` steps, and times each step in CPU seconds (time.process_time, one torch thread). The
cost of a recording is the median time of the recording steps less the median time of the other
steps: a median over dozens of recordings, so that a busy machine's spikes do not enter it. With
`--baseline SRC` each run is a fresh process, alternating between this code and the makemore in
SRC, and the table gives both and their ratio, round by round (median and range).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from integrations_overhead import BATCH, LR, lecture_mlp, name_contexts  # noqa: E402

from makemore.diagnostics import Monitor  # noqa: E402


def recording_cost(steps: int, every: int) -> tuple[float, float]:
    """(median CPU seconds of a plain step, median extra CPU seconds of a recording step)."""
    x, y, vocab = name_contexts()
    model = lecture_mlp(vocab)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    mon = Monitor(model, opt, every=every)
    plain, recording = [], []
    for step in range(steps):
        i = (step * BATCH) % (len(x) - BATCH)
        t0 = time.process_time()
        loss = F.cross_entropy(model(x[i : i + BATCH]), y[i : i + BATCH])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        mon.step(loss)
        (recording if step % every == 0 else plain).append(time.process_time() - t0)
    mon.close()
    base = statistics.median(plain)
    return base, statistics.median(recording[1:]) - base  # the first recording also warms up


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--every", type=int, default=20, help="steps between recordings")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--baseline", type=Path, default=None, metavar="SRC", help="a checkout of makemore to compare with")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.one:
        print(*recording_cost(a.steps, a.every))
        return
    if a.baseline is not None and not (a.baseline / "src" / "makemore").is_dir():
        sys.exit(f"--baseline {a.baseline}: not a checkout of makemore (no src/makemore there)")
    print(f"# a recording step's CPU cost above a plain step: lecture MLP, {a.steps} steps recording every {a.every}, "
          f"{a.runs} runs" + (f", this code and {a.baseline} alternating, each run a fresh process" if a.baseline else ""))
    print(f"# {platform.platform()}, python {platform.python_version()}, torch {torch.__version__}, 1 thread; "
          f"load average {os.getloadavg()[0]:.1f} at the start\n")
    here = Path(__file__).resolve()
    versions = {"this code": here.parent.parent}
    if a.baseline is not None:
        versions = {"baseline": a.baseline, **versions}
    got: dict[str, list[tuple[float, float]]] = {v: [] for v in versions}
    for r in range(a.runs):
        for v in list(versions)[r % len(versions) :] + list(versions)[: r % len(versions)]:
            if a.baseline is None:
                got[v].append(recording_cost(a.steps, a.every))
                continue
            cmd = [sys.executable, str(here), "--one", "--steps", str(a.steps), "--every", str(a.every)]
            out = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(versions[v] / "src")}, capture_output=True,
                                 text=True, check=True).stdout.split()
            got[v].append((float(out[0]), float(out[1])))
    print("| code | plain step (CPU ms) | a recording step's extra cost (CPU ms) | in plain steps |")
    print("|---|---|---|---|")
    for v, runs in got.items():
        step, extra = statistics.median(t[0] for t in runs), statistics.median(t[1] for t in runs)
        print(f"| {v} | {step * 1e3:.3f} | {extra * 1e3:.3f} | {extra / step:.1f} |")
    if a.baseline is not None:
        ratios = sorted(n[1] / b[1] for b, n in zip(got["baseline"], got["this code"]))
        print(f"\nthis code's recording cost / the baseline's, run by run: median {statistics.median(ratios):.3f} "
              f"(range {ratios[0]:.3f} to {ratios[-1]:.3f})")
    print(f"\n# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
