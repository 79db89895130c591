"""A run from start to finish: set up (or resume) a run directory, train, evaluate, sample.

These are the library calls behind `makemore train`, `eval` and `sample`:

    from makemore import DataConfig, model_config, train_config, train_run, eval_run, sample_run
    result = train_run(DataConfig(input="names.txt"), model_config("mlp"), train_config("mlp", steps=2000), out="runs/mlp")
    print(eval_run("runs/mlp")["test"]["nll"], sample_run("runs/mlp", n=5))
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from .auto import Choice
from .batchnorm import calibrate_loaded, fold_for_inference
from .callbacks import Checkpointer, MetricsLogger, Progress, StepZeroReport, TensorBoardLogger, require_tensorboard
from .checkpoint import Checkpoint, RunDir, atomic_write_json, load_checkpoint, load_model, save_checkpoint
from .config import DataConfig, ModelConfig, TrainConfig, from_dict, to_dict
from .data import Dataset, Vocab, build_splits, load_dataset, load_encoded, read_items, save_encoded
from .errors import MakemoreError
from . import dist
from .evaluate import evaluate_split
from .models import create_model, n_params
from .models.ensemble import Ensemble
from .progress import ProgressBar
from .sampling import generate, novelty
from .speed import SpeedOptions
from .signals import Interrupted, stop_on_signals
from .train import Trainer, TrainState, Watcher, validate_train_config


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when PyTorch sees a GPU, else the CPU; 'cuda' or 'mps' (Apple GPUs) that
    this PyTorch cannot use here is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MakemoreError(f"--device {name} was asked for, but PyTorch sees no CUDA GPU (use --device cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise MakemoreError("--device mps needs an Apple GPU and a PyTorch built with MPS; this one has none "
                            "(use --device cpu)")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise MakemoreError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return torch.device(name)


def setup_model(model_cfg: ModelConfig, dataset: Dataset, device: torch.device, seed: int) -> tuple[ModelConfig, nn.Module]:
    """The model `model_cfg` describes, sized to `dataset` (vocabulary, block size), initialized
    from `seed` and moved to `device`; returns the sized config with it.

    The one place a run's model is built: `train_run`, the doctor and the lab go through it.
    """
    model_cfg = dataclasses.replace(model_cfg, vocab_size=dataset.vocab.size, block_size=dataset.block_size)
    torch.manual_seed(seed)  # initialization (and later dropout) draw from the global generator
    try:
        model = create_model(model_cfg)
    except ValueError as e:
        raise MakemoreError(f"cannot build model {model_cfg.name!r}: {e}") from None
    return model_cfg, model.to(device)


@dataclass
class RunResult:
    run_dir: Path
    state: TrainState
    metrics: dict[str, dict[str, float]]   # split -> evaluate_split figures of the best model
    samples: list[str]
    n_params: int


def _dataset_from_run(run: RunDir, vocab: Vocab, block_size: int) -> Dataset:
    if run.data.is_dir():
        return replace(load_encoded(run.data, vocab, block_size), source=str(run.path))
    sp = run.read_splits()  # a run directory from before data/
    return build_splits(sp["train"], sp["val"], sp["test"], str(run.path), block_size=block_size, vocab=vocab)


def _new_run_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MakemoreError(f"run directory {out} already exists and is not empty; use --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)


def train_run(
    data_cfg: DataConfig,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    out: str | Path,
    resume: bool = False,
    tensorboard: bool = False,
    stream: IO[str] | None = None,
    extra_callbacks: tuple[Any, ...] = (),
    n_samples: int = 10,
    speed: SpeedOptions | None = None,
    monitor: Watcher | None = None,
    auto: Choice | None = None,
) -> RunResult:
    """Train a model in run directory `out` (new, or continued with `resume=True`).

    `speed` turns on torch.compile, bf16 autocast and the CUDA-graph step, or off the CPU fast
    paths (`makemore.speed`). `monitor` watches training (the diagnostics monitor).
    Started by torchrun (WORLD_SIZE > 1), every process trains its slice of each batch under
    DistributedDataParallel and rank 0 alone writes the run directory (`makemore.dist`).
    With `train_cfg.members` > 1 the run is an ensemble (`train_members`). `auto`, what
    `--model auto` chose, is printed and recorded in config.json.

    With `resume`, the configs come from the run's last checkpoint; `train_cfg.steps` and
    `train_cfg.time`, when set, may extend the run. Training continues exactly where the
    checkpoint left off: the same batches, the same parameters, bit for bit on the CPU.
    """
    stream = stream or sys.stderr
    out = Path(out)
    run = RunDir(out)
    if train_cfg.members > 1 or (resume and run.members.is_dir()):
        unsupported = [what for what, on in (("--tensorboard", tensorboard), ("--monitor", monitor is not None),
                                             ("callbacks such as --stop-at-val-loss", bool(extra_callbacks)),
                                             ("torchrun", dist.env_world_size() > 1)) if on]
        if unsupported:
            raise MakemoreError(f"an ensemble (--members) cannot be combined with {unsupported[0]} yet; train one "
                                "model for that")
        return train_members(run, data_cfg, model_cfg, train_cfg, resume, stream, n_samples, speed or SpeedOptions(), auto)
    device = resolve_device(train_cfg.device)
    info, device = dist.setup(device)
    if info.is_main and resume and run.path.is_dir():
        with run.locked():  # rank 0 alone writes the directory, so it alone holds the lock
            return _train_run(run, data_cfg, model_cfg, train_cfg, resume, tensorboard, stream, extra_callbacks,
                              n_samples, speed, monitor, device, info, auto)
    return _train_run(run, data_cfg, model_cfg, train_cfg, resume, tensorboard, stream, extra_callbacks,
                      n_samples, speed, monitor, device, info, auto)


def _train_run(
    run: RunDir, data_cfg: DataConfig, model_cfg: ModelConfig, train_cfg: TrainConfig, resume: bool, tensorboard: bool,
    stream: IO[str], extra_callbacks: tuple[Any, ...], n_samples: int, speed: SpeedOptions | None,
    monitor: Watcher | None, device: torch.device, info: dist.DistInfo, auto: Choice | None = None,
) -> RunResult:
    out = run.path
    ckpt: Checkpoint | None = None
    if resume:
        if not run.last.is_file():
            raise MakemoreError(f"cannot resume: {run.last} does not exist")
        ckpt = load_checkpoint(run.last)
        data_cfg, model_cfg = ckpt.data_config, ckpt.model_config
        train_cfg = dataclasses.replace(
            ckpt.train_config,
            steps=train_cfg.steps if train_cfg.steps is not None else ckpt.train_config.steps,
            time=train_cfg.time if train_cfg.time is not None else ckpt.train_config.time,
            device=train_cfg.device,
        )
        validate_train_config(train_cfg)
        dataset = _dataset_from_run(run, ckpt.vocab, model_cfg.block_size)
        created = False
    else:
        validate_train_config(train_cfg)
        dataset = load_dataset(data_cfg, stream)
        if tensorboard:
            require_tensorboard()  # fail before the run directory exists
        if info.is_main:
            _new_run_dir(out)
        created = info.is_main
    try:
        with dist.guard(), (run.locked() if created else contextlib.nullcontext()):
            return _train_in_dir(run, dataset, data_cfg, model_cfg, train_cfg, device, ckpt, tensorboard, stream,
                                 extra_callbacks, n_samples, info, speed or SpeedOptions(), monitor, auto)
    except OSError as e:  # a write into the run directory failed (full disk, quota, permissions)
        raise MakemoreError(f"writing the run directory {out} failed ({e.strerror or e}); the run stops") from None
    except BaseException:
        # a run that failed before its first checkpoint leaves nothing behind that looks like a run
        if created and not run.last.exists():
            shutil.rmtree(out, ignore_errors=True)
        raise


def _train_in_dir(
    run: RunDir, dataset: Dataset, data_cfg: DataConfig, model_cfg: ModelConfig, train_cfg: TrainConfig,
    device: torch.device, ckpt: Checkpoint | None, tensorboard: bool, stream: IO[str],
    extra_callbacks: tuple[Any, ...], n_samples: int, info: dist.DistInfo, speed: SpeedOptions,
    monitor: Watcher | None, auto: Choice | None,
) -> RunResult:
    model_cfg, model = setup_model(model_cfg, dataset, device, train_cfg.seed)
    if ckpt is not None:
        model.load_state_dict(ckpt.model_state)
    data = dataset.to(device)
    if ckpt is None and info.is_main:
        _write_config(run, data_cfg, model_cfg, train_cfg, auto, stream)
        save_encoded(dataset, run.data)
        for name, k in dataset.dropped.items():
            if k:
                stream.write(f"note: dropped {k} {name} item(s) with characters not in the training items\n")
        if dataset.skipped_long:
            stream.write(f"note: skipped {dataset.skipped_long:,} line(s) longer than {data_cfg.max_len} characters (--skip-long)\n")
    checkpointer = Checkpointer(run, model_cfg, train_cfg, data_cfg, dataset.vocab)
    callbacks: list[Any] = [StepZeroReport(dataset.vocab.size, stream), MetricsLogger(run.metrics), Progress(stream), checkpointer]
    if tensorboard:
        callbacks.append(TensorBoardLogger(run.path / "tensorboard"))
    callbacks += list(extra_callbacks)
    if not info.is_main:
        callbacks, monitor = [], None  # rank 0 alone logs and writes checkpoints
    trainer = Trainer(model, data, train_cfg, device, callbacks, rank=info.rank, world_size=info.world_size,
                      speed=speed, monitor=monitor, stream=stream if info.is_main else io.StringIO())
    if ckpt is not None:
        trainer.restore(TrainState(step=ckpt.step, elapsed=ckpt.elapsed, best_val=ckpt.best_val),
                        ckpt.optimizer_state, ckpt.rng_state)
        if info.is_main:
            stream.write(f"resuming {run.path} at step {ckpt.step}\n")
    elif info.is_main:
        stream.write(
            f"training {model_cfg.name} ({n_params(model):,} parameters) on {dataset.source}: "
            f"{len(dataset.splits['train']):,} train / {len(dataset.splits['val']):,} val / "
            f"{len(dataset.splits['test']):,} test items, vocabulary {dataset.vocab.size}, device {device}\n"
        )
    if info.is_main and len(trainer.val_split) < len(dataset.splits["val"]):
        stream.write(f"periodic validation on a fixed sample of {len(trainer.val_split):,} of the "
                     f"{len(dataset.splits['val']):,} val items (--val-subset); exact whole-split figures at the end\n")
    if info.world_size > 1 and info.is_main:
        stream.write(f"data parallel: {info.world_size} processes ({info.backend}), {train_cfg.batch_size // info.world_size} items each per step\n")
    try:
        with stop_on_signals(trainer) if info.world_size == 1 else contextlib.nullcontext([]) as received:
            state = trainer.fit()
    except KeyboardInterrupt:  # a second Ctrl-C, in the middle of a step: nothing consistent to save
        if info.is_main:
            stream.write(f"\ninterrupted during step {trainer.state.step + 1}; {run.last.name} holds the last evaluation's state\n")
        raise
    if received:  # SIGTERM or Ctrl-C: the step finished; save it and stop without the final evaluation
        save_checkpoint(run.last, checkpointer.checkpoint(trainer))
        stream.write(f"\nstopped by {signal.Signals(received[0]).name} at step {trainer.state.step}, saved in {run.last}; "
                     f"continue with: makemore train --out {run.path} --resume\n")
        raise Interrupted(received[0], trainer.state.step)
    if not info.is_main:
        dist.shutdown()
        return RunResult(run.path, state, {}, [], n_params(model))
    result = finish_run(run, device, stream, n_samples, state, fast=speed.fast_paths)
    dist.shutdown()
    return result


def _write_config(run: RunDir, data_cfg: DataConfig, model_cfg: ModelConfig, train_cfg: TrainConfig,
                  auto: Choice | None, stream: IO[str]) -> None:
    """config.json of a new run, with what `--model auto` chose (said on `stream` too)."""
    config: dict[str, Any] = {"data": to_dict(data_cfg), "model": to_dict(model_cfg), "train": to_dict(train_cfg)}
    if auto is not None:
        config["auto"] = auto.to_dict()
        stream.write(auto.reason + "\n")
    atomic_write_json(run.config, config)


# ---------------------------------------------------------------------------------------------
# an ensemble: members trained side by side, one process each


def train_members(run: RunDir, data_cfg: DataConfig, model_cfg: ModelConfig, train_cfg: TrainConfig, resume: bool,
                  stream: IO[str], n_samples: int, speed: SpeedOptions, auto: Choice | None = None) -> RunResult:
    """Train `train_cfg.members` models side by side, each in its own process (`makemore.member`)
    with seed `train_cfg.seed + k`, as ordinary runs in `run/members/K`; then their `Ensemble` is the
    run's best.pt, evaluated and sampled like any run.

    The run's CPU threads are shared among the members. A signal stops every member after its step
    (each saves its last.pt); `resume` continues every member, then assembles the ensemble again.
    """
    if resume:
        if not run.config.is_file():
            raise MakemoreError(f"cannot resume: {run.config} does not exist")
        saved = json.loads(run.config.read_text(encoding="utf-8"))
        data_cfg, model_cfg = from_dict(DataConfig, saved["data"]), from_dict(ModelConfig, saved["model"])
        given = {k: getattr(train_cfg, k) for k in ("steps", "time") if getattr(train_cfg, k) is not None}
        train_cfg = dataclasses.replace(from_dict(TrainConfig, saved["train"]), **given, device=train_cfg.device)
        validate_train_config(train_cfg)
        created = False
    else:
        validate_train_config(train_cfg)
        dataset = load_dataset(data_cfg, stream)
        model_cfg, _ = setup_model(model_cfg, dataset, torch.device("cpu"), train_cfg.seed)  # a bad size fails here
        _new_run_dir(run.path)
        created = True
    try:
        with run.locked():
            if not resume:
                _write_config(run, data_cfg, model_cfg, train_cfg, auto, stream)
                save_encoded(dataset, run.data)
            threads = max(1, torch.get_num_threads() // train_cfg.members)
            stream.write(f"training {train_cfg.members} {model_cfg.name} models side by side, one process each "
                         f"(seeds {train_cfg.seed} to {train_cfg.seed + train_cfg.members - 1}, {threads} CPU "
                         f"thread{'s' if threads > 1 else ''} each); their logs: {run.members}/K.log\n")
            jobs = [_member_job(run, k, data_cfg, model_cfg, train_cfg, threads, speed, resume)
                    for k in range(train_cfg.members)]
            state = _run_members(run, jobs, train_cfg, stream)
            ensemble = _assemble(run, train_cfg)
            save_checkpoint(run.best, ensemble)
            return finish_run(run, resolve_device(train_cfg.device), stream, n_samples, state, fast=speed.fast_paths,
                              extra_summary={"members": [_member_summary(run, k) for k in range(train_cfg.members)]})
    except OSError as e:
        raise MakemoreError(f"writing the run directory {run.path} failed ({e.strerror or e}); the run stops") from None
    except BaseException:
        if created and not any(run.members.glob("*/last.pt")):  # nothing trained: nothing that looks like a run
            shutil.rmtree(run.path, ignore_errors=True)
        raise


def _member_job(run: RunDir, k: int, data_cfg: DataConfig, model_cfg: ModelConfig, train_cfg: TrainConfig,
                threads: int, speed: SpeedOptions, resume: bool) -> dict[str, Any]:
    """What member `k`'s process trains (`makemore.member` reads it): an ordinary run with its own seed."""
    member_train = dataclasses.replace(train_cfg, members=1, seed=train_cfg.seed + k)
    out = run.members / str(k)
    resume = resume and (out / "last.pt").is_file()  # a member stopped before its first step starts afresh
    return {"out": str(out), "log": str(run.members / f"{k}.log"), "resume": resume,
            "data": to_dict(data_cfg), "model": to_dict(model_cfg), "train": to_dict(member_train),
            "threads": threads, "speed": dataclasses.asdict(speed)}


