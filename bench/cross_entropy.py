"""Benchmark: time and peak memory of three cross-entropies, forward + backward.

    naive   makemore.functional.cross_entropy_naive: exp, normalize, pick, log, mean (the lecture's
            first version; numerically unsafe, here fed unit-scale logits so it stays finite)
    ours    makemore.functional.cross_entropy: max-subtracted log-sum-exp, analytical backward
    torch   torch.nn.functional.cross_entropy (fused log_softmax + nll_loss)

For every (N, V) shape, from makemore's own (N=512 rows of a 32 x 16 batch, V=27 characters)
up to a word-piece-sized (N=65536, V=32000), on the CPU and on CUDA when PyTorch sees a GPU.
Times are medians of several runs; "peak MiB" is the memory a forward + backward needs beyond
the logits and targets themselves (CPU: growth of the peak resident set, VmHWM, of a fresh process;
CUDA: torch.cuda.max_memory_allocated). Shapes that would not fit in memory are skipped and
say so.

    python bench/cross_entropy.py            # full table (minutes; large shapes need ~30 GB)
    python bench/cross_entropy.py --quick    # three small shapes, a few seconds
    python bench/cross_entropy.py --device cuda
    python bench/cross_entropy.py --threads 1    # fewer threads than cores on a busy machine

A second table times one AdamW training step of the mlp and transformer models at makemore's
size with each loss; it decides the default of `--loss` (ModelConfig.loss).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from makemore.functional import cross_entropy, cross_entropy_naive

IGNORE = -1
IMPLS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "naive": lambda x, t: cross_entropy_naive(x, t, ignore_index=IGNORE),
    "ours": lambda x, t: cross_entropy(x, t, ignore_index=IGNORE),
    "torch": lambda x, t: F.cross_entropy(x, t, ignore_index=IGNORE),
}
FULL_SHAPES = [(512, 27), (4096, 27), (65536, 27), (4096, 1024), (16384, 8192), (8192, 32000), (65536, 32000)]
QUICK_SHAPES = [(512, 27), (4096, 27), (4096, 1024)]
# rough working set in units of one (N, V) float32 tensor beyond the inputs, to skip what cannot fit
WORKING_SET = {"naive": 6, "ours": 3, "torch": 3}


def make_inputs(n: int, v: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(seed)
    logits = torch.randn(n, v, generator=g, device=device).requires_grad_()  # (N, V)
    targets = torch.randint(0, v, (n,), generator=g, device=device)  # (N,)
    targets[::10] = IGNORE  # some padding, as in makemore's batches
    return logits, targets


def fwd_bwd(impl: str, logits: torch.Tensor, targets: torch.Tensor) -> None:
    logits.grad = None
    IMPLS[impl](logits, targets).backward()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_ms(fn: Callable[[], None], device: str, budget_s: float, min_runs: int = 3, max_runs: int = 200) -> float:
    """Median wall time of `fn` in milliseconds, after two warm-up calls."""
    for _ in range(2):
        fn()
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def available_bytes(device: str) -> int:
    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    return info.get("MemAvailable", 0)


def peak_extra_mib(impl: str, n: int, v: int, device: str) -> float:
    """Memory of one forward + backward beyond its inputs, in MiB."""
    if device == "cuda":
        logits, targets = make_inputs(n, v, device)
        fwd_bwd(impl, logits, targets)  # allocator warm-up
        logits.grad = None
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fwd_bwd(impl, logits, targets)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    # CPU: a fresh process, so the peak resident set belongs to this one computation
    out = subprocess.run([sys.executable, __file__, "--_peak", impl, str(n), str(v)], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"peak-memory process failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return float(out.stdout.strip())


def _peak_child(impl: str, n: int, v: int) -> None:
    torch.set_num_threads(1)  # thread pools would add their own stacks to the resident set
    x, t = make_inputs(4, 3, "cpu")
    fwd_bwd(impl, x, t)  # start the autograd engine on something tiny
    logits, targets = make_inputs(n, v, "cpu")
    # reset the kernel's peak-RSS mark (VmHWM) to the current RSS: importing torch peaked higher
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _proc_status_kib("VmRSS")
    fwd_bwd(impl, logits, targets)
    print((_proc_status_kib("VmHWM") - before) / 1024)


def _proc_status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def machine(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    parts = [f"CPU {cpu} ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"]
    if device == "cuda":
        parts.append(f"GPU {torch.cuda.get_device_name()}")
    parts.append(f"Python {platform.python_version()}, torch {torch.__version__}")
    return "; ".join(parts)


def run(device: str, shapes: list[tuple[int, int]], budget_s: float, memory: bool) -> list[dict]:
    rows = []
    for n, v in shapes:
        need = n * v * 4
        logits, targets = None, None
        for impl in IMPLS:
            row: dict = {"device": device, "N": n, "V": v, "impl": impl}
            if need * (WORKING_SET[impl] + 2) > 0.9 * available_bytes(device):
                row["skipped"] = f"needs ~{need * (WORKING_SET[impl] + 2) / 2**30:.0f} GiB"
                rows.append(row)
                continue
            if logits is None:
                logits, targets = make_inputs(n, v, device)
            try:
                row["ms"] = time_ms(lambda: fwd_bwd(impl, logits, targets), device, budget_s)
                if memory:
                    row["peak_mib"] = peak_extra_mib(impl, n, v, device)
            except torch.OutOfMemoryError:
                row["skipped"] = "out of memory"
            logits.grad = None
            if device == "cuda":
                torch.cuda.empty_cache()
            rows.append(row)
        del logits, targets
    return rows


def train_step_rows(device: str, budget_s: float) -> list[dict]:
    """One AdamW step of makemore models (32 items x 16 positions, V=27) with each loss (`--loss`)."""
    from makemore.models import create_model, model_config

    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randint(0, 27, (32, 16), generator=g, device=device)
    y = torch.randint(0, 27, (32, 16), generator=g, device=device)
    y[:, 9:] = IGNORE  # names are short: most rows end in padding
    rows = []
    for name in ("mlp", "transformer"):
        for impl in ("ours", "torch"):
            torch.manual_seed(0)
            model = create_model(model_config(name, vocab_size=27, block_size=16, loss="makemore" if impl == "ours" else "torch")).to(device)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

            def step() -> None:
                opt.zero_grad(set_to_none=True)
                model(x, y)[1].backward()
                opt.step()

            rows.append({"device": device, "model": name, "impl": impl, "ms": time_ms(step, device, budget_s)})
    return rows


def print_table(rows: list[dict]) -> None:
    print("| device | N | V | impl | fwd+bwd ms | vs torch | peak MiB |")
    print("|---|---:|---:|---|---:|---:|---:|")
    torch_ms = {(r["device"], r["N"], r["V"]): r.get("ms") for r in rows if r["impl"] == "torch"}
    for r in rows:
        if "skipped" in r:
            print(f"| {r['device']} | {r['N']} | {r['V']} | {r['impl']} | skipped ({r['skipped']}) | | |")
            continue
        ref = torch_ms.get((r["device"], r["N"], r["V"]))
        ratio = f"{r['ms'] / ref:.2f}x" if ref else ""
        mem = f"{r['peak_mib']:.1f}" if "peak_mib" in r else ""
        print(f"| {r['device']} | {r['N']} | {r['V']} | {r['impl']} | {r['ms']:.3f} | {ratio} | {mem} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="three small shapes, short timing budget")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CPU, then CUDA if present")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--_peak", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a._peak:
        _peak_child(a._peak[0], int(a._peak[1]), int(a._peak[2]))
        return
    if a.threads:
        torch.set_num_threads(a.threads)
    devices = ["cpu", "cuda"] if a.device == "auto" and torch.cuda.is_available() else ["cpu" if a.device == "auto" else a.device]
    shapes = QUICK_SHAPES if a.quick else FULL_SHAPES
    rows, steps = [], []
    for dev in devices:
        print(f"# {machine(dev)}", flush=True)
        rows += run(dev, shapes, budget_s=0.2 if a.quick else 1.0, memory=not a.no_memory)
        steps += train_step_rows(dev, budget_s=0.5 if a.quick else 2.0)
    print_table(rows)
    print("\n| device | model (32 x 16, V=27) | loss | train step ms | vs torch |")
    print("|---|---|---|---:|---:|")
    ref = {(r["device"], r["model"]): r["ms"] for r in steps if r["impl"] == "torch"}
    for r in steps:
        print(f"| {r['device']} | {r['model']} | {r['impl']} | {r['ms']:.3f} | {r['ms'] / ref[(r['device'], r['model'])]:.2f}x |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": {d: machine(d) for d in devices}, "rows": rows, "train_step": steps}, f, indent=2)


if __name__ == "__main__":
    main()
