"""The `makemore` command line: parses arguments, seeds, calls library functions, nothing else.

Each subcommand is an `add_<name>` function (its arguments) and a `cmd_<name>` function (its
work), listed in `COMMANDS`. A `MakemoreError` becomes one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import errno
import gc
import json
import re
import shlex
import sys
import time
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch

from . import __version__
from .batchnorm import format_calibration
from .config import PRESETS, DataConfig, ModelConfig, SampleConfig, TrainConfig, parse_split
from .callbacks import MonitorTensorBoard, StopAtValLoss
from .diagnostics.checks import run_checks
from .diagnostics.monitor import DEFAULT_EVERY
from .diagnostics.plots import require_matplotlib  # matplotlib itself is imported only to draw
from .diagnostics.records import Records
from .diagnostics.report import exit_code, format_findings, write_report
from .doctor import RECORDS_FILE, REPORT_FILE, MonitorCallback, doctor_run, is_makemore_run, with_flags
from .dist import env_world_size
from .errors import MakemoreError
from .machine import fit_threads
from .manual import format_gradcheck, gradcheck
from .models import MODELS, create_model, get_spec, model_config, model_names, n_params
from .options import AUTO, DATA_OPTIONS, DEFAULT_MODEL, MODEL_OPTIONS, TRAIN_OPTIONS, RunConfig, option_name, run_config
from .progress import logger, setup_logging
from .run import calibrate_run, eval_run, format_metrics, resolve_device, sample_run, train_run
from .speed import SpeedOptions


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), exit code 2, and a suggestion for a
    mistyped choice ("did you mean transformer?")."""

    def error(self, message: str) -> NoReturn:
        m = re.search(r"invalid choice: '?([^' ]+)'? \(choose from (.*)\)", message)
        if m:
            choices = [c.strip(" '\"") for c in m.group(2).split(",")]
            message += _did_you_mean(m.group(1), choices)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _unknown_options(parser: argparse.ArgumentParser, command: str | None, extra: Sequence[str]) -> str:
    """The error for arguments no option took, with the closest option of the command for each."""
    sub = _subparsers(parser).get(command) if command else None
    options = [o for o in (sub or parser)._option_string_actions if o.startswith("--")]
    hints = "".join(_did_you_mean(x.split("=")[0], options) for x in extra if x.startswith("-"))
    return f"unrecognized arguments: {' '.join(extra)}{hints}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


class HELP_FMT(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)' for options that have a real default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default == "" or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be zero or positive, got {v}")
    return v