class _Members:
    """The members' processes: started in sessions of their own, so that a Ctrl-C reaches the
    parent alone, which passes it on (`interrupt`) and waits for each member to save its step."""

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        for job in jobs:
            Path(job["log"]).parent.mkdir(parents=True, exist_ok=True)
            with open(job["log"], "ab") as log:
                self.procs.append(subprocess.Popen([sys.executable, "-m", "makemore.member"], stdin=subprocess.PIPE,
                                                   stdout=log, stderr=log, start_new_session=True))
            assert self.procs[-1].stdin is not None
            self.procs[-1].stdin.write(json.dumps(job).encode())
            self.procs[-1].stdin.close()

    def running(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def failed(self) -> bool:
        return any(p.poll() not in (None, 0) for p in self.procs)

    def interrupt(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)

    def stop(self) -> None:
        """Stop the members still running (a second Ctrl-C for them: at once) and wait for them."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            p.wait()


def _last_logged(metrics: Path) -> tuple[int, float | None, float]:
    """(step, loss, elapsed) of the last training record a member wrote to its metrics.jsonl."""
    try:
        lines = metrics.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0, None, 0.0
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:  # the line being written
            continue
        if record.get("kind") == "train":
            return int(record["step"]), record["loss"], float(record["elapsed"])
    return 0, None, 0.0


def _run_members(run: RunDir, jobs: list[dict[str, Any]], train_cfg: TrainConfig, stream: IO[str]) -> TrainState:
    """Run the members' processes to their end, with one progress display for all of them."""
    metrics = [Path(job["out"]) / "metrics.jsonl" for job in jobs]
    timed = f" ({train_cfg.time:g}s)" if train_cfg.time is not None and train_cfg.steps is None else ""
    members = _Members(jobs)
    bar = ProgressBar(train_cfg.steps, f"train {len(jobs)} members{timed}", "step", stream,
                      initial=min(_last_logged(m)[0] for m in metrics))
    stopping = False
    try:
        with stop_on_signals(members) as received:
            while members.running():
                time.sleep(0.5)
                if members.failed() and not stopping:
                    members.interrupt()  # the ensemble cannot be made: stop the others now
                    stopping = True
                logged = [_last_logged(m) for m in metrics]
                bar.update(min(step for step, _, _ in logged) - bar.n)
                if all(loss is not None for _, loss, _ in logged):
                    bar.set_postfix("loss " + " / ".join(f"{loss:.4f}" for _, loss, _ in logged))
    finally:
        bar.close()
        members.stop()
    codes = [p.returncode for p in members.procs]
    failed = [(job, code) for job, code in zip(jobs, codes) if code not in (0, 128 + signal.SIGINT)]
    if received and not failed:
        stream.write(f"\nstopped by {signal.Signals(received[0]).name}: each member saved its last step in "
                     f"{run.members}/K/last.pt; continue with: makemore train --out {run.path} --resume\n")
        raise Interrupted(received[0], min(_last_logged(m)[0] for m in metrics))
    for job, code in failed:
        if code:
            lines = Path(job["log"]).read_text(encoding="utf-8", errors="replace").strip().splitlines()
            why = lines[-1].removeprefix("error: ") if code == 2 and lines else f"it exited with code {code}"
            raise MakemoreError(f"member {Path(job['out']).name} of the ensemble stopped: {why} (its log: {job['log']})")
    summaries = [json.loads((Path(job["out"]) / "summary.json").read_text(encoding="utf-8")) for job in jobs]
    return TrainState(step=sum(s["steps"] for s in summaries), elapsed=max(s["train_seconds"] for s in summaries))


def _assemble(run: RunDir, train_cfg: TrainConfig) -> Checkpoint:
    """The ensemble of the members' best checkpoints, as one checkpoint that names its members."""
    ckpts = [load_checkpoint(RunDir(run.members / str(k)).checkpoint_for_inference()) for k in range(train_cfg.members)]
    first = ckpts[0]
    model = Ensemble([load_model(c) for c in ckpts])
    return Checkpoint(
        model_config=ModelConfig(name="ensemble", vocab_size=first.model_config.vocab_size,
                                 block_size=first.model_config.block_size),
        train_config=train_cfg, data_config=first.data_config, vocab=first.vocab, step=sum(c.step for c in ckpts),
        model_state=model.state_dict(), best_val=None, elapsed=max(c.elapsed for c in ckpts),
        members=[c.model_config for c in ckpts],
    )


def _member_summary(run: RunDir, k: int) -> dict[str, Any]:
    summary = json.loads((run.members / str(k) / "summary.json").read_text(encoding="utf-8"))
    return {"model": summary["model"], "steps": summary["steps"], "best_step": summary["best_step"],
            **{split: summary["metrics"].get(split, {}).get("nll") for split in ("val", "test")}}


def finish_run(run: RunDir, device: torch.device, stream: IO[str], n_samples: int, state: TrainState,
               fast: bool = True, extra_summary: dict[str, Any] | None = None) -> RunResult:
    """Calibrate BatchNorm (if any), exact figures of the best checkpoint on every split, a few samples, then summary.json.

    `fast=False` evaluates through the models' own code (`--no-fast-paths`); `extra_summary` adds entries to summary.json."""
    ckpt, model, dataset = load_run(run.path, device)
    calibration = calibrate_loaded(run.checkpoint_for_inference(), ckpt, model, dataset, stream)  # None without BatchNorm
    splits = dict(dataset.splits)
    if not ckpt.train_config.exact_train and ckpt.train_config.val_subset:  # the train figure on a fixed sample
        splits["train"] = splits["train"].sample(ckpt.train_config.val_subset, seed=0)
    metrics = {name: evaluate_split(model, split, desc=name, stream=stream, fast=fast) for name, split in splits.items() if len(split)}
    samples = generate(model, dataset.vocab, ckpt.model_config.block_size, n_samples, seed=0, device=device) if n_samples else []
    summary = {
        "model": ckpt.model_config.name, "n_params": n_params(model), "steps": state.step, "best_step": ckpt.step,
        "train_seconds": state.elapsed, "step0_loss": state.step0_loss, "metrics": metrics,
    }
    if calibration is not None:
        summary["batchnorm_calibration"] = calibration
    summary.update(extra_summary or {})
    atomic_write_json(run.summary, summary)
    stream.write("\n" + format_metrics(metrics) + "\n")
    if len(splits["train"]) < len(dataset.splits["train"]):
        stream.write(f"(train: a fixed sample of {len(splits['train']):,} of {len(dataset.splits['train']):,} items; --exact-train for all)\n")
    if samples:
        stream.write("samples:\n" + "\n".join(f"  {s}" for s in samples) + "\n")
    return RunResult(run.path, state, metrics, samples, n_params(model))


def format_metrics(metrics: dict[str, dict[str, float]]) -> str:
    lines = [f"{'split':<6} {'nll (nats/char)':>16} {'bits/char':>10} {'perplexity':>11} {'chars':>8}"]
    for name, m in metrics.items():
        lines.append(f"{name:<6} {m['nll']:>16.4f} {m['bpc']:>10.4f} {m['perplexity']:>11.3f} {m['n_chars']:>8}")
    return "\n".join(lines)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Checkpoint, torch.nn.Module, Dataset]:
    """The inference checkpoint (best.pt, else last.pt) of a run, its model and its splits."""
    run = RunDir(run_dir)
    ckpt = load_checkpoint(run.checkpoint_for_inference())
    model = load_model(ckpt, device)
    dataset = _dataset_from_run(run, ckpt.vocab, ckpt.model_config.block_size).to(device)
    return ckpt, model, dataset


