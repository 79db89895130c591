"""What the doctor's integrations cost on a healthy run: each place with and without it, on the CPU.

    python bench/integrations_overhead.py              # 1000 steps, 5 runs of each setup
    python bench/integrations_overhead.py --quick      # 200 steps, 2 runs: shows that it works
    git worktree add /tmp/base <commit>                # another version of makemore, then:
    python bench/integrations_overhead.py --setups notebook --baseline /tmp/base   # this code against it

Three setups of each place: A without the doctor; B with the integration at the Monitor's default
interval (250 steps); M the same as B with the integration's Watch turned off (the Monitor records,
nothing is checked, logged, drawn or written), so that B/M - 1 is what the integration adds to the
Monitor and B/A - 1 what the doctor costs in all. The places:
    notebook     a plain loop; B adds a Monitor and a LiveView that redraws at every recording (the
                 HTML is built as in a kernel; outside one the display call itself is a no-op)
    tensorboard  a plain loop; B adds a Monitor and a TensorBoardWriter (scalars, histograms, losses)
    lightning    lightning.pytorch.Trainer.fit with a CSVLogger; B adds DoctorCallback(report=False)
    hf           transformers.Trainer.train; B adds DoctorCallback(report=False)
The model is the lecture's MLP (embedding, linear, BatchNorm, tanh, linear) on the built-in names,
or a 2-layer GPT-2 on the same names for the Hugging Face Trainer; both train healthily (the
findings of each B run are printed). A, M and B alternate run by run. Times are the process's CPU
seconds (time.process_time, one torch thread), so that other processes on a shared machine do not
enter them (a run reads the clock twice: timing inside the run would cost more than the doctor).
The table gives the median of each setup's times, and the overheads as the median and range of the
ratios within each round of neighbouring A, M and B runs (the load of a shared machine drifts
between rounds more than within one). The report, written once at the end of a run by default, is
timed separately.

With `--baseline SRC` (a checkout of makemore), two more setups come from the code in SRC: M0 its
Monitor only and B0 its integration; then every run, of all five setups, is a fresh process (one
short untimed run first, for the imports and the first calls), alternating round by round, and the
table compares this code with SRC side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from makemore.corpora import builtin_names
from makemore.diagnostics import Monitor
from makemore.diagnostics.checks import run_checks

os.environ["HF_HUB_OFFLINE"] = "1"
BLOCK, BATCH, LR = 3, 32, 1e-3


def name_contexts() -> tuple[torch.Tensor, torch.Tensor, int]:
    """(contexts of BLOCK characters, next characters, vocabulary size) of the built-in names."""
    names = builtin_names()
    chars = sorted(set("".join(names)))
    stoi = {c: i + 1 for i, c in enumerate(chars)}  # 0 is the start/end mark
    xs, ys = [], []
    for w in names:
        ctx = [0] * BLOCK
        for c in w + ".":
            i = stoi.get(c, 0)
            xs.append(ctx)
            ys.append(i)
            ctx = ctx[1:] + [i]
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(xs), generator=g)
    return torch.tensor(xs)[perm], torch.tensor(ys)[perm], len(chars) + 1


def lecture_mlp(vocab: int) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(vocab, 10), nn.Flatten(), nn.Linear(10 * BLOCK, 200, bias=False),
                          nn.BatchNorm1d(200), nn.Tanh(), nn.Linear(200, vocab))
    with torch.no_grad():
        model[5].weight.mul_(0.1)
    return model


def plain_loop(steps: int, data: tuple[torch.Tensor, torch.Tensor, int], doctor: str | None) -> tuple[float, Monitor | None]:
    x, y, vocab = data
    model = lecture_mlp(vocab)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    mon = Monitor(model, opt) if doctor else None
    follow: Callable[..., object] | None = None
    tmp = tempfile.TemporaryDirectory()
    if doctor == "notebook":
        from makemore.diagnostics.integrations import notebook

        live = notebook.LiveView(widget=False)
        notebook._in_kernel = lambda: True  # build the HTML as in a kernel ...
        import IPython.display

        IPython.display.display = lambda *a, **k: type("Handle", (), {"update": lambda self, obj: None})()  # ... show nothing
        follow = live.update
    elif doctor == "tensorboard":
        from makemore.diagnostics.integrations.tensorboard import TensorBoardWriter

        tb = TensorBoardWriter(tmp.name)
        follow = tb.update
    t0 = time.process_time()
    for step in range(steps):
        i = (step * BATCH) % (len(x) - BATCH)
        loss = F.cross_entropy(model(x[i : i + BATCH]), y[i : i + BATCH])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if mon is not None:
            mon.step(loss)
            follow(mon)
    if mon is not None:
        mon.close()
        follow(mon, final=True)  # the end of the run, as a user's loop would finish it
    if doctor == "tensorboard":
        tb.close()
    seconds = time.process_time() - t0
    tmp.cleanup()
    return seconds, mon


def lightning_run(steps: int, data: tuple[torch.Tensor, torch.Tensor, int], doctor: str | None) -> tuple[float, Monitor | None]:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from makemore.diagnostics.integrations.lightning import DoctorCallback

    x, y, vocab = data

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = lecture_mlp(vocab)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], i: int) -> torch.Tensor:
            return F.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=LR)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)
    cb = DoctorCallback(report=False) if doctor else None
    with tempfile.TemporaryDirectory() as tmp:
        trainer = pl.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=CSVLogger(tmp),
                             callbacks=[cb] if cb else [], enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=tmp)
        t0 = time.process_time()
        trainer.fit(Module(), loader)
        seconds = time.process_time() - t0
    return seconds, cb.monitor if cb else None


def hf_run(steps: int, data: tuple[torch.Tensor, torch.Tensor, int], doctor: str | None) -> tuple[float, Monitor | None]:
    import transformers

    from makemore.diagnostics.integrations.hf import DoctorCallback

    names = builtin_names()
    chars = sorted(set("".join(names)))
    T = 16

    class Names(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(names)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            ids = [0] + [chars.index(c) + 1 for c in names[i][: T - 2]] + [0]
            x = torch.tensor(ids + [0] * (T - len(ids)))
            labels = torch.tensor(ids + [-100] * (T - len(ids)))
            return {"input_ids": x, "labels": labels}

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=len(chars) + 1, n_positions=T,
                                  bos_token_id=0, eos_token_id=0)
    cb = DoctorCallback(report=False) if doctor else None
    with tempfile.TemporaryDirectory() as tmp:
        args = transformers.TrainingArguments(tmp, use_cpu=True, report_to="none", max_steps=steps,
                                              per_device_train_batch_size=BATCH, learning_rate=1e-3,
                                              logging_steps=100, save_strategy="no", disable_tqdm=True)
        trainer = transformers.Trainer(transformers.GPT2LMHeadModel(cfg), args, train_dataset=Names(),
                                       callbacks=[cb] if cb else [])
        t0 = time.process_time()
        trainer.train()
        seconds = time.process_time() - t0
    return seconds, cb.monitor if cb else None


MODES = ["A", "M", "B"]


@contextlib.contextmanager
def monitor_only(on: bool) -> Iterator[None]:
    """The integration with its Watch turned off: the Monitor steps and records, but nothing is
    checked, logged, drawn or written (the baseline of what the integration itself adds)."""
    from makemore.diagnostics.integrations import common

    poll = common.Watch.poll
    if on:
        common.Watch.poll = lambda self, final=False: None
    try:
        yield
    finally:
        common.Watch.poll = poll


SETUPS: dict[str, Callable[..., tuple[float, Monitor | None]]] = {
    "notebook": plain_loop, "tensorboard": plain_loop, "lightning": lightning_run, "hf": hf_run,
}


def overhead(with_: list[float], without: list[float]) -> str:
    """The median and range of the runs' ratios, round by round, as percentages above 1."""
    pct = sorted(100 * (w / o - 1) for w, o in zip(with_, without))
    return f"{statistics.median(pct):+.1f}% ({pct[0]:+.1f} to {pct[-1]:+.1f})"