def _at_least_one(s: str) -> int:
    v = _positive_int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _floats(s: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A field's own parser (`option(parse=...)`) with its ValueError as argparse's one-line error."""
    def convert(s: str) -> Any:
        try:
            return parse(s)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__
    return convert


_split = _argparse_type(parse_split)


def _rows(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected row numbers such as 5 or 1,2, got {s!r}") from None


def _whole(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None


# ---------------------------------------------------------------------------------------------
# the options of train and doctor, generated from the config dataclasses' fields


def shown(value: Any) -> str:
    """A default as a user would type it on the command line."""
    if isinstance(value, tuple):
        return ",".join(shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _field_kwargs(f: dataclasses.Field, hint: Any) -> dict[str, Any]:
    """argparse keyword arguments (type or action, choices) for a config field of type `hint`."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if typing.get_origin(hint) in (types.UnionType, typing.Union) and len(args) == 1 else hint
    if "parse" in f.metadata:
        return {"type": _argparse_type(f.metadata["parse"])}
    if base is bool:
        return {"action": "store_true"}
    if typing.get_origin(base) is tuple:
        return {"type": _floats, "metavar": "X[,X...]"}
    ints = {0: _positive_int, 1: _at_least_one}.get(f.metadata.get("min"), _whole)
    kw: dict[str, Any] = {"type": {int: ints, float: float}.get(base, str)}
    if "choices" in f.metadata:
        kw["choices"] = f.metadata["choices"]
    return kw


def _uses(field_name: str) -> str:
    """Which model families read the field, when not all do (the others refuse it)."""
    readers = [s.name for s in MODELS if field_name in s.reads]
    others = [s.name for s in MODELS if field_name not in s.reads]
    if not others:
        return ""
    return f"; used by {', '.join(readers)}" if len(readers) <= len(others) else f"; not used by {', '.join(others)}"


def add_config_options(p: argparse.ArgumentParser, base: dict[str, Any] | None = None) -> None:
    """Every option of `DataConfig`, `ModelConfig` and `TrainConfig`, with their help from the fields.

    The options default to "not given" (absent from the namespace): `run_config_from_args` then
    applies the defaults in their order, so an option given always wins, wherever it stands.
    """
    base = base or {}
    family_model = {k for s in MODELS for k in s.defaults}
    family_train = {k for s in MODELS for k in s.train}
    groups = (("data", DataConfig), ("model (sizes default to the model's own, see `makemore models`)", ModelConfig),
              ("training", TrainConfig))
    for title, cls in groups:
        g = p.add_argument_group(title)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.metadata.get("cli", True):
                continue
            name = option_name(f)
            kw = _field_kwargs(f, hints[f.name])
            default = base.get(name, f.default)
            if name == "model":
                default_model = base.get("model", DEFAULT_MODEL)
                kw["choices"] = [AUTO, *model_names()]
                note = f"default: {default_model}, or the preset's" + (
                    "; auto picks the family, size and training settings for --time / --steps and the corpus"
                    if default_model == AUTO else "")
            elif cls is ModelConfig and f.name in family_model:
                note = f"default: the model's, else {shown(default)}"
            elif cls is TrainConfig and f.name in family_train:
                note = f"default: the model's, see `makemore models`, else {shown(default)}"
            elif default is None or isinstance(default, bool):
                note = ""
            else:
                note = f"default: {shown(default)}"
            if cls is ModelConfig and name != "model":
                note += _uses(f.name)
            text = f"{f.metadata['help']} ({note.lstrip('; ')})" if note.strip("; ") else f.metadata["help"]
            if name == "input":
                g.add_argument("input", nargs="?", default=argparse.SUPPRESS, help=text)
                continue
            g.add_argument(f"--{name.replace('_', '-')}", dest=name, default=argparse.SUPPRESS, help=text, **kw)
            if name == "norm":
                g.add_argument("--no-norm", dest="norm", action="store_const", const="none", default=argparse.SUPPRESS,
                               help="no normalization layers (--norm none)")
    g = p.add_argument_group("presets")
    g.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a tuned configuration, applied under the options given; 'fast' is the quickest to a "
                        "validation NLL of 2.00 on names.txt (see docs/training.md)")


_CONFIG_OPTIONS = {"input", "model", *DATA_OPTIONS, *MODEL_OPTIONS, *TRAIN_OPTIONS}


def given_options(a: argparse.Namespace) -> dict[str, Any]:
    """The config options given on the command line (generated options are absent when not given)."""
    return {k: v for k, v in vars(a).items() if k in _CONFIG_OPTIONS or (k == "threads" and v is not None)}


def run_config_from_args(a: argparse.Namespace, base: dict[str, Any] | None = None, cores: int | None = None) -> RunConfig:
    """The run the command line describes: defaults, `base`, the family's, the preset's, then the options.

    `base` may name the command's own default model (the doctor's); `cores`: what `--model auto`
    may use (1: no ensemble)."""
    given = given_options(a)
    base = dict(base or {})
    model = given.pop("model", None) or (None if getattr(a, "preset", None) else base.pop("model", None))
    base.pop("model", None)
    return run_config(model, getattr(a, "preset", None), base, cores=cores, **given)


# ---------------------------------------------------------------------------------------------
# subcommands


# what `train --monitor`, `doctor` and `report` exit with (their --help shows it too)
EXIT_CODES = ("exit status: 0 no error found (warnings and notes are printed); 1 a training-health check found an "
              "error; "
              "2 bad input (one sentence on stderr); 130 interrupted")


