"""Training steps/s at 1 thread vs all cores, on an idle machine and with one core kept busy.

A busy core is a process spinning in a Python loop (as another user's job would). Each round
measures every (threads, load) pair once, in alternating order, after warm-up steps; the table
shows the median over the rounds. This is what `makemore train`'s "--threads 1" hint and the
default thread count rest on.

    python bench/threads.py                       # transformer and mlp, 3 rounds
    python bench/threads.py --models gru --rounds 5 --steps 60
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import platform
import statistics
import time

import torch

from makemore.config import DataConfig, TrainConfig
from makemore.data import load_dataset
from makemore.models import create_model, get_spec, model_config
from makemore.train import Trainer


def spin() -> None:
    while True:
        pass


def steps_per_s(name: str, threads: int, steps: int, warmup: int) -> float:
    torch.set_num_threads(threads)
    dataset = load_dataset(DataConfig())
    torch.manual_seed(0)
    model = create_model(model_config(name, vocab_size=dataset.vocab.size, block_size=dataset.block_size))
    train = dict(get_spec(name).train)
    cfg = TrainConfig(steps=warmup, batch_size=train.get("batch_size", TrainConfig.batch_size),
                      eval_interval=10**9, log_interval=10**9, device="cpu")
    Trainer(model, dataset, cfg, torch.device("cpu"), []).fit()  # warm-up
    trainer = Trainer(model, dataset, dataclasses.replace(cfg, steps=steps), torch.device("cpu"), [])
    t = time.perf_counter()
    trainer.fit()
    return steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="transformer,mlp")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    print(f"machine: {platform.machine()}, {cores} cores, load average {os.getloadavg()[0]:.1f} at start; "
          f"torch {torch.__version__}")
    pairs = [(t, busy) for busy in (False, True) for t in sorted({1, cores})]
    results: dict[tuple[str, int, bool], list[float]] = {}
    for r in range(a.rounds):
        order = pairs if r % 2 == 0 else pairs[::-1]
        for name in a.models.split(","):
            for threads, busy in order:
                spinner = mp.Process(target=spin, daemon=True) if busy else None
                if spinner:
                    spinner.start()
                try:
                    v = steps_per_s(name, threads, a.steps, a.warmup)
                finally:
                    if spinner:
                        spinner.terminate()
                        spinner.join()
                results.setdefault((name, threads, busy), []).append(v)
    print(f"\nsteps/s, median of {a.rounds} rounds ({a.steps} steps each after {a.warmup} warm-up)")
    print(f"{'model':<12} {'threads':>7} {'idle':>8} {'1 core busy':>12}")
    for name in a.models.split(","):
        for threads in sorted({1, cores}):
            idle = statistics.median(results[(name, threads, False)])
            busy = statistics.median(results[(name, threads, True)])
            print(f"{name:<12} {threads:>7} {idle:>8.1f} {busy:>12.1f}")


if __name__ == "__main__":
    main()
