"""Wall-clock seconds until the validation NLL first reaches a target (default 2.00 nats/char).

Runs `makemore train` as a fresh process per configuration, so start-up, data loading and any
compilation count, and stops it at the first evaluation that reaches the target
(`--stop-at-val-loss`). The default candidates are the documented preset (`--preset fast`)
and a few neighbours; each runs --repeats times and the median is reported with the machine.

    python bench/time_to_quality.py                 # the preset and its neighbours
    python bench/time_to_quality.py --quick         # the preset once, with a 120 s cap
    python bench/time_to_quality.py --config "--preset fast --batch-size 128"
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAMES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "names.txt"
CANDIDATES = [
    "--preset fast",
    "--preset fast --steps 2000",
    "--preset fast --batch-size 64 --steps 3000",
    "--preset fast --batch-size 256 --steps 800 --lr 1.5e-2",
    "--preset fast --model transformer --batch-size 64 --lr 3e-3 --steps 6000",
]


def run_once(config: str, data: str, target: float, cap: float, device: str) -> dict[str, object]:
    """One fresh process; returns wall seconds, the step reached and the val loss at that step."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "makemore", "train", data, *shlex.split(config), "--out", str(out), "--samples", "0",
               "--stop-at-val-loss", str(target), "--device", device, "--time", str(cap)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"config": config, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
        evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        evals = [e for e in evals if e["kind"] == "eval" and "val_loss" in e]
        hit = next((e for e in evals if e["val_loss"] <= target), None)
        return {"config": config, "wall_s": wall, "reached": hit is not None, "step": (hit or evals[-1])["step"],
                "val_loss": (hit or evals[-1])["val_loss"], "train_s": (hit or evals[-1])["elapsed"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", default=None, help="makemore train options to try (repeatable)")
    p.add_argument("--target", type=float, default=2.00, help="validation NLL to reach (nats/char)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cap", type=float, default=300, help="give up after this many seconds of training")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", default=str(NAMES))
    p.add_argument("--quick", action="store_true", help="the preset once, capped at 120 s")
    a = p.parse_args(argv)
    configs = a.config or CANDIDATES
    if a.quick:
        configs, a.repeats, a.cap = configs[:1], 1, 120
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from speed import machine

    print(machine())
    print(f"target: validation NLL <= {a.target} on {a.data}; wall-clock of a fresh `makemore train` process, "
          f"median of {a.repeats}\n")
    print(f"{'configuration':<44} {'wall s':>8} {'(min-max)':>13} {'train s':>8} {'step':>6} {'val':>7}")
    for config in configs:
        runs = [run_once(config, a.data, a.target, a.cap, a.device) for _ in range(a.repeats)]
        bad = [r for r in runs if "error" in r]
        if bad:
            print(f"{config:<44} error: {bad[0]['error']}")
            continue
        ok = [r for r in runs if r["reached"]]
        if len(ok) < len(runs):
            print(f"{config:<44} not reached in {a.cap:.0f} s in {len(runs) - len(ok)} of {len(runs)} runs "
                  f"(best val {min(r['val_loss'] for r in runs):.4f})")
            if not ok:
                continue
        walls = [r["wall_s"] for r in ok]
        med = sorted(ok, key=lambda r: r["wall_s"])[len(ok) // 2]
        print(f"{config:<44} {statistics.median(walls):>8.1f} {f'({min(walls):.0f}-{max(walls):.0f})':>13} "
              f"{med['train_s']:>8.1f} {med['step']:>6} {med['val_loss']:>7.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
