"""How well does the doctor judge? Healthy and faulty training runs, in a tuning set and a held-out set.

    python bench/doctor_suite.py --jobs 2                  # both sets (tuning, held-out), a few minutes
    python bench/doctor_suite.py --set heldout --jobs 2    # one set: tuning | heldout | makemore
    python bench/doctor_suite.py --set makemore --jobs 2   # `makemore doctor` on the project's own models
    python bench/doctor_suite.py --smoke                   # every case for a few steps: does it run?

The sets:
    tuning    cases the thresholds may be set on (doctor_cases_tuning.py)
    heldout   cases never tuned on (doctor_cases_heldout.py): models in the styles of other
              codebases, trained with their own optimizers and loops
    makemore  `makemore doctor` command lines on this project's models (also tuned on)

Each case trains a model with its loop and a `Monitor`, then runs the checks. Per set:
    recall          faulty cases whose expected codes were all found (warning or error; for cases
                    with alternatives, at least one of them)
    precision       strict: warnings and errors (one per code per case) whose code is expected for
                    that case, over all of them; any other code is a false alarm, on any case
    healthy quiet   healthy cases with no warning or error
    first at step   for the expected codes that were found: the first recording step at which the
                    finding stood (the checks re-run on the records as they were then)
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from doctor_cases_common import LR_HIGH, Case  # noqa: E402

from makemore.diagnostics import Records, run_checks  # noqa: E402


def load_set(name: str) -> list[Case]:
    if name == "heldout":
        import doctor_cases_heldout

        return list(doctor_cases_heldout.CASES)
    if name == "tuning":
        import doctor_cases_tuning

        return list(doctor_cases_tuning.CASES)
    if name == "makemore":
        return makemore_cases()
    raise SystemExit(f"unknown set {name!r}: tuning, heldout or makemore")


# ---------------------------------------------------------------------------------------------
# the makemore set: `makemore doctor` command lines


def makemore_doctor(args: list[str], lr_times: float | None, steps: int, seed: int) -> Records:
    from makemore.cli import build_parser, run_config_from_args
    from makemore.doctor import doctor_run

    argv = ["doctor", "--steps", str(steps), "--device", "cpu", "--seed", str(seed), *args]
    if lr_times is not None:
        base = run_config_from_args(build_parser().parse_args(argv)).train.lr
        argv += ["--lr", f"{base * lr_times:g}"]
    cfg = run_config_from_args(build_parser().parse_args(argv))
    return doctor_run(cfg.data, cfg.model, cfg.train).records


def _mm(name: str, args: list[str], expect: tuple[str, ...] = (), expect_any: tuple[str, ...] = (),
        lr_times: float | None = None) -> Case:
    return Case(name, functools.partial(makemore_doctor, args, lr_times), expect, expect_any, steps=300)


def makemore_cases() -> list[Case]:
    return [
        _mm("mlp output layer confidently wrong", ["--model", "mlp", "--init-output-scale", "10"], ("init.loss_too_high",)),
        _mm("transformer output confidently wrong", ["--model", "transformer", "--init-output-scale", "10"], ("init.loss_too_high",)),
        _mm("lstm output confidently wrong", ["--model", "lstm", "--init-output-scale", "30"], ("init.loss_too_high",)),
        _mm("mlp tanh saturated at init", ["--model", "mlp", "--init-gain", "5"], ("act.saturated",)),
        _mm("bow tanh saturated at init", ["--model", "bow", "--init-gain", "6"], ("act.saturated",)),
        _mm("deep tanh mlp, small gain, no norm", ["--model", "mlp", "--n-layer", "8", "--n-hidden", "128", "--init-gain", "0.5",
            "--no-norm"], ("grad.vanishing",)),
        _mm("deep saturated tanh mlp, no norm", ["--model", "mlp", "--n-layer", "6", "--n-hidden", "128", "--init-gain", "5",
            "--no-norm"], ("act.saturated",)),
        _mm("dead ReLUs from a negative bias", ["--model", "mlp", "--activation", "relu", "--bias-init", "-6"], ("act.dead_units",)),
        _mm("exploding gradients, deep relu mlp", ["--model", "mlp", "--activation", "relu", "--n-layer", "8", "--n-hidden", "128",
            "--init-gain", "3", "--no-norm", "--grad-clip", "0"], ("grad.exploding",)),
        _mm("mlp learning rate 10x too high", ["--model", "mlp"], expect_any=LR_HIGH, lr_times=10),
        _mm("mlp learning rate 100x too high", ["--model", "mlp", "--grad-clip", "0"], expect_any=LR_HIGH, lr_times=100),
        _mm("transformer learning rate 100x too high, no warm-up", ["--model", "transformer", "--warmup", "0"], expect_any=LR_HIGH,
            lr_times=100),
        _mm("gru learning rate 100x too high", ["--model", "gru"], expect_any=LR_HIGH, lr_times=100),
        _mm("mlp learning rate 100x too low", ["--model", "mlp"], ("update.too_small",), lr_times=0.01),
        _mm("rnn learning rate 1000x too low", ["--model", "rnn"], ("update.too_small",), lr_times=0.001),
        _mm("sgd learning rate far too low", ["--model", "mlp", "--optimizer", "sgd", "--lr", "1e-4"], ("update.too_small",)),
        _mm("sgd learning rate far too high, no clipping", ["--model", "mlp", "--optimizer", "sgd", "--lr", "50", "--grad-clip", "0"],
            expect_any=LR_HIGH),
        _mm("BatchNorm statistics never calibrate", ["--model", "mlp", "--norm", "batch", "--bn-momentum", "0.001"],
            ("norm.batch_stats_mismatch",)),
        _mm("wavenet BatchNorm statistics never calibrate", ["--model", "wavenet", "--bn-momentum", "0.001"],
            ("norm.batch_stats_mismatch",)),
        _mm("bias before BatchNorm", ["--model", "mlp", "--norm", "batch", "--hidden-bias"], ("norm.bias_before_batchnorm",)),
        _mm("wavenet bias before BatchNorm", ["--model", "wavenet", "--hidden-bias"], ("norm.bias_before_batchnorm",)),
        _mm("bigram", ["--model", "bigram"]),
        _mm("mlp", ["--model", "mlp"]),
        _mm("mlp + BatchNorm", ["--model", "mlp", "--norm", "batch"]),
        _mm("mlp relu", ["--model", "mlp", "--activation", "relu"]),
        _mm("mlp + LayerNorm, 4 layers", ["--model", "mlp", "--norm", "layer", "--n-layer", "4"]),
        _mm("wavenet", ["--model", "wavenet"]),
        _mm("rnn", ["--model", "rnn"]),
        _mm("gru", ["--model", "gru"]),
        _mm("lstm", ["--model", "lstm"]),
        _mm("bow", ["--model", "bow"]),
        _mm("transformer", ["--model", "transformer"]),
        _mm("mlp sgd", ["--model", "mlp", "--optimizer", "sgd", "--lr", "0.05"]),
    ]


# ---------------------------------------------------------------------------------------------
# running and scoring


@dataclass
class Outcome:
    case: str
    expected: list[str]
    found: list[str]                                   # codes at warning or error
    notes: list[str]                                   # codes at info only
    first_step: dict[str, int] = field(default_factory=dict)  # expected codes found -> first step
    seconds: float = 0.0
    error: str | None = None


def run_case(case: Case, steps: int | None, seed: int, threads: int, smoke: bool) -> Outcome:
    torch.set_num_threads(threads)
    out = Outcome(case.name, sorted(case.expected), [], [])
    t0 = time.perf_counter()
    try:
        records = case.run(steps or case.steps, seed)
    except Exception as e:  # a case that crashes is reported, not fatal to the suite
        out.error = f"{type(e).__name__}: {e}"
        if smoke:
            traceback.print_exc()
        return out
    out.seconds = time.perf_counter() - t0
    if smoke:  # only whether it runs: the verdicts are not looked at
        return out
    findings = run_checks(records)
    out.found = sorted({f.code for f in findings if f.severity != "info"})
    out.notes = sorted({f.code for f in findings if f.severity == "info"} - set(out.found))
    for code in sorted(set(out.found) & case.expected):
        first = next((s.step for s in records.steps
                      if any(f.code == code and f.severity != "info" for f in run_checks(records.upto(s.step)))), None)
        if first is not None:
            out.first_step[code] = first
    return out


def detected(c: Case, o: Outcome) -> bool:
    return set(c.expect) <= set(o.found) and (not c.expect_any or bool(set(c.expect_any) & set(o.found)))


def summarize(cases: list[Case], outs: list[Outcome]) -> dict[str, float | int]:
    faulty = [(c, o) for c, o in zip(cases, outs) if not c.healthy]
    healthy = [(c, o) for c, o in zip(cases, outs) if c.healthy]
    reported = [(c, code) for c, o in zip(cases, outs) for code in o.found]
    firsts = [min(o.first_step.values()) for c, o in faulty if o.first_step]
    return {
        "faulty": len(faulty),
        "recall": sum(1 for c, o in faulty if not o.error and detected(c, o)) / len(faulty) if faulty else float("nan"),
        "warnings": len(reported),
        "precision": sum(1 for c, code in reported if code in c.expected) / len(reported) if reported else float("nan"),
        "healthy": len(healthy),
        "healthy_quiet": sum(1 for c, o in healthy if not o.error and not o.found) / len(healthy) if healthy else float("nan"),
        "median_first_step": statistics.median(firsts) if firsts else float("nan"),
        "errors": sum(1 for o in outs if o.error),
    }


def print_table(name: str, cases: list[Case], outs: list[Outcome]) -> dict[str, float | int]:
    print(f"\n## {name}\n")
    print("| case | expected | found (notes) | first at step | verdict |")
    print("|---|---|---|---|---|")
    for c, o in zip(cases, outs):
        expected = ", ".join([*c.expect, *([" or ".join(c.expect_any)] if c.expect_any else [])]) or "healthy"
        if o.error:
            print(f"| {c.name} | {expected} | error: {o.error} | | NO |")
            continue
        found = ", ".join(o.found) or "-"
        if o.notes:
            found += f" ({', '.join(o.notes)})"
        first = ", ".join(f"{k} {v}" for k, v in o.first_step.items()) or "-"
        false_alarms = [k for k in o.found if k not in c.expected]
        ok = (not o.found) if c.healthy else detected(c, o)
        verdict = "yes" if ok and not false_alarms else ("missed" if not ok else "") + (" false alarm" if false_alarms else "")
        print(f"| {c.name} | {expected} | {found} | {first} | {verdict.strip()} |")
    s = summarize(cases, outs)
    print(f"\n{name}: recall {s['recall']:.2f} ({s['faulty']} faulty) | strict precision {s['precision']:.2f} "
          f"({s['warnings']} warnings/errors) | healthy quiet {s['healthy_quiet']:.2f} ({s['healthy']} healthy) | "
          f"median first step {s['median_first_step']}" + (f" | {s['errors']} crashed" if s["errors"] else ""))
    return s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="tuning,heldout", help="comma-separated: tuning, heldout, makemore")
    p.add_argument("--jobs", type=int, default=1, help="cases run at a time (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per case")
    p.add_argument("--steps", type=int, default=None, help="override every case's number of steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default=None, help="run the cases whose name contains this")
    p.add_argument("--smoke", action="store_true", help="6 steps per case (or --steps), report only crashes and times, not the verdicts")
    p.add_argument("--json", default=None, help="also write the outcomes here")
    a = p.parse_args()
    steps = (a.steps or 6) if a.smoke else a.steps
    t0 = time.perf_counter()
    results: dict[str, object] = {}
    print(f"# doctor suite: {platform.platform()}, python {platform.python_version()}, torch {torch.__version__}, "
          f"{a.jobs} job(s) x {a.threads} thread(s), seed {a.seed}")
    for name in a.set.split(","):
        cases = [c for c in load_set(name) if a.only is None or a.only in c.name]
        with ProcessPoolExecutor(max_workers=max(1, a.jobs)) as pool:
            n = len(cases)
            outs = list(pool.map(run_case, cases, [steps] * n, [a.seed] * n, [a.threads] * n, [a.smoke] * n, chunksize=1))
        if a.smoke:
            bad = [o for o in outs if o.error]
            print(f"{name}: {len(outs) - len(bad)} of {len(outs)} cases ran" + "".join(f"\n  {o.case}: {o.error}" for o in bad)
                  + "".join(f"\n  {o.case}: {o.seconds:.1f} s" for o in outs if not o.error))
            continue
        results[name] = {"summary": print_table(name, cases, outs), "outcomes": [asdict(o) for o in outs]}
    print(f"\n# {time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
