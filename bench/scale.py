"""How a `makemore train` run's cost grows with the number of lines in its input file.

For each input size and source, runs `python -m makemore train FILE` twice in a fresh process,
first with an empty encoding cache and then with the cache the first run left, and reports:

    start-up     seconds from launching the process to the end of the first training step
                 (Python and PyTorch imports, reading or memory-mapping the data, building the model);
                 "- imports": less the time that process spent importing modules (Python's
                 -X importtime), which no cache can shorten and a busy machine stretches
    steps/s      optimizer steps per second of training time (summary.json)
    periodic     seconds of the periodic validations (a fixed sample of the val split) and their
                 checkpoints, all of them together
    final eval   seconds of the exact end-of-run evaluation (val and test whole, train on a sample)
    exit         seconds from the final figures to the end of the process
    outside      share of the process's wall-clock time spent outside training steps
    peak RSS     the process's peak resident memory (getrusage of the child)

Before the table, `torch` and `torch._dynamo` are imported in fresh processes (alternating, the
median of three each): what every run pays to import PyTorch, and what a run would pay on top if
anything on its path imported TorchDynamo (makemore's CPU path does not).

Sources: `synthetic` (seeded random lowercase lines of 3-12 letters) and `words`, the English
word lists web2 + gcide from the `english-words` PyPI package (a benchmark-only dependency:
`pip install english-words`), repeated in a seeded order up to the wanted size.

    .venv/bin/python bench/scale.py --threads 1                        # 10k..1M, both sources, 500 steps
    .venv/bin/python bench/scale.py --sizes 10M --sources synthetic --steps 200 --first-only --threads 1
    .venv/bin/python bench/scale.py --sizes 1M --sources words --steps 0 --threads 1
                                                                       # makemore's default options

Times depend on the machine and on what else runs on it; the table prints the load average.
On a machine busier than it has cores, several PyTorch threads per process fight over the
cores (bench/threads.py), hence --threads 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}


def synthetic_lines(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 13, n)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)[rng.integers(0, 26, int(lengths.sum()))]
    text = letters.tobytes().decode("ascii")
    ends = np.cumsum(lengths)
    return [text[e - k : e] for e, k in zip(ends.tolist(), lengths.tolist())]


def word_lines(n: int, seed: int = 0) -> list[str]:
    try:
        from english_words import get_english_words_set
    except ImportError:
        sys.exit("the words source needs the english-words package: pip install english-words")
    words = sorted(get_english_words_set(["web2", "gcide"], lower=False, alpha=False))
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        out += [words[i] for i in rng.permutation(len(words))[: n - len(out)].tolist()]
    return out


def write_input(path: Path, source: str, n: int) -> None:
    lines = synthetic_lines(n) if source == "synthetic" else word_lines(n)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_once(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run `cmd`, timestamping its stderr lines; wall-clock marks and the child's peak RSS."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    marks: dict[str, float] = {}
    lines: list[str] = []

    imports = 0.0  # seconds of module imports before the first step (python -X importtime)

    def read() -> None:
        nonlocal imports
        assert proc.stderr is not None
        for line in proc.stderr:
            now = time.perf_counter() - t0
            if line.startswith("import time:"):
                _, cumulative, name = line[len("import time:"):].split("|")
                if "first_step" not in marks and cumulative.strip().isdigit() and not name.startswith("  "):
                    imports += int(cumulative) / 1e6  # a top-level import (nested ones are inside it)
                continue
            lines.append(line)
            if line.startswith("step-0 loss"):
                marks.setdefault("first_step", now)
            if re.match(r"step \d+/\d+ \| loss", line.strip()):
                marks["last_log"] = now
            if re.match(r"step \d+ \| val loss", line.strip()):
                # the periodic evaluation ran between the step's log line and this one
                marks["periodic"] = marks.get("periodic", 0.0) + now - marks.get("last_log", now)
                marks["last_eval_end"] = now
            if line.startswith(("train ", "val ", "test ")) and "last_eval_end" in marks:
                marks["final_eval_end"] = now

    reader = threading.Thread(target=read)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{''.join(lines[-20:])}")
    return {**marks, "imports": imports, "wall": wall, "exit": wall - marks["final_eval_end"], "peak_rss_mb": usage.ru_maxrss / 1024}


def import_seconds(module: str) -> float:
    """Seconds to import `module` in a fresh process, after `import torch` (unless it is torch)."""
    pre = "" if module == "torch" else "import torch; "
    code = f"{pre}import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def measure(source: str, n: int, work: Path, steps: int, model: str | None, threads: int | None,
            phases: tuple[str, ...] = ("first", "cached"), src: str | None = None) -> dict[str, object]:
    """One row: the runs of `phases` on `n` lines of `source`, makemore imported from `src` if given."""
    data = work / f"{source}-{n}.txt"
    if not data.exists():
        write_input(data, source, n)
    tag = "baseline" if src else "this"
    cache = work / f"cache-{source}-{n}-{tag}"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "MAKEMORE_CACHE": str(cache)}
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    row: dict[str, object] = {"code": tag, "source": source, "lines": n, "mbytes": data.stat().st_size / 1e6}
    for phase in phases:
        out = work / f"run-{source}-{n}-{phase}-{tag}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-X", "importtime", "-m", "makemore", "train", str(data), "--out", str(out), "--samples", "0",
               "--device", "cpu"]
        if model:
            cmd += ["--model", model]
        if steps:
            cmd += ["--steps", str(steps)]
        if threads:
            cmd += ["--threads", str(threads)]
        r = run_once(cmd, env)
        summary = json.loads((out / "summary.json").read_text())
        row[f"{phase}_startup"] = r["first_step"]
        row[f"{phase}_imports"] = r["imports"]
        row[f"{phase}_rss_mb"] = r["peak_rss_mb"]
        if phase == phases[-1]:
            row["steps_per_s"] = summary["steps"] / summary["train_seconds"]
            row["final_eval"] = r["final_eval_end"] - r["last_eval_end"]
            row["periodic"] = r.get("periodic", 0.0)
            row["exit"] = r["exit"]
            row["outside"] = 1 - summary["train_seconds"] / r["wall"]
            row["wall"] = r["wall"]
        shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10k,100k,1M", help=f"comma-separated, of {', '.join(SIZES)}")
    p.add_argument("--sources", default="synthetic,words", help="synthetic, words or both")
    p.add_argument("--steps", type=int, default=500, help="training steps per run (0: makemore's default)")
    p.add_argument("--model", default=None, help="--model for the runs (default: makemore's)")
    p.add_argument("--threads", type=int, default=None, help="--threads for the runs (default: PyTorch's choice)")
    p.add_argument("--first-only", action="store_true", help="only the run with an empty cache (the biggest inputs)")
    p.add_argument("--work", default=None, help="folder for the input files (default: a temporary one)")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--baseline", default=None, metavar="SRC",
                   help="also measure makemore imported from SRC (the src/ folder of another commit, e.g. from "
                        "`git archive REV src | tar -x -C DIR`), each row right before this code's")
    a = p.parse_args()
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="makemore-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    import torch

    print(f"# {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    times = {m: [] for m in ("torch", "torch._dynamo")}
    for _ in range(3):
        for m in times:
            times[m].append(import_seconds(m))
    print(f"# import torch {sorted(times['torch'])[1]:.2f} s; import torch._dynamo after it {sorted(times['torch._dynamo'])[1]:.2f} s "
          f"(median of 3, alternating)")
    print(f"# makemore train FILE {'--model ' + a.model + ' ' if a.model else ''}{'--steps ' + str(a.steps) if a.steps else '(default steps)'} "
          f"{'--threads ' + str(a.threads) + ' ' if a.threads else ''}--samples 0 --device cpu; first run with an empty cache, then cached")
    head = (f"{'code':<9}{'source':<10} {'lines':>10} {'MB':>6} {'start-up s':>11} {'- imports':>9} {'cached s':>9} {'- imports':>9} {'steps/s':>8} "
            f"{'periodic s':>11} {'final eval s':>13} {'exit s':>7} {'outside %':>10} {'peak RSS MB':>12} {'cached RSS':>11}")
    print(head)
    rows = []
    for size in a.sizes.split(","):
        for source in a.sources.split(","):
            for src in ([a.baseline] if a.baseline else []) + [None]:
                r = measure(source, SIZES[size], work, a.steps, a.model, a.threads, ("first",) if a.first_only else ("first", "cached"), src)
                rows.append(r)
                cached = (f"{r['cached_startup']:>9.1f} {r['cached_startup'] - r['cached_imports']:>9.1f}" if "cached_startup" in r
                          else f"{'-':>9} {'-':>9}")
                print(f"{r['code']:<9}{source:<10} {r['lines']:>10,} {r['mbytes']:>6.1f} {r['first_startup']:>11.1f} "
                      f"{r['first_startup'] - r['first_imports']:>9.1f} {cached} "
                      f"{r['steps_per_s']:>8.1f} {r['periodic']:>11.1f} {r['final_eval']:>13.1f} {r['exit']:>7.1f} {100 * r['outside']:>10.0f} "
                      f"{r['first_rss_mb']:>12.0f} {r.get('cached_rss_mb', float('nan')):>11.0f}", flush=True)
    print(f"# load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