def calibrate_run(run_dir: str | Path, device: str | torch.device = "cpu", stream: IO[str] | None = None) -> dict[str, Any] | None:
    """Calibrate the BatchNorm statistics of a run's inference checkpoint over its training split and save it back.

    Reports the validation loss before and after (None when the model has no BatchNorm).
    The checkpoint is rewritten atomically, with the figures in its `extra["calibration"]`.
    """
    ckpt, model, dataset = load_run(run_dir, device)
    return calibrate_loaded(RunDir(run_dir).checkpoint_for_inference(), ckpt, model, dataset, stream)


def eval_run(
    run_dir: str | Path, file: str | Path | None = None, skip_unknown: bool = False, device: str = "auto",
    fold: bool = True, stream: IO[str] | None = None,
) -> dict[str, Any]:
    """Exact NLL, bits/char and perplexity on the run's splits, or on `file`.

    Items with characters the model never saw are an error naming them, or with
    `skip_unknown` are left out and counted. With `fold`, BatchNorm is folded into the
    preceding linear layers first (saying so on `stream`, default stderr).
    """
    dev = resolve_device(device)
    ckpt, model, dataset = load_run(run_dir, dev)
    if fold:
        model = fold_for_inference(model, ckpt.model_config.block_size, stream or sys.stderr)
    if file is None:
        return {name: evaluate_split(model, s, desc=name, stream=stream) for name, s in dataset.splits.items() if len(s)}
    longest = ckpt.model_config.block_size - 1
    items = read_items(file, max_len=10**6)
    too_long = next((s for s in items if len(s) > longest), None)
    if too_long is not None:
        raise MakemoreError(f"{file} has an item of {len(too_long)} characters; this model scores items of at most {longest}")
    unknown = ckpt.vocab.unknown(items)
    skipped = 0
    if unknown:
        shown = " ".join(repr(c) for c in sorted(unknown)[:20])
        if not skip_unknown:
            raise MakemoreError(f"{file} has characters the model never saw: {shown} (use --skip-unknown to leave those items out)")
        kept = [s for s in items if not ckpt.vocab.unknown([s])]
        skipped = len(items) - len(kept)
        items = kept
        if not items:
            raise MakemoreError(f"every item of {file} has characters the model never saw")
    split = build_splits(items, [], [], str(file), block_size=ckpt.model_config.block_size, vocab=ckpt.vocab).splits["train"]
    result: dict[str, Any] = {"file": evaluate_split(model, split.to(dev), desc=str(file), stream=stream)}
    if skipped:
        result["skipped"] = {"items": skipped, "characters": sorted(unknown)}
    return result


def sample_run(
    run_dir: str | Path, n: int = 10, temperature: float = 1.0, top_k: int | None = None, prefix: str = "",
    seed: int = 0, device: str = "auto", fold: bool = True, stream: IO[str] | None = None,
) -> list[dict[str, str]]:
    """Generate `n` items in one batch; each is marked 'train', 'val', 'test' or 'new'.

    With `fold`, BatchNorm is folded into the preceding linear layers first (said on `stream`).
    """
    dev = resolve_device(device)
    ckpt, model, dataset = load_run(run_dir, dev)
    if fold:
        model = fold_for_inference(model, ckpt.model_config.block_size, stream or sys.stderr)
    samples = generate(model, ckpt.vocab, ckpt.model_config.block_size, n, temperature, top_k, prefix, seed, dev)
    marks = novelty(samples, dataset.splits)
    return [{"item": s, "in": m} for s, m in zip(samples, marks)]
