"""Training speed of Karpathy's makemore and of ours on the same machine, in the same minutes.

makemore (github.com/karpathy/makemore) is not part of this project: pass the path of its
makemore.py (it imports tensorboard: `pip install tensorboard`). Its speed is measured two ways:

- as shipped: `python makemore.py -i names.txt -o DIR --type MODEL --max-steps N`, as its README
  says (batch 32, its default four DataLoader workers; OMP_NUM_THREADS=--threads); steps/s is
  1 / the mean of the step times it prints every ten steps from step 50 on (its own timing of
  load + forward + backward + update);
- pre-staged: its own model classes, dataset and AdamW settings, imported from the same file,
  with the whole training split stacked into two tensors once and each batch gathered from them
  by random index (no DataLoader), timed as ours.

Ours is `bench/speed.py`'s measurement (a fresh process, eager, batch 32, the same model sizes,
the default speed options). The speed of a shared machine moves by 30% or
more from one minute to the next, so the three are alternated model by model and round by round
(their order rotating each round), and the ratio of each round's adjacent measurements is
reported, with the median over the rounds. All three run with --threads PyTorch threads. Characters/s counts real characters (each item's
characters and its end token; no padding): steps/s x 32 x the mean item length + 1.

    python bench/vs_makemore.py --makemore ~/makemore/makemore.py --rounds 3

`--ops` counts instead of timing: the ATen operators one training step dispatches (forward,
backward, clipping and update), pre-staged makemore's and ours. Where both are a few dozen
operators on tiny tensors, each operator's fixed cost is the step.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import NAMES, build_trainer, machine, measure_fresh  # noqa: E402

from makemore.config import DataConfig  # noqa: E402
from makemore.data import load_dataset  # noqa: E402

STEP_TIME = re.compile(r"^step (\d+) \| loss \S+ \| step time ([\d.]+)ms", re.M)
BATCH = 32
WAYS = ("shipped", "prestaged", "ours")


def shipped_rate(script: str, data: str, model: str, steps: int, threads: int) -> float:
    """makemore as shipped: steps/s over its printed step times from step 50 on."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(Path(script).resolve()), "-i", str(Path(data).resolve()), "-o", tmp, "--type", model,
               "--max-steps", str(steps)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # PyTorch's intra-op threads, as ours
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp, env=env)
    times = [float(ms) for step, ms in STEP_TIME.findall(proc.stdout) if int(step) >= 50]
    if proc.returncode or not times:
        raise RuntimeError(f"makemore --type {model} failed: {(proc.stderr.strip().splitlines() or ['no step times'])[-1]}")
    return 1000.0 / statistics.fmean(times)


def prestaged_rate(script: str, data: str, model: str, steps: int, threads: int) -> float:
    """makemore's model, data and optimizer with the batches gathered from pre-staged tensors
    (in a fresh process, like ours)."""
    spec = json.dumps({"script": script, "data": data, "model": model, "steps": steps, "threads": threads})
    proc = subprocess.run([sys.executable, __file__, "--_prestaged", spec], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"pre-staged makemore --type {model} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return float(proc.stdout.strip().splitlines()[-1])


def prestaged_step(script: str, data: str, model_name: str) -> Callable[[], torch.Tensor]:
    """One training step of makemore's model, data and AdamW settings on batches gathered from the
    training split stacked into tensors once."""
    loader = importlib.util.spec_from_file_location("karpathy_makemore", script)
    assert loader is not None and loader.loader is not None
    mm = importlib.util.module_from_spec(loader)
    with redirect_stdout(io.StringIO()):  # its prints: dataset and parameter counts
        loader.loader.exec_module(mm)
        torch.manual_seed(3407)
        train, _ = mm.create_datasets(data)
        config = mm.ModelConfig(vocab_size=train.get_vocab_size(), block_size=train.get_output_length(),
                                n_layer=4, n_head=4, n_embd=64, n_embd2=64)
        build = {"transformer": mm.Transformer, "bigram": mm.Bigram, "mlp": mm.MLP, "bow": mm.BoW,
                 "rnn": lambda c: mm.RNN(c, cell_type="rnn"), "gru": lambda c: mm.RNN(c, cell_type="gru")}
        model = build[model_name](config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)
    pairs = [train[i] for i in range(len(train))]
    xs, ys = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])  # (N, T) each, staged once

    def step() -> torch.Tensor:
        idx = torch.randint(xs.size(0), (BATCH,))
        _, loss = model(xs[idx], ys[idx])
        model.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _prestaged_main(spec: str) -> int:
    s = json.loads(spec)
    torch.set_num_threads(s["threads"])
    step = prestaged_step(s["script"], s["data"], s["model"])
    for _ in range(10):
        step()
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(s["steps"]):
            step()
        rates.append(s["steps"] / (time.perf_counter() - t))
    print(statistics.median(rates))
    return 0


