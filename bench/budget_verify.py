"""Timed runs of `--model auto` as a user makes them, and Karpathy's makemore given the same time.

Run on a quiet machine (nothing else running): these are wall-clock budgets.

- `auto`: `makemore train CORPUS --time T --samples 0` with every other option at its default
  (the thread count included); the exact test NLL of its best checkpoint, from summary.json (an
  ensemble's: the steps are its members' together, each member's figures printed below it).
- `makemore`: Karpathy's makemore.py as shipped, with its defaults (a 4-layer transformer, batch
  32, AdamW lr 5e-4, weight decay 0.01, no schedule), stopped T seconds after its first step;
  its input is our train and val items (it holds out 1,000 of them itself to choose its
  checkpoint). Its saved best model is then scored exactly on our test split, which neither saw:
  the mean NLL per character, the end token included, as ours.

    python bench/budget_verify.py --auto names:300 --auto names:120 --auto surnames:120
    python bench/budget_verify.py --auto names:60 --makemore /tmp/makemore_ref/makemore.py:60
    python bench/budget_verify.py --candidate names:120:mlp --candidate names:120:gru-m
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from budget_sweep import append_result, corpus_path, options  # noqa: E402
from speed import machine  # noqa: E402


def auto_run(corpus: str, seconds: float, keep: str | None, candidate: str | None = None) -> dict[str, object]:
    """`makemore train CORPUS --time SECONDS` in a fresh process, defaults otherwise (or a sweep
    candidate's options instead of auto's)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(keep) if keep else Path(tmp) / "run"
        extra = options(candidate) if candidate else []
        cmd = [sys.executable, "-m", "makemore", "train", str(corpus_path(corpus)), *extra, "--time", f"{seconds:g}",
               "--samples", "0", "--out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        summary = json.loads((out / "summary.json").read_text())
        config = json.loads((out / "config.json").read_text())
    return {"who": candidate or "auto", "corpus": corpus, "seconds": seconds, "test": summary["metrics"]["test"]["nll"],
            "val": summary["metrics"]["val"]["nll"], "steps": summary["steps"], "train_s": summary["train_seconds"],
            "wall_s": time.perf_counter() - t0, "choice": config["auto"]["reason"] if "auto" in config else "",
            "members": summary.get("members", []),  # an ensemble's members: steps and exact val / test each
            "command": " ".join(["makemore train", str(corpus_path(corpus)), *extra, "--time", f"{seconds:g}"])}


def _load_makemore(script: str):
    spec = importlib.util.spec_from_file_location("karpathy_makemore", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@torch.no_grad()
def makemore_test_nll(script: str, model_path: Path, train_words: list[str], test_words: list[str]) -> float:
    """Exact mean NLL per character (the end token included) of makemore's saved transformer on `test_words`."""
    mm = _load_makemore(script)
    chars = sorted(set("".join(train_words)))
    block_size = max(len(w) for w in train_words) + 1
    config = mm.ModelConfig(vocab_size=len(chars) + 1, block_size=block_size, n_layer=4, n_head=4, n_embd=64, n_embd2=64)
    model = mm.Transformer(config)
    model.load_state_dict(torch.load(model_path, map_location="cpu"))
    model.eval()
    stoi = {c: i + 1 for i, c in enumerate(chars)}
    total, count = 0.0, 0
    for i in range(0, len(test_words), 500):
        words = test_words[i : i + 500]
        x = torch.zeros(len(words), block_size, dtype=torch.long)  # (B, T): start token 0, then the word
        y = torch.full((len(words), block_size), -1, dtype=torch.long)  # (B, T): the word, end token 0, ignored after
        for r, w in enumerate(words):
            ix = torch.tensor([stoi[c] for c in w], dtype=torch.long)
            x[r, 1 : 1 + len(ix)] = ix
            y[r, : len(ix)] = ix
            y[r, len(ix)] = 0
        logits, _ = model(x)  # (B, T, V)
        keep = y != -1
        total += torch.nn.functional.cross_entropy(logits[keep], y[keep], reduction="sum").item()
        count += int(keep.sum())
    return total / count


def makemore_run(script: str, corpus: str, seconds: float) -> dict[str, object]:
    """makemore.py with its defaults for `seconds` after its first step, scored on our test split."""
    from makemore.config import DataConfig
    from makemore.data import load_dataset

    ds = load_dataset(DataConfig(input=str(corpus_path(corpus))))
    train_words = ds.splits["train"].items + ds.splits["val"].items
    test_words = ds.splits["test"].items
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input.txt"
        data.write_text("\n".join(train_words) + "\n", encoding="utf-8")
        work = Path(tmp) / "out"
        cmd = [sys.executable, str(Path(script).resolve()), "-i", str(data), "-o", str(work)]
        t0 = time.perf_counter()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each step line as it is printed: the clock starts on time
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp, env=env,
                                start_new_session=True)
        assert proc.stdout is not None
        started, last_step = None, 0
        for line in proc.stdout:
            if line.startswith("step "):
                last_step = int(line.split()[1])
                started = started or time.perf_counter()
            if started is not None and time.perf_counter() - started >= seconds:
                break
        os.killpg(proc.pid, signal.SIGTERM)  # its DataLoader workers too
        proc.wait()
        if not (work / "model.pt").is_file():
            raise SystemExit(f"makemore saved no model in {seconds:g} s (it saves at step 500, 1000, ...)")
        nll = makemore_test_nll(script, work / "model.pt", train_words, test_words)
    return {"who": "makemore", "corpus": corpus, "seconds": seconds, "test": nll, "steps": last_step,
            "wall_s": time.perf_counter() - t0, "command": f"python makemore.py -i TRAIN_AND_VAL.txt -o OUT (stopped after {seconds:g} s)"}


def _target(text: str) -> tuple[str, float]:
    where, _, seconds = text.rpartition(":")
    return where, float(seconds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--auto", action="append", default=[], help="CORPUS:SECONDS, a timed auto run (repeatable)")
    p.add_argument("--makemore", action="append", default=[],
                   help="PATH/TO/makemore.py:SECONDS, makemore's defaults on names for that long (repeatable)")
    p.add_argument("--candidate", action="append", default=[],
                   help="CORPUS:SECONDS:NAME, a sweep candidate (bench/budget_sweep.py) timed the same way (repeatable)")
    p.add_argument("--results", default="budget_verify.jsonl", help="JSON lines, one per run (appended)")
    p.add_argument("--keep", default=None, help="keep the auto runs' directories under this folder")
    a = p.parse_args(argv)
    print(machine(), flush=True)
    jobs = [("auto", t) for t in a.auto] + [("makemore", t) for t in a.makemore] + [("candidate", t) for t in a.candidate]
    for who, text in jobs:
        name = None
        if who == "candidate":
            text, _, name = text.rpartition(":")
        where, seconds = _target(text)
        if who in ("auto", "candidate"):
            keep = str(Path(a.keep) / f"{where}-{seconds:g}-{name or 'auto'}") if a.keep else None
            r = auto_run(where, seconds, keep, name)
        else:
            r = makemore_run(where, "names", seconds)
        append_result(a.results, r)
        print(f"{r['who']:<9} {r['corpus']:<9} {seconds:>6g} s  test {r['test']:.4f}  {r['steps']:>7,} steps  "
              f"({r['wall_s']:.0f} s wall)  {r.get('choice', '')}", flush=True)
        for k, m in enumerate(r.get("members", [])):
            print(f"    member {k}: {m['steps']:,} steps, val {m['val']:.4f}, test {m['test']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