def child(setup: str, mode: str, steps: int) -> None:
    """One run in this process (for --baseline): a short untimed run first, then the timed one; prints its seconds."""
    data = name_contexts()
    doctor = None if mode == "A" else setup
    for n in (min(steps, 20), steps):
        gc.collect()
        out, sys.stdout = sys.stdout, open(os.devnull, "w")
        try:
            with monitor_only(mode.startswith("M")):
                seconds, _ = SETUPS[setup](n, data, doctor)
        finally:
            sys.stdout.close()
            sys.stdout = out
    print(f"{seconds:.6f}")


def compare(setups: list[str], steps: int, runs: int, threads: int, baseline: Path) -> None:
    """The table of --baseline: A, M0, B0 (SRC's code), M, B (this code), each run a fresh process."""
    modes = ["A", "M0", "B0", "M", "B"]
    here = Path(__file__).resolve()
    src = {m: str((baseline if m.endswith("0") else here.parent.parent) / "src") for m in modes}
    print(f"# this code against {baseline}: {steps} steps, median of {runs} runs of each setup, every run a fresh "
          f"process, the five setups alternating; recording every 250 steps")
    print(f"# {platform.platform()}, python {platform.python_version()}, torch {torch.__version__}, {threads} thread(s); "
          f"load average {os.getloadavg()[0]:.1f} at the start\n")
    print("| integration | A: no doctor (CPU s) | M0: SRC's Monitor | B0: SRC's integration | M: this Monitor | "
          "B: this integration | M0/A - 1 | M/A - 1 | B0/A - 1 | B/A - 1 | B/B0 - 1 (range) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in setups:
        times: dict[str, list[float]] = {m: [] for m in modes}
        for r in range(runs):
            for mode in modes[r % 5 :] + modes[: r % 5]:
                env = {**os.environ, "PYTHONPATH": src[mode]}
                cmd = [sys.executable, str(here), "--child", name, mode.rstrip("0"), "--steps", str(steps),
                       "--threads", str(threads)]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
                times[mode].append(float(out.strip().splitlines()[-1]))
        med = {m: statistics.median(times[m]) for m in modes}
        pct = {m: statistics.median(100 * (t / a - 1) for t, a in zip(times[m], times["A"])) for m in modes}
        print(f"| {name} | {med['A']:.3f} | {med['M0']:.3f} | {med['B0']:.3f} | {med['M']:.3f} | {med['B']:.3f} | "
              f"{pct['M0']:+.1f}% | {pct['M']:+.1f}% | {pct['B0']:+.1f}% | {pct['B']:+.1f}% | "
              f"{overhead(times['B'], times['B0'])} |", flush=True)
    print(f"\n# load average {os.getloadavg()[0]:.1f} at the end")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setups", default=",".join(SETUPS))
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--runs", type=int, default=5, help="runs of each of A, M and B; the median is reported")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--quick", action="store_true", help="200 steps, 2 runs")
    p.add_argument("--baseline", type=Path, default=None, metavar="SRC",
                   help="a checkout of makemore to compare with, run by run (see above)")
    p.add_argument("--child", nargs=2, metavar=("SETUP", "MODE"), help=argparse.SUPPRESS)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    steps, runs = (200, 2) if a.quick else (a.steps, a.runs)
    warnings.filterwarnings("ignore")
    needs = {a.child[0]} if a.child else set(a.setups.split(","))
    if "lightning" in needs:
        import lightning.pytorch  # noqa: F401 (it sets its loggers' level on import)

        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if "hf" in needs:
        import transformers

        transformers.utils.logging.set_verbosity_error()
    if a.child:
        child(*a.child, steps)
        return
    if a.baseline is not None:
        if not (a.baseline / "src" / "makemore").is_dir():
            sys.exit(f"--baseline {a.baseline}: not a checkout of makemore (no src/makemore there)")
        compare(a.setups.split(","), steps, runs, a.threads, a.baseline)
        return
    data = name_contexts()
    print(f"# the doctor's integrations: {steps} steps, median of {runs} runs of each setup, A, M and B alternating, "
          "recording every 250 steps")
    print(f"# {platform.platform()}, python {platform.python_version()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); load average {os.getloadavg()[0]:.1f} at the start\n")
    print("| integration | A: no doctor (CPU s) | M: Monitor only | B: the integration | B/M - 1: the integration "
          "(range) | B/A - 1: all of the doctor (range) | findings of the B runs |")
    print("|---|---|---|---|---|---|---|")
    last: Monitor | None = None
    for name in a.setups.split(","):
        times: dict[str, list[float]] = {m: [] for m in MODES}
        findings: set[str] = set()
        for r in range(runs):
            for mode in MODES[r % 3 :] + MODES[: r % 3]:  # each mode first, second and third in turn
                gc.collect()  # the previous run's garbage is not collected inside this one
                devnull = open(os.devnull, "w")
                out, sys.stdout = sys.stdout, devnull  # the frameworks' own progress lines
                try:
                    with monitor_only(mode == "M"):
                        seconds, mon = SETUPS[name](steps, data, None if mode == "A" else name)
                finally:
                    sys.stdout = out
                    devnull.close()
                times[mode].append(seconds)
                if mode == "B":
                    findings |= {f"{f.severity} {f.code}" for f in run_checks(mon.records)}
                    last = mon
        a_s, m_s, b_s = (statistics.median(times[m]) for m in MODES)
        print(f"| {name} | {a_s:.3f} | {m_s:.3f} | {b_s:.3f} | {overhead(times['B'], times['M'])} | "
              f"{overhead(times['B'], times['A'])} | {', '.join(sorted(findings)) or 'none'} |", flush=True)
    print(f"\n# load average {os.getloadavg()[0]:.1f} at the end")
    if last is not None:  # the last B run's records
        from makemore.diagnostics.report import write_report

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.process_time()
            write_report(last.records, Path(tmp) / "report.html")
            print(f"\nthe report at the end of a run (once, default on in the framework callbacks): "
                  f"{time.process_time() - t0:.1f} CPU s")


if __name__ == "__main__":
    main()