def _require_matplotlib(what: str) -> None:
    """One sentence, before any work, when the report's pictures cannot be drawn."""
    try:
        require_matplotlib()
    except ImportError:
        raise MakemoreError(f"{what} needs matplotlib to draw the report: pip install 'makemore[plots]'") from None


def report_path(given: str | None, default: Path, overwrite: bool = False, option: str = "--report") -> Path:
    """Where a report goes, chosen before any work: `given` (refused when it exists, unless
    `overwrite`), else `default`, or `default` numbered -2, -3, ... when that exists. An existing
    file is never replaced silently."""
    if given is not None:
        path = Path(given)
        if path.is_dir():
            raise MakemoreError(f"{path} is a directory; {option} takes a file name")
        if path.exists() and not overwrite:
            raise MakemoreError(f"{path} exists; choose another {option} or add --overwrite to replace it")
    else:
        path, i = default, 2
        while path.exists():
            path, i = default.with_name(f"{default.stem}-{i}{default.suffix}"), i + 1
    parent = next((q for q in path.absolute().parents if q.exists()), None)
    if parent is not None and not parent.is_dir():
        raise MakemoreError(f"cannot write {path}: {parent} is a file, not a directory")
    return path


def _print_health(findings: Sequence[Any], report: Path, note: str = "") -> None:
    """The findings as every command prints them, then where the report is."""
    print(format_findings(findings))
    print(f"report: {report}{note}")


def add_train(p: argparse.ArgumentParser) -> None:
    add_config_options(p)
    g = p.add_argument_group("run")
    g.add_argument("--out", default=None, help="run directory (default: runs/MODEL-TIME)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files (with --monitor, the training-health records too)")
    g.add_argument("--samples", type=int, default=10, help="items to sample at the end")
    g.add_argument("--monitor", action="store_true",
                   help="record training health; prints the findings, writes report.html into the run directory "
                        "and exits with 1 when a finding is an error")
    g.add_argument("--monitor-every", type=_at_least_one, default=None,
                   help="steps between full recordings (default 250); implies --monitor (under torchrun, whose "
                        "own --monitor-interval takes --monitor for itself, write --monitor-every N)")
    add_speed_options(p)
    p.epilog = ("exit status: 0 done; 1 with --monitor, a training-health check found an error (warnings and notes "
                "are printed); 2 bad input (one sentence on stderr); 130 interrupted")


def add_speed_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("speed (see docs/speed.md; several processes: torchrun --nproc_per_node=K -m makemore train ...)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model and its loss (cached on disk)")
    g.add_argument("--dtype", choices=["float32", "bf16"], default="float32", help="bf16: autocast on CUDA")
    g.add_argument("--cuda-graph", choices=["auto", "on", "off"], default="auto",
                   help="capture the whole training step in a CUDA graph (auto: on CUDA where possible)")
    g.add_argument("--no-fast-paths", action="store_true",
                   help="train through the models' reference code only: no written-out RNN/GRU, no positions-with-a-target "
                        "losses, PyTorch's own AdamW (for debugging; the fast paths compute the same)")
    g.add_argument("--stop-at-val-loss", type=float, default=None, help="stop once the validation loss reaches this")
    g.add_argument("--threads", type=_at_least_one, default=None,
                   help="CPU threads per process (default: the cores the machine's load leaves free; 1 is often "
                        "faster for these small models and much faster on a busy machine)")


# what `--resume` may change: the run's other settings come from its checkpoint
_RESUME_OPTIONS = {"steps", "time", "device", "threads"}


def _resume_config(a: argparse.Namespace) -> RunConfig:
    """--resume: the configs come from the checkpoint; only the length of the run and the device may change."""
    given = given_options(a)
    fixed = sorted(set(given) - _RESUME_OPTIONS) + (["preset"] if a.preset else [])
    if fixed:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in fixed)
        raise MakemoreError(f"--resume continues the run with its own settings; {flags} cannot be changed "
                            "(only --steps, --time, --device and --threads can)")
    train = TrainConfig(steps=given.get("steps"), time=given.get("time"), device=given.get("device", TrainConfig.device))
    return RunConfig(DataConfig(), ModelConfig(), train, given.get("threads"))


