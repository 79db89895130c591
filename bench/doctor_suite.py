"""How good is `makemore doctor`? Faulty configurations (one mistake each) and healthy ones.

    python bench/doctor_suite.py                      # every case, 300 steps each, as `makemore doctor`
    python bench/doctor_suite.py --jobs 8             # eight cases at a time (one thread each)
    python bench/doctor_suite.py --quick              # a few cases, fewer steps: shows that it works

Each case is a `makemore doctor` command line (parsed by the real CLI parser, so the numbers are
what a user gets), trained on the built-in corpus unless --input is given. For each case the
table gives the codes it was built to show, the codes found (warning or error; notes in
brackets), and the step of the recording at which the expected finding first appeared (the
checks re-run on the records as they stood at each recording step). Then:

    recall     faulty cases whose expected codes were all found (warning or above)
    precision  findings (warning or above, over all cases) that were expected or an accepted
               consequence of the case's mistake (e.g. a diverging loss when the rate is 100x)
    healthy    healthy cases with no finding above "info"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import torch

from makemore.cli import build_parser, data_config_from_args, model_config_from_args, train_config_from_args


@dataclass
class Case:
    name: str
    args: list[str]                   # `makemore doctor` options (the lr may be a multiple, see lr_times)
    expect: tuple[str, ...] = ()      # codes it must show (empty: a healthy case)
    allow: tuple[str, ...] = ()       # consequences of the same mistake that are not false alarms
    expect_any: tuple[str, ...] = ()  # it must show at least one of these (same diagnosis, two symptoms)
    lr_times: float | None = None     # multiply the model's default learning rate by this
    quick: bool = False               # part of --quick
    note: str = ""


LR_HIGH = ("update.too_large", "loss.diverging")  # either says: lower the learning rate

FAULTY = [
    Case("mlp output layer confidently wrong", ["--model", "mlp", "--init-output-scale", "10"], ("init.loss_too_high",),
         quick=True, note="output weights 100x the healthy scale: the lecture's step-0 loss of 27"),
    Case("transformer output confidently wrong", ["--model", "transformer", "--init-output-scale", "10"], ("init.loss_too_high",),
         ("act.dead_units",)),
    Case("lstm output confidently wrong", ["--model", "lstm", "--init-output-scale", "30"], ("init.loss_too_high",)),
    Case("mlp tanh saturated at init", ["--model", "mlp", "--init-gain", "5"], ("act.saturated",),
         ("act.dead_units", "grad.vanishing"), quick=True, note="gain 5 instead of 5/3"),
    Case("bow tanh saturated at init", ["--model", "bow", "--init-gain", "6"], ("act.saturated",), ("act.dead_units", "grad.vanishing")),
    Case("deep tanh mlp, small gain, no norm", ["--model", "mlp", "--n-layer", "8", "--n-hidden", "128", "--init-gain", "0.5", "--no-norm"],
         ("grad.vanishing",), ("loss.plateau", "act.dead_units", "act.saturated"), note="activations and gradients shrink 2x per layer"),
    Case("deep saturated tanh mlp, no norm", ["--model", "mlp", "--n-layer", "6", "--n-hidden", "128", "--init-gain", "5", "--no-norm"],
         ("act.saturated",), ("grad.vanishing", "act.dead_units")),
    Case("dead ReLUs from a negative bias", ["--model", "mlp", "--activation", "relu", "--bias-init", "-6"], ("act.dead_units",),
         ("grad.vanishing", "loss.plateau", "update.too_small"), quick=True),
    Case("exploding gradients, deep relu mlp", ["--model", "mlp", "--activation", "relu", "--n-layer", "8", "--n-hidden", "128",
         "--init-gain", "3", "--no-norm", "--grad-clip", "0"], ("grad.exploding",),
         ("update.too_large", "loss.diverging", "act.dead_units", "init.loss_too_high")),
    Case("mlp learning rate 10x too high", ["--model", "mlp"], (), ("act.dead_units", "act.saturated", "update.too_large"),
         expect_any=LR_HIGH, lr_times=10),
    Case("mlp learning rate 100x too high", ["--model", "mlp", "--grad-clip", "0"], (),
         ("grad.exploding", "act.saturated", "act.dead_units", "loss.plateau", "grad.vanishing"), expect_any=LR_HIGH, lr_times=100),
    Case("transformer learning rate 100x too high, no warm-up", ["--model", "transformer", "--warmup", "0"], (),
         ("grad.exploding", "act.dead_units", "loss.plateau"), expect_any=LR_HIGH, lr_times=100),
    Case("gru learning rate 100x too high", ["--model", "gru"], (),
         ("act.saturated", "act.dead_units", "loss.plateau"), expect_any=LR_HIGH, lr_times=100),
    Case("mlp learning rate 100x too low", ["--model", "mlp"], ("update.too_small",), ("loss.plateau",), lr_times=0.01, quick=True),
    Case("rnn learning rate 1000x too low", ["--model", "rnn"], ("update.too_small",), ("loss.plateau",), lr_times=0.001),
    Case("sgd learning rate far too low", ["--model", "mlp", "--optimizer", "sgd", "--lr", "1e-4"], ("update.too_small",), ("loss.plateau",)),
    Case("sgd learning rate far too high, no clipping", ["--model", "mlp", "--optimizer", "sgd", "--lr", "50", "--grad-clip", "0"],
         ("loss.diverging",), ("grad.exploding", "update.too_large", "act.saturated", "act.dead_units")),
    Case("BatchNorm statistics never calibrate", ["--model", "mlp", "--norm", "batch", "--bn-momentum", "0.001"],
         ("norm.batch_stats_mismatch",), quick=True),
    Case("wavenet BatchNorm statistics never calibrate", ["--model", "wavenet", "--bn-momentum", "0.001"], ("norm.batch_stats_mismatch",)),
    Case("bias before BatchNorm", ["--model", "mlp", "--norm", "batch", "--hidden-bias"], ("norm.bias_before_batchnorm",), quick=True),
    Case("wavenet bias before BatchNorm", ["--model", "wavenet", "--hidden-bias"], ("norm.bias_before_batchnorm",)),
]

HEALTHY = [
    Case("bigram", ["--model", "bigram"], quick=True),
    Case("counts (closed form)", ["--model", "counts"]),
    Case("mlp", ["--model", "mlp"], quick=True),
    Case("mlp + BatchNorm", ["--model", "mlp", "--norm", "batch"]),
    Case("mlp relu", ["--model", "mlp", "--activation", "relu"]),
    Case("mlp + LayerNorm, 4 layers", ["--model", "mlp", "--norm", "layer", "--n-layer", "4"]),
    Case("wavenet", ["--model", "wavenet"]),
    Case("rnn", ["--model", "rnn"]),
    Case("gru", ["--model", "gru"]),
    Case("lstm", ["--model", "lstm"]),
    Case("bow defaults", ["--model", "bow"]),
    Case("transformer", ["--model", "transformer"]),
    Case("mlp sgd", ["--model", "mlp", "--optimizer", "sgd", "--lr", "0.05"]),
]


@dataclass
class Outcome:
    case: str
    expect: list[str]
    found: list[str]                  # warning or above
    notes: list[str]                  # info
    first_step: dict[str, int | None] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    command: str = ""
    error: str | None = None
    vitals: dict[str, float | None] = field(default_factory=dict)


def vitals(r) -> dict[str, float | None]:
    """The numbers the thresholds are set against (for calibrating them; in the --json output)."""
    import math

    from makemore.diagnostics.checks import _depth_chain, _depth_ratio, moving_average, update_log_ratios

    out: dict[str, float | None] = {}
    if r.losses and r.n_classes:
        out["loss0_over_lnV"] = r.losses[0] / math.log(r.n_classes)
    if r.steps:
        sats = [a.saturated for a in r.steps[0].acts.values() if a.saturated is not None]
        out["sat_init_max"] = max(sats) if sats else None
        ups = [statistics.median(u) for s in r.steps if (u := update_log_ratios(s, r.matrices))]
        out["update_median"] = statistics.median(ups) if ups else None
        out["update_peak"] = max(ups) if ups else None
        chain = _depth_chain(r)
        if len(chain) >= 2:
            rs = [x for s in r.steps if (x := _depth_ratio(s, chain[0].name, chain[-1].name)) is not None]
            out["depth_init"], out["depth_median"] = (rs[0], statistics.median(rs)) if rs else (None, None)
        mm = [n.mismatch for s in r.steps if s.step >= 50 for n in s.norms.values()]
        out["bn_mismatch_max_after_50"] = max(mm) if mm else None
    finite = [x for x in r.losses if math.isfinite(x)]
    if len(finite) >= 20:
        w = max(5, len(finite) // 20)
        sm = moving_average(finite, w)[w - 1 :]
        out["loss_start"], out["loss_best"], out["loss_end"] = sm[0], min(sm), sm[-1]
    return out


def command_line(case: Case, common: list[str]) -> list[str]:
    argv = ["doctor", *common, *case.args]
    if case.lr_times is not None:
        base = train_config_from_args(build_parser().parse_args(argv)).lr
        argv += ["--lr", f"{base * case.lr_times:g}"]
    return argv


def run_case(case: Case, common: list[str], threads: int) -> Outcome:
    from makemore.diagnostics.checks import run_checks
    from makemore.diagnostics.doctor import doctor_run

    torch.set_num_threads(threads)
    argv = command_line(case, common)
    a = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    out = Outcome(case.name, list(case.expect) + [" | ".join(case.expect_any)] * bool(case.expect_any), [], [],
                  command="makemore " + " ".join(argv))
    try:
        res = doctor_run(data_config_from_args(a), model_config_from_args(a), train_config_from_args(a, default_steps=300),
                         every=a.every, window=a.window)
    except Exception as e:  # a case that crashes is reported, not fatal to the suite
        out.error = f"{type(e).__name__}: {e}"
        return out
    out.seconds = time.perf_counter() - t0
    out.steps = res.steps
    out.vitals = vitals(res.records)
    out.found = sorted({f.code for f in res.findings if f.severity != "info"})
    out.notes = sorted({f.code for f in res.findings if f.severity == "info"} - set(out.found))
    for code in case.expect + case.expect_any:  # the first recording step at which the finding stood
        out.first_step[code] = next(
            (s.step for s in res.records.steps
             if any(f.code == code and f.severity != "info" for f in run_checks(res.records.upto(s.step)))), None)
    return out


def detected(c: Case, o: Outcome) -> bool:
    return set(c.expect) <= set(o.found) and (not c.expect_any or bool(set(c.expect_any) & set(o.found)))


def summarize(cases: list[Case], outs: list[Outcome]) -> dict[str, float]:
    faulty = [(c, o) for c, o in zip(cases, outs) if c.expect or c.expect_any]
    healthy = [(c, o) for c, o in zip(cases, outs) if not (c.expect or c.expect_any)]
    hits = sum(1 for c, o in faulty if not o.error and detected(c, o))
    reported = [(c, code) for c, o in zip(cases, outs) for code in o.found]
    good = sum(1 for c, code in reported if code in c.expect or code in c.allow or code in c.expect_any)
    clean = sum(1 for c, o in healthy if not o.error and not o.found)
    return {
        "faulty": len(faulty), "recall": hits / len(faulty) if faulty else float("nan"),
        "findings": len(reported), "precision": good / len(reported) if reported else float("nan"),
        "healthy": len(healthy), "healthy_clean": clean / len(healthy) if healthy else float("nan"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default=None, help="file of lines (default: the built-in corpus)")
    p.add_argument("--steps", type=int, default=300, help="training steps per case (makemore doctor's default)")
    p.add_argument("--jobs", type=int, default=1, help="cases run at a time (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per case")
    p.add_argument("--quick", action="store_true", help="a few cases and 150 steps")
    p.add_argument("--only", default=None, help="run the cases whose name contains this")
    p.add_argument("--json", default=None, help="also write the outcomes here")
    p.add_argument("--seeds", type=int, default=1, help="run every case with this many seeds (1337, 1338, ...)")
    a = p.parse_args()
    steps = 150 if a.quick else a.steps
    cases = [c for c in FAULTY + HEALTHY if (c.quick or not a.quick) and (a.only is None or a.only in c.name)]
    if a.seeds > 1:
        cases = [dataclasses.replace(c, name=f"{c.name} (seed {1337 + k})", args=[*c.args, "--seed", str(1337 + k)])
                 for c in cases for k in range(a.seeds)]
    common = ([a.input] if a.input else []) + ["--steps", str(steps), "--device", "cpu", "--report", os.devnull]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        outs = list(pool.map(run_case, cases, [common] * len(cases), [a.threads] * len(cases), chunksize=1))
    wall = time.perf_counter() - t0

    print(f"# doctor suite: {len(cases)} cases, {steps} steps each, {'built-in corpus' if not a.input else a.input}")
    print(f"# {platform.platform()}, {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"torch {torch.__version__}, {a.jobs} job(s) x {a.threads} thread(s), {wall:.0f} s\n")
    print("| case | expected | found (notes) | first at step | ok |")
    print("|---|---|---|---|---|")
    for c, o in zip(cases, outs):
        if o.error:
            print(f"| {c.name} | {', '.join(c.expect) or '-'} | error: {o.error} | | no |")
            continue
        found = ", ".join(o.found) or "-"
        if o.notes:
            found += f" ({', '.join(o.notes)})"
        steps_seen = [o.first_step[k] for k in c.expect + c.expect_any if o.first_step.get(k) is not None]
        first = str(min(steps_seen)) if steps_seen else "-"
        faulty = bool(c.expect or c.expect_any)
        ok = detected(c, o) if faulty else not o.found
        extra = [k for k in o.found if k not in c.expect and k not in c.allow and k not in c.expect_any]
        expected = ", ".join([*c.expect, *([" or ".join(c.expect_any)] if c.expect_any else [])]) or "healthy"
        print(f"| {c.name} | {expected} | {found} | {first} | {'yes' if ok and not extra else ('yes*' if ok else 'NO')} |")
    s = summarize(cases, outs)
    firsts = [min(v) for o in outs if (v := [x for x in o.first_step.values() if x is not None])]
    print(f"\nrecall {s['recall']:.2f} ({s['faulty']} faulty cases) | precision {s['precision']:.2f} "
          f"({s['findings']} warnings/errors) | healthy with nothing above info {s['healthy_clean']:.2f} "
          f"({s['healthy']} healthy cases) | median first step {statistics.median(firsts) if firsts else float('nan'):.0f}")
    print("yes* = expected codes found, plus an unexpected one (counted against precision)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": s, "outcomes": [o.__dict__ for o in outs]}, f, indent=1)
    sys.exit(0 if s["recall"] >= 0.95 and s["healthy_clean"] >= 0.95 else 1)


if __name__ == "__main__":
    main()
