"""Training speed of every model: steps/s, characters/s and peak memory, eager vs compiled vs
(on CUDA) graph-captured, at batch 32 and at the batch size with the most characters/s.

Each figure is the median of --repeats timed runs of --steps training steps, after warm-up
steps (which include any compilation, reported separately). Characters/s counts real
characters: each item's characters and its end token, not the padding after it (steps/s x
batch x the training split's mean item length + 1). Peak memory: on CUDA the most memory PyTorch allocated during the row; on the CPU the
peak resident set of a fresh process that measured that row alone (the interpreter and PyTorch,
about 300 MB, included). Prints the machine and the versions first.

    python bench/speed.py                          # every model, this machine's device
    python bench/speed.py --quick                  # a smoke run: 3 models, few steps
    python bench/speed.py --device cuda --modes eager,graph,graph+compile --batches 32,512,4096,16384
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from makemore.config import DataConfig, TrainConfig
from makemore.data import load_dataset
from makemore.models import create_model, model_config, model_names
from makemore.speed import SpeedOptions
from makemore.train import Trainer

NAMES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "names.txt"
MODES = {  # mode -> (compile, cuda_graph)
    "eager": (False, "off"), "compile": (True, "off"), "graph": (False, "on"), "graph+compile": (True, "on"),
}


# Karpathy's makemore at its defaults on names.txt: the sizes its models have. `--sizes makemore`
# builds ours at those sizes, for a fair ratio (bench/vs_makemore.py measures both side by side).
MAKEMORE_SIZES: dict[str, dict] = {
    "transformer": dict(n_embd=64, n_layer=4, n_head=4),
    "mlp": dict(context=None, n_embd=64, n_hidden=64, n_layer=1),   # context: the whole block
    "rnn": dict(n_embd=64, n_hidden=64, n_layer=1),
    "gru": dict(n_embd=64, n_hidden=64, n_layer=1),
    "bow": dict(n_embd=64, n_hidden=64),
    "bigram": dict(),
}


def sizes_for(name: str, sizes: str, block_size: int) -> dict:
    if sizes != "makemore" or name not in MAKEMORE_SIZES:
        return {}
    kw = dict(MAKEMORE_SIZES[name])
    if "context" in kw:
        kw["context"] = block_size
    return kw


def machine() -> str:
    lines = [f"python {platform.python_version()}, torch {torch.__version__}, {platform.platform()}",
             f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"]
    try:
        model_name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        lines[-1] = f"cpu: {model_name}, {torch.get_num_threads()} threads"
    except (OSError, StopIteration):
        pass
    if torch.cuda.is_available():
        lines.append(f"gpu: {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}")
    return "\n".join(lines)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_options(text: str) -> dict[str, Any]:
    """`key=value,key=value` -> {key: value} with numbers as numbers (bench/speed.py --set)."""
    out: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = int(value)
        except ValueError:
            try:
                out[key.strip()] = float(value)
            except ValueError:
                out[key.strip()] = value.strip()
    return out


def build_trainer(name: str, batch: int, mode: str, device: torch.device, dataset, dtype: str = "float32",
                  sizes: str = "defaults", options: str = "", fast_paths: bool = True) -> Trainer:
    """The Trainer whose `step` is measured: model `name` seeded with 0, a constant learning rate."""
    compile_, graph = MODES[mode]
    torch.manual_seed(0)
    cfg = model_config(name, vocab_size=dataset.vocab.size, block_size=dataset.block_size,
                       **(sizes_for(name, sizes, dataset.block_size) | model_options(options)))
    model = create_model(cfg).to(device)
    tcfg = TrainConfig(steps=10**9, batch_size=batch, schedule="constant", device=device.type)
    speed = SpeedOptions(compile=compile_, cuda_graph=graph, dtype=dtype, fast_paths=fast_paths)
    return Trainer(model, dataset, tcfg, device, speed=speed, stream=sys.stderr)


def measure(name: str, batch: int, mode: str, device: torch.device, dataset, steps: int, repeats: int,
            warmup: int, dtype: str, sizes: str = "defaults", options: str = "", fast_paths: bool = True) -> dict[str, float | str]:
    """Median steps/s of one (model, batch size, mode), with warm-up time and peak memory."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    trainer = build_trainer(name, batch, mode, device, dataset, dtype, sizes, options, fast_paths)
    if trainer.optimizer is None:
        return {"model": name, "batch": batch, "mode": mode, "error": "no gradient training"}
    step = trainer.step
    for _ in range(warmup):
        step()
        trainer.state.step += 1
    _sync(device)
    warm = time.perf_counter() - t0
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            loss = step()
            trainer.state.step += 1
        float(loss)  # one host sync: every queued step has run
        rates.append(steps / (time.perf_counter() - t))
    rate = statistics.median(rates)
    mem = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    train = dataset.splits["train"]
    chars_per_item = train.n_chars / max(1, len(train.items))  # real characters: the item and its end token
    return {"model": name, "batch": batch, "mode": mode, "steps_per_s": rate, "chars_per_s": rate * batch * chars_per_item,
            "warmup_s": warm, "peak_mb": mem, "min": min(rates), "max": max(rates)}