def cmd_train(a: argparse.Namespace) -> int:
    if a.resume and not a.out:
        raise MakemoreError("--resume needs --out RUN_DIR, the run to continue")
    # what an ensemble does not combine with (makemore.run.train_members): auto then trains one model
    one_model = (a.monitor or a.monitor_every is not None or a.tensorboard or a.stop_at_val_loss is not None
                 or env_world_size() > 1)
    cfg = _resume_config(a) if a.resume else run_config_from_args(a, cores=1 if one_model else None)
    out = a.out or f"runs/{cfg.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    extra: tuple[object, ...] = ()
    monitor = None
    a.monitor = a.monitor or a.monitor_every is not None
    if a.monitor:
        _require_matplotlib("--monitor")
        monitor = MonitorCallback(a.monitor_every or DEFAULT_EVERY, out_dir=out, meta={"command": a.command_line})
        if a.tensorboard:
            extra += (MonitorTensorBoard(monitor, Path(out) / "tensorboard"),)
    if a.stop_at_val_loss is not None:
        extra += (StopAtValLoss(a.stop_at_val_loss),)
    speed = SpeedOptions(compile=a.compile, cuda_graph=a.cuda_graph, dtype=a.dtype, fast_paths=not a.no_fast_paths)
    _threads(cfg.threads)
    result = train_run(cfg.data, cfg.model, cfg.train, out, resume=a.resume, tensorboard=a.tensorboard,
                       n_samples=a.samples, extra_callbacks=extra, speed=speed, monitor=monitor, auto=cfg.auto)
    print(f"run directory: {result.run_dir}")
    if monitor is not None and monitor.monitor is not None:  # closed-form models have no training to judge
        _print_health(monitor.findings, result.run_dir / "report.html")
        return exit_code(monitor.findings)
    return 0


def _threads(requested: int | None) -> None:
    """PyTorch's CPU threads: the user's choice, else fitted to the machine's load (said when fewer)."""
    _, note = fit_threads(requested)
    if note:
        logger.info(note)


def add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory made by `makemore train`")
    p.add_argument("--file", default=None, help="evaluate on this file of lines instead of the run's splits")
    p.add_argument("--skip-unknown", action="store_true", help="leave out items with characters the model never saw")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--no-fold", action="store_true", help="keep BatchNorm layers instead of folding them into the linear layers")


def cmd_eval(a: argparse.Namespace) -> int:
    result = eval_run(a.run_dir, a.file, a.skip_unknown, a.device, fold=not a.no_fold)
    if a.json:
        print(json.dumps(result))
        return 0
    skipped = result.pop("skipped", None)
    print(format_metrics(result))
    if skipped:
        chars = " ".join(repr(c) for c in skipped["characters"])
        print(f"skipped {skipped['items']} item(s) with characters the model never saw: {chars}")
    return 0


def add_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory made by `makemore train`")
    hints = typing.get_type_hints(SampleConfig)
    for f in dataclasses.fields(SampleConfig):  # -n, --temperature, --top-k, --prefix, --seed
        flag = "-n" if f.name == "n" else f"--{f.name.replace('_', '-')}"
        p.add_argument(flag, dest=f.name, default=f.default, help=f.metadata["help"], **_field_kwargs(f, hints[f.name]))
    p.add_argument("--json", action="store_true", help="print a JSON list of {item, in}")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--no-fold", action="store_true", help="keep BatchNorm layers instead of folding them into the linear layers")


def cmd_sample(a: argparse.Namespace) -> int:
    cfg = SampleConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(SampleConfig)})
    rows = sample_run(a.run_dir, cfg.n, cfg.temperature, cfg.top_k, cfg.prefix, cfg.seed, a.device, fold=not a.no_fold)
    if a.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        for r in rows:
            print(r["item"] if r["in"] == "new" else f"{r['item']}  ({r['in']})")
    new = sum(r["in"] == "new" for r in rows)
    print(f"novelty: {new}/{len(rows)} new ({100 * new / len(rows):.0f}%)", file=sys.stderr)
    return 0


