"""Train every model of the zoo for a fixed wall-clock budget and print the table the README quotes.

    python bench/zoo.py --input ../shared/data/names.txt --time 300
    python bench/zoo.py --input ../shared/data/names.txt --time 300 --jobs 2 --threads 1   # two at a time

Each model runs as its own `makemore train` process with its default sizes and the training
recipe below (the same one `makemore train --model NAME` uses unless told otherwise, except
where RECIPES says), so the figures are what a user gets from the command line. Test and
validation NLL are exact (whole split, nats per character), read from the run's summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

# Per-model training options on top of `makemore train` defaults (documented in the README).
RECIPES: dict[str, list[str]] = {
    "counts": ["--steps", "1"],  # fitted in closed form: the step count is not used
    "bigram": ["--lr", "0.1", "--batch-size", "64"],
    "mlp": [],
    "wavenet": [],
    "rnn": [],
    "gru": [],
    "lstm": [],
    "bow": [],
    "transformer": [],
}


def train_one(name: str, args: argparse.Namespace, root: Path) -> dict:
    out = root / name
    cmd = [sys.executable, "-m", "makemore", "train", args.input, "--model", name, "--out", str(out),
           "--samples", "0", "--device", "cpu", "--seed", str(args.seed)]
    recipe = RECIPES.get(name, [])
    if "--steps" not in recipe:
        cmd += ["--time", str(args.time), "--schedule", "cosine"] if args.steps is None else ["--steps", str(args.steps)]
    cmd += recipe
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"model": name, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    s = json.loads((out / "summary.json").read_text())
    return {
        "model": name, "params": s["n_params"], "steps": s["steps"], "train_s": s["train_seconds"], "wall_s": wall,
        "val": s["metrics"]["val"]["nll"], "test": s["metrics"]["test"]["nll"], "recipe": " ".join(recipe),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "names.txt"))
    p.add_argument("--time", type=float, default=300, help="seconds of training per model")
    p.add_argument("--steps", type=int, default=None, help="train a fixed number of steps instead of --time")
    p.add_argument("--models", default=",".join(RECIPES), help="comma-separated model names")
    p.add_argument("--jobs", type=int, default=1, help="models trained at the same time")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads per model")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", default=None, help="keep the run directories here (default: a temp dir)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args()
    names = [n for n in args.models.split(",") if n]
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="zoo-"))
    root.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda n: train_one(n, args, root), names))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    budget = f"{args.steps} steps" if args.steps else f"{args.time:.0f} s"
    print(f"# zoo on {args.input}: {budget} per model, {args.jobs} at a time, {args.threads} thread(s) each")
    print(f"# {cpu}, {os.cpu_count()} cores; torch {torch.__version__}; python {platform.python_version()}")
    print("| model | parameters | steps | train s | val NLL | test NLL | recipe |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | error: {r['error']} | | | | | |")
            continue
        print(f"| {r['model']} | {r['params']:,} | {r['steps']:,} | {r['train_s']:.0f} | {r['val']:.4f} | {r['test']:.4f} | {r['recipe'] or 'defaults'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