def measure_fresh(name: str, batch: int, mode: str, a: argparse.Namespace) -> dict[str, float | str]:
    """`measure` in a fresh process (CPU): its peak resident memory belongs to this one row
    (the interpreter and PyTorch included), not to every row measured before it."""
    row = {"name": name, "batch": batch, "mode": mode, "steps": a.steps, "repeats": a.repeats, "warmup": a.warmup,
           "dtype": a.dtype, "sizes": a.sizes, "data": a.data, "threads": a.threads, "set": a.set,
           "fast_paths": not a.no_fast_paths}
    proc = subprocess.run([sys.executable, __file__, "--_row", json.dumps(row)], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError((proc.stderr.strip().splitlines() or ["the measuring process failed"])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _row_main(spec: str) -> int:
    r = json.loads(spec)
    if r["threads"]:
        torch.set_num_threads(r["threads"])
    dataset = load_dataset(DataConfig(input=r["data"] if Path(r["data"]).is_file() else None))
    print(json.dumps(measure(r["name"], r["batch"], r["mode"], torch.device("cpu"), dataset, r["steps"], r["repeats"],
                             r["warmup"], r["dtype"], r["sizes"], r["set"], r["fast_paths"])))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default=",".join(m for m in model_names() if m not in ("counts", "mlp-manual")))
    p.add_argument("--modes", default=None, help="eager,compile,graph,graph+compile (default: eager,compile; +graph on CUDA)")
    p.add_argument("--batches", default=None, help="batch sizes; the first is the reference (default 32,128,512 CPU; 32,512,4096 CUDA)")
    p.add_argument("--best-modes", default=None, help="modes that also try the larger batch sizes (default: all)")
    p.add_argument("--steps", type=int, default=100, help="timed steps per run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation happens here)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bf16"])
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    p.add_argument("--data", default=str(NAMES), help="file of lines (default ../shared/data/names.txt)")
    p.add_argument("--quick", action="store_true", help="transformer, gru, mlp; 20 steps x 3 runs; batch 32 only")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument("--sizes", default="makemore", choices=["makemore", "defaults"],
                   help="model sizes: Karpathy's makemore defaults (for the ratio to its figures) or ours")
    p.add_argument("--set", default="", help="model options for every model, e.g. attention=manual,n_embd=128")
    p.add_argument("--no-fast-paths", action="store_true", help="the models' reference code only (makemore.speed off)")
    p.add_argument("--_row", default=None, help=argparse.SUPPRESS)  # one measurement, in a child process
    a = p.parse_args(argv)
    if a._row:
        return _row_main(a._row)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else ("cpu" if a.device == "auto" else a.device))
    cuda = device.type == "cuda"
    modes = (a.modes or ("eager,compile,graph,graph+compile" if cuda else "eager,compile")).split(",")
    batches = [int(b) for b in (a.batches or ("32,512,4096" if cuda else "32,128,512")).split(",")]
    models = a.models.split(",")
    if a.quick:
        models, a.steps, a.repeats, a.warmup = ["transformer", "gru", "mlp"], 20, 3, 5
        batches = batches[:1]
    best_modes = a.best_modes.split(",") if a.best_modes else modes
    data = DataConfig(input=a.data if Path(a.data).is_file() else None)
    dataset = load_dataset(data).to(device)
    print(machine())
    print(f"data: {dataset.source}, block size {dataset.block_size}; {a.repeats} runs of {a.steps} steps, median; "
          f"dtype {a.dtype}; model sizes: {a.sizes}{'; ' + a.set if a.set else ''}\n")
    rows = []
    head = f"{'model':<12} {'mode':<14} {'batch':>6} {'steps/s':>9} {'(min-max)':>15} {'chars/s':>11} {'warm-up s':>9} {'peak MB':>8}"
    print(head, flush=True)
    for name in models:
        for mode in modes:
            for batch in batches if mode in best_modes else batches[:1]:
                try:
                    r = (measure(name, batch, mode, device, dataset, a.steps, a.repeats, a.warmup, a.dtype, a.sizes, a.set,
                                 not a.no_fast_paths)
                         if cuda else measure_fresh(name, batch, mode, a))
                except Exception as e:  # noqa: BLE001 - one failing configuration should not end the table
                    r = {"model": name, "batch": batch, "mode": mode, "error": str(e).splitlines()[0][:80]}
                rows.append(r)
                if "error" in r:
                    print(f"{name:<12} {mode:<14} {batch:>6}  {r['error']}", flush=True)
                    continue
                spread = f"({r['min']:.0f}-{r['max']:.0f})"
                print(f"{name:<12} {mode:<14} {batch:>6} {r['steps_per_s']:>9.1f} {spread:>15} {r['chars_per_s']:>11.3g} "
                      f"{r['warmup_s']:>9.1f} {r['peak_mb']:>8.0f}", flush=True)
    print("\nbest characters/s per model:")
    for name in models:
        ok = [r for r in rows if r["model"] == name and "error" not in r]
        if ok:
            b = max(ok, key=lambda r: r["chars_per_s"])
            print(f"  {name:<12} {b['chars_per_s']:.3g} chars/s ({b['mode']}, batch {b['batch']}, {b['steps_per_s']:.0f} steps/s)")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