def add_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vocab-size", type=int, default=27, help="vocabulary size used for the parameter counts")
    p.add_argument("--block-size", type=int, default=16, help="positions used for the parameter counts")


# the training settings `makemore models` shows for each family (its own, else TrainConfig's)
_TRAIN_SHOWN = ("steps", "batch_size", "optimizer", "lr", "weight_decay", "schedule", "warmup")


def cmd_models(a: argparse.Namespace) -> int:
    """Each family: its parameter count, its default sizes and training settings as options, what it is."""
    def flags(values: dict[str, object]) -> str:
        return " ".join(f"--{k.replace('_', '-')} {shown(v)}" for k, v in sorted(values.items()))

    print(f"model families (parameters at vocabulary {a.vocab_size}, block {a.block_size}); any option below can be "
          "given to `makemore train`")
    for name in model_names():
        spec = get_spec(name)
        count = n_params(create_model(model_config(name, vocab_size=a.vocab_size, block_size=a.block_size)))
        print(f"\n{name}: {count:,} parameters. {spec.description}")
        print(f"  sizes:    {flags(spec.defaults) or '(none)'}")
        resolved = run_config(name).train  # what `makemore train --model NAME` trains with
        train = {k: getattr(resolved, k) for k in _TRAIN_SHOWN}
        print(f"  training: {flags(train) if count else 'fitted in closed form (counts), no optimizer'}")
    return 0


def add_gradcheck(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, default=32, help="examples in the batch")
    p.add_argument("--n-embd", type=int, default=10, help="embedding width")
    p.add_argument("--n-hidden", type=int, default=64, help="hidden width")
    p.add_argument("--context", type=int, default=3, help="characters of context")
    p.add_argument("--seed", type=int, default=42, help="seed of the parameters and the batch")


