"""What the training-health monitor costs: training with and without it, on the CPU.

    python bench/monitor_overhead.py --threads 1      # mlp and transformer, 1000 steps, 5 runs each
    python bench/monitor_overhead.py --quick          # 150 steps, 3 runs: shows that it works

Each run trains a fresh model with the same seed through `Trainer` (the loop `makemore train`
uses), with no callbacks or with the `MonitorCallback` that `makemore train --monitor` adds
(the default interval, 250 steps, so step 0, every 250th step and the last step are recorded
fully). Periodic evaluation is pushed past the end, and the evaluation at the end of `fit` scores
a 32-item sample of the validation split, the same in both setups. Runs alternate between the two
setups. The figure is the ratio of each pair of neighbouring runs (with over without), median and
range over the pairs: on a shared machine the load drifts between pairs more than within one.
Times are the process's CPU seconds (one torch thread: other processes' work does not enter
them); wall-clock seconds are shown beside. The target is a ratio of at most 1.05.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from makemore.config import DataConfig, TrainConfig
from makemore.data import load_dataset
from makemore.doctor import MonitorCallback
from makemore.models import create_model, get_spec, model_config
from makemore.train import Trainer


def train_seconds(name: str, dataset, steps: int, every: int | None, seed: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of `Trainer.fit` for `steps` steps, with the monitor or without."""
    cfg = model_config(name, vocab_size=dataset.vocab.size, block_size=dataset.block_size)
    lr = getattr(get_spec(name), "train", {}).get("lr", TrainConfig.lr)
    tcfg = TrainConfig(steps=steps, lr=lr, eval_interval=steps + 1, log_interval=steps + 1, val_subset=32, seed=seed,
                       device="cpu")
    torch.manual_seed(seed)
    model = create_model(cfg)
    trainer = Trainer(model, dataset, tcfg, torch.device("cpu"), monitor=MonitorCallback(every) if every else None)
    c0, t0 = time.process_time(), time.perf_counter()
    trainer.fit()
    return time.process_time() - c0, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default=None, help="file of lines (default: the built-in corpus)")
    p.add_argument("--models", default="mlp,transformer")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--runs", type=int, default=5, help="runs of each setup, alternating")
    p.add_argument("--every", type=int, default=MonitorCallback().every, help="the monitor's recording interval")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="150 steps, 3 runs")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    steps, runs = (150, 3) if a.quick else (a.steps, a.runs)
    dataset = load_dataset(DataConfig(input=a.input))
    print(f"# monitor overhead: {steps} steps, {runs} runs of each setup alternating, recording every {a.every} steps, "
          f"{'built-in corpus' if not a.input else a.input}")
    print(f"# {platform.platform()}, {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); load average {os.getloadavg()[0]:.1f} at the start\n")
    print("| model | without monitor (CPU s) | with monitor (CPU s) | ratio: median of pairs | range of pairs | wall-clock ratio |")
    print("|---|---|---|---|---|---|")
    for name in a.models.split(","):
        for every in (None, a.every):  # warm-up: allocator, kernels, the monitor's first recording
            train_seconds(name, dataset, min(steps, 20), every, 0)
        plain, watched = [], []
        for r in range(runs):
            order = [(None, plain), (a.every, watched)] if r % 2 == 0 else [(a.every, watched), (None, plain)]
            for every, acc in order:
                acc.append(train_seconds(name, dataset, steps, every, seed=r))
        pairs = [w[0] / p[0] for p, w in zip(plain, watched)]
        wall = statistics.median(w[1] for w in watched) / statistics.median(p[1] for p in plain)
        print(f"| {name} | {statistics.median(p[0] for p in plain):.2f} | {statistics.median(w[0] for w in watched):.2f} | "
              f"{statistics.median(pairs):.3f} | {min(pairs):.3f} to {max(pairs):.3f} | {wall:.3f} |", flush=True)
    print(f"\n# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