class _OpCounter(TorchDispatchMode):
    """Counts the ATen operators dispatched while it is active (forward, backward and update)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_step(step: Callable[[], Any], steps: int = 10) -> float:
    """The mean number of ATen operators one call of `step` dispatches, after five warm-up calls."""
    for _ in range(5):
        step()
    with _OpCounter() as counter:
        for _ in range(steps):
            step()
    return counter.count / steps


def op_counts(script: str, data: str, models: list[str], threads: int) -> None:
    """Prints the ATen operators per training step of pre-staged makemore and of ours."""
    torch.set_num_threads(threads)
    dataset = load_dataset(DataConfig(input=data))
    print(f"{'model':<12} {'makemore pre-staged':>20} {'ours':>6}   ATen operators per training step")
    for name in models:
        trainer = build_trainer(name, BATCH, "eager", torch.device("cpu"), dataset, sizes="makemore")
        theirs, ours = ops_per_step(prestaged_step(script, data, name)), ops_per_step(trainer.step)
        print(f"{name:<12} {theirs:>20.0f} {ours:>6.0f}", flush=True)


def ours_rate(model: str, data: str, steps: int, threads: int) -> float:
    a = argparse.Namespace(steps=steps, repeats=3, warmup=10, dtype="float32", sizes="makemore", data=data,
                           threads=threads, set="", no_fast_paths=False)
    return float(measure_fresh(model, BATCH, "eager", a)["steps_per_s"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--makemore", required=False, help="path of Karpathy's makemore.py")
    p.add_argument("--data", default=str(NAMES), help="names.txt (default ../shared/data/names.txt)")
    p.add_argument("--models", default="transformer,mlp,gru,rnn,bow,bigram")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--makemore-steps", type=int, default=350, help="steps of each as-shipped makemore run")
    p.add_argument("--steps", type=int, default=150, help="timed steps per run, pre-staged makemore and ours (3 runs, median)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads of all three (on a busy machine 1 is fairer)")
    p.add_argument("--ops", action="store_true", help="count the ATen operators of one training step of pre-staged "
                   "makemore and of ours instead of timing (what bounds the ratio of the smallest models)")
    p.add_argument("--_prestaged", default=None, help=argparse.SUPPRESS)  # one measurement, in a child process
    a = p.parse_args(argv)
    if a._prestaged:
        return _prestaged_main(a._prestaged)
    if not a.makemore or not Path(a.makemore).is_file():
        print(f"error: {a.makemore} is not a file; pass --makemore PATH, the makemore.py of a checkout of karpathy/makemore",
              file=sys.stderr)
        return 2
    if not Path(a.data).is_file():
        print(f"error: {a.data} does not exist; pass --data names.txt", file=sys.stderr)
        return 2
    if a.ops:
        op_counts(a.makemore, a.data, a.models.split(","), a.threads)
        return 0
    words = [w.strip() for w in Path(a.data).read_text(encoding="utf-8").splitlines() if w.strip()]
    chars_per_batch = BATCH * statistics.fmean(len(w) + 1 for w in words)  # real characters: the item and its end
    models = a.models.split(",")
    print(machine())
    print(f"data: {a.data}; batch {BATCH} ({chars_per_batch:.0f} real characters on average); makemore as shipped: "
          f"{a.makemore_steps} steps; pre-staged makemore and ours: 3 x {a.steps} steps; {a.threads} thread(s) each; "
          f"{a.rounds} alternating rounds\n")
    print(f"{'model':<12} {'round':>5} {'shipped':>8} {'staged':>8} {'ours':>8}   steps/s    {'ours/shipped':>12} {'ours/staged':>11}",
          flush=True)
    rates: dict[str, dict[str, list[float]]] = {m: {w: [] for w in WAYS} for m in models}
    for r in range(a.rounds):
        for name in models:
            got: dict[str, float] = {}
            for way in WAYS[r % 3:] + WAYS[: r % 3]:  # the order rotates from round to round
                if way == "shipped":
                    got[way] = shipped_rate(a.makemore, a.data, name, a.makemore_steps, a.threads)
                elif way == "prestaged":
                    got[way] = prestaged_rate(a.makemore, a.data, name, a.steps, a.threads)
                else:
                    got[way] = ours_rate(name, a.data, a.steps, a.threads)
            for way in WAYS:
                rates[name][way].append(got[way])
            print(f"{name:<12} {r + 1:>5} {got['shipped']:>8.1f} {got['prestaged']:>8.1f} {got['ours']:>8.1f}"
                  f"   {'':<7}    {got['ours'] / got['shipped']:>11.2f}x {got['ours'] / got['prestaged']:>10.2f}x", flush=True)
    print(f"\nmedians over the rounds (characters/s: real characters, x 1000)")
    print(f"{'model':<12} {'shipped':>9} {'staged':>9} {'ours':>9} {'ours/shipped':>13} {'ours/staged':>12}")
    for name in models:
        rs = rates[name]
        med = {w: statistics.median(rs[w]) for w in WAYS}
        vs_shipped = statistics.median(o / t for o, t in zip(rs["ours"], rs["shipped"]))
        vs_staged = statistics.median(o / t for o, t in zip(rs["ours"], rs["prestaged"]))
        print(f"{name:<12} {med['shipped'] * chars_per_batch / 1000:>8.1f}k {med['prestaged'] * chars_per_batch / 1000:>8.1f}k "
              f"{med['ours'] * chars_per_batch / 1000:>8.1f}k {vs_shipped:>12.2f}x {vs_staged:>11.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