def cmd_gradcheck(a: argparse.Namespace) -> int:
    if a.batch_size < 2:  # BatchNorm needs two examples for a variance
        raise MakemoreError(f"--batch-size must be at least 2, got {a.batch_size}")
    for name, v in (("--n-embd", a.n_embd), ("--n-hidden", a.n_hidden), ("--context", a.context)):
        if v < 1:
            raise MakemoreError(f"{name} must be at least 1, got {v}")
    tol = 1e-8
    rows = gradcheck(a.batch_size, 27, a.context, a.n_embd, a.n_hidden, a.seed)
    print("hand-written backward vs autograd, float64, the lectures' MLP with BatchNorm")
    print(format_gradcheck(rows, tol))
    bad = [r.name for r in rows if not r.max_abs_diff < tol]
    print(f"{len(rows) - len(bad)}/{len(rows)} tensors agree to {tol:g}" + (f"; FAILED: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


def add_calibrate(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory made by `makemore train`")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def cmd_calibrate(a: argparse.Namespace) -> int:
    report = calibrate_run(a.run_dir, resolve_device(a.device))
    if report is None:
        raise MakemoreError(f"the model in {a.run_dir} has no BatchNorm layers to calibrate")
    print(format_calibration(report))
    return 0


# the doctor's default run: long enough for the checks to see a trend, short enough to wait for
DOCTOR_BASE = {"model": "transformer", "steps": 300}


def add_doctor(p: argparse.ArgumentParser) -> None:
    add_config_options(p, base=DOCTOR_BASE)
    g = p.add_argument_group("doctor")
    g.add_argument("--every", type=_at_least_one, default=None, help="steps between full recordings (default: steps/40)")
    g.add_argument("--window", type=_at_least_one, default=5, help="recordings a dead-unit window spans")
    g.add_argument("--report", default=None,
                   help="where to write the HTML report (default: doctor-report.html, numbered -2, -3, ... "
                        "when that exists; an existing --report file is refused unless --overwrite)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --report file")
    g.add_argument("--threads", type=_at_least_one, default=None,
                   help="CPU threads (default: the cores the machine's load leaves free)")
    p.epilog = EXIT_CODES
    g.add_argument("--records", default=None, help="also save the recorded numbers as JSON here (for `makemore report`)")
    g.add_argument("--json", action="store_true", help="print the findings as a JSON list")


def cmd_doctor(a: argparse.Namespace) -> int:
    """Train briefly with the monitor on; exit 1 when a finding is an error, else 0."""
    _require_matplotlib("the doctor")
    report = report_path(a.report, Path("doctor-report.html"), a.overwrite)
    cfg = run_config_from_args(a, base=DOCTOR_BASE, cores=1)  # the doctor watches one model
    if cfg.train.members > 1:
        raise MakemoreError("the doctor watches one model; --members trains an ensemble (makemore train --members K)")
    _threads(cfg.threads)
    result = doctor_run(cfg.data, cfg.model, cfg.train, every=a.every, window=a.window, stream=sys.stderr)
    result.records.meta["command"] = a.command_line
    write_report(result.records, report, result.findings)
    if a.records:
        result.records.save(a.records)
    if a.json:
        print(json.dumps([f.to_dict() for f in result.findings]))
    else:
        print(f"doctor: {cfg.model.name}, {result.steps} steps{' (stopped: the loss is not finite)' if result.diverged else ''}, "
              f"recorded every {result.records.every} steps")
        _print_health(result.findings, report)
    return exit_code(result.findings)


def add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory trained with --monitor (or a diagnostics JSON file)")
    p.add_argument("--out", default=None,
                   help="where to write the report (default: RUN_DIR/report.html, the run's own report, replaced; "
                        "an existing --out file is refused unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.epilog = EXIT_CODES


def cmd_report(a: argparse.Namespace) -> int:
    """Regenerate the training-health report from the records saved by `train --monitor`."""
    _require_matplotlib("makemore report")
    src = Path(a.run_dir)
    path = src / RECORDS_FILE if src.is_dir() else src
    if not path.is_file():
        raise MakemoreError(f"{path} does not exist; train with --monitor to record training health")
    try:
        records = Records.load(path)
    except (ValueError, KeyError, TypeError) as e:
        raise MakemoreError(f"{path} is not a readable diagnostics file ({e})") from None
    out = report_path(a.out, path.parent / REPORT_FILE, a.overwrite, "--out") if a.out else path.parent / REPORT_FILE
    replaced = " (replaced the previous one)" if out.exists() else ""
    findings = run_checks(records)
    if is_makemore_run(records):
        findings = with_flags(findings)
    write_report(records, out, findings)
    _print_health(findings, out, replaced)
    return exit_code(findings)


def add_lab(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", default=None, help="the experiment (see --list)")
    p.add_argument("input", nargs="?", default=None, help="text file, one item per line (default: built-in US first names)")
    p.add_argument("--list", action="store_true", help="list the experiments with their default sizes")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="size: training steps per configuration, or timing repeats (default: the experiment's, see --list)")
    p.add_argument("--quick", action="store_true", help="the small size the tests use")
    p.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed of initialization, batches and random inputs")
    p.add_argument("--split", type=_split, default="lecture",
                   help="'lecture' (the lectures' split, default) or train/val/test fractions such as 0.8,0.1,0.1")
    p.add_argument("--batches", choices=["examples", "items"], default="examples",
                   help="the lectures' 32 independent (context, next) examples per step (default), or whole items")
    p.add_argument("--rows", type=_rows, default=None,
                   help="only these rows of the table, e.g. 5 or 1,2 (experiments with one training run per row)")
    p.add_argument("--out", default=None, help="directory for index.html, the PNGs and results.json (default: runs/lab-NAME)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (the lectures' models are too small to gain from more)")
    p.add_argument("--device", default="cpu", help="auto, cpu or cuda (training experiments; timings run on the CPU)")


def cmd_lab(a: argparse.Namespace) -> int:
    _require_matplotlib("makemore lab")
    from .lab import EXPERIMENTS, LabSettings, get_experiment, run_experiment  # matplotlib, optional

    if a.list:
        for e in EXPERIMENTS.values():
            print(f"{e.name:<20} {e.description} (default --steps {e.steps:,}: {e.steps_means})")
        return 0
    if a.name is None:
        raise MakemoreError("name an experiment, e.g. `makemore lab init-ladder` (see `makemore lab --list`)")
    get_experiment(a.name)  # an unknown name fails before anything is read or written
    if a.threads < 1:
        raise MakemoreError(f"--threads must be at least 1, got {a.threads}")
    torch.set_num_threads(a.threads)
    out = Path(a.out or f"runs/lab-{a.name}")
    settings = LabSettings(input=a.input, steps=a.steps, seed=a.seed, out=out, quick=a.quick,
                           device=str(resolve_device(a.device)), split=a.split, batches=a.batches,
                           rows=a.rows)
    run_experiment(a.name, settings)
    return 0


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "train": ("train a model on a file of lines (or the built-in names)", add_train, cmd_train),
    "eval": ("exact loss of a trained run on its splits or a file", add_eval, cmd_eval),
    "sample": ("generate new items from a trained run", add_sample, cmd_sample),
    "models": ("list the model zoo with parameter counts", add_models, cmd_models),
    "gradcheck": ("check the hand-written backward pass against autograd, tensor by tensor", add_gradcheck, cmd_gradcheck),
    "calibrate": ("recompute a run's BatchNorm statistics exactly over its training split", add_calibrate, cmd_calibrate),
    "doctor": ("train briefly with the training-health monitor, print what is wrong and how to fix it", add_doctor, cmd_doctor),
    "report": ("regenerate the training-health report of a run trained with --monitor", add_report, cmd_report),
    "lab": ("run one of the lectures' experiments: a table, pictures and a page (--list)", add_lab, cmd_lab),
}


def build_parser() -> Parser:
    parser = Parser(prog="makemore", description="Make more of the items in a file: character-level language models.")
    parser.add_argument("--version", action="version", version=f"makemore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (help_, add, _) in COMMANDS.items():
        add(sub.add_parser(name, help=help_, description=help_, formatter_class=HELP_FMT))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit code: 0 done, 1 a training-health check found an error (doctor,
    report, train --monitor), 2 bad input (one sentence on stderr), 130 interrupted."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            _subparsers(parser).get(args.command, parser).error(_unknown_options(parser, args.command, extra))
    except SystemExit as e:  # --help, --version, or a bad option (already reported in one line)
        return int(e.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    args.command_line = shlex.join(["makemore", *argv])
    setup_logging()
    try:
        return COMMANDS[args.command][2](args)
    except MakemoreError as e:
        print(f"makemore {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None:  # not about a path the user gave
            raise
        print(f"makemore {args.command}: error: {_path_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM after a last checkpoint (makemore.signals)
        return 128 + getattr(e, "signum", 2)


def run_command() -> NoReturn:
    """The `makemore` command and `python -m makemore`: `main`, then exit with its code."""
    code = main()
    # every object PyTorch made lives until exit: frozen, they are skipped by the interpreter's
    # last garbage collections instead of walked one by one
    gc.freeze()
    sys.exit(code)


def _path_error(e: OSError) -> str:
    """One sentence for a path that cannot be read or written."""
    why = {
        errno.ENOTDIR: "a part of that path is a file, not a directory",
        errno.EEXIST: "it is a file where a directory is needed",
        errno.EISDIR: "that is a directory, not a file",
        errno.ENOENT: "no such file or directory",
        errno.EACCES: "permission denied",
        errno.EROFS: "the file system is read-only",
        errno.ENOSPC: "no space left on the device",
    }.get(e.errno or 0, (e.strerror or str(e)).lower())
    return f"cannot use {e.filename}: {why}"
