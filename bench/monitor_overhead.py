"""What the training-health monitor costs: training with and without it, on the CPU.

    python bench/monitor_overhead.py                  # mlp and transformer, 1000 steps, 5 runs each
    python bench/monitor_overhead.py --quick          # 150 steps, 3 runs: shows that it works

Each run trains a fresh model with the same seed through `Trainer` (the loop `makemore train`
uses), with no callbacks or with the `MonitorCallback` that `makemore train --monitor` adds
(the default interval, 250 steps, so step 0, every 250th step and the last step are recorded
fully). Evaluation is pushed past the end so only training is timed. Runs alternate between
the two setups; the table gives the median seconds of each and their ratio. The target is a
ratio of at most 1.05.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from makemore.config import DataConfig, TrainConfig
from makemore.data import load_dataset
from makemore.doctor import MonitorCallback
from makemore.models import create_model, get_spec, model_config
from makemore.train import Trainer


def train_seconds(name: str, dataset, steps: int, every: int | None, seed: int) -> float:
    cfg = model_config(name, vocab_size=dataset.vocab.size, block_size=dataset.block_size)
    lr = getattr(get_spec(name), "train", {}).get("lr", TrainConfig.lr)
    tcfg = TrainConfig(steps=steps, lr=lr, eval_interval=steps + 1, log_interval=steps + 1, seed=seed, device="cpu")
    torch.manual_seed(seed)
    model = create_model(cfg)
    trainer = Trainer(model, dataset, tcfg, torch.device("cpu"), monitor=MonitorCallback(every) if every else None)
    trainer.evaluate = lambda splits=("val",): {}  # time training only (the final evaluation is the same in both)
    t0 = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default=None, help="file of lines (default: the built-in corpus)")
    p.add_argument("--models", default="mlp,transformer")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--runs", type=int, default=5, help="runs of each setup; the median is reported")
    p.add_argument("--every", type=int, default=MonitorCallback().every, help="the monitor's recording interval")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="150 steps, 3 runs")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    steps, runs = (150, 3) if a.quick else (a.steps, a.runs)
    dataset = load_dataset(DataConfig(input=a.input))
    print(f"# monitor overhead: {steps} steps, median of {runs} runs, recording every {a.every} steps, "
          f"{'built-in corpus' if not a.input else a.input}")
    print(f"# {platform.platform()}, {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    print("| model | without monitor (s) | with monitor (s) | ratio |")
    print("|---|---|---|---|")
    for name in a.models.split(","):
        train_seconds(name, dataset, min(steps, 20), None, 0)  # warm-up: allocator, kernels
        plain, watched = [], []
        for r in range(runs):
            order = [(None, plain), (a.every, watched)] if r % 2 == 0 else [(a.every, watched), (None, plain)]
            for every, acc in order:
                acc.append(train_seconds(name, dataset, steps, every, seed=r))
        p_med, w_med = statistics.median(plain), statistics.median(watched)
        print(f"| {name} | {p_med:.2f} | {w_med:.2f} | {w_med / p_med:.3f} |")


if __name__ == "__main__":
    main()
