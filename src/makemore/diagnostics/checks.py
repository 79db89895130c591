"""Checks: pure functions from `Records` to `Finding`s, each with a stable code.

Every check reads only the records (plain numbers), so each is tested on hand-made records.
A finding names the layer or parameter, gives the numbers that triggered it next to the
healthy range, and says how to fix it. The healthy ranges follow Karpathy's "Building
makemore Part 3" lecture and were set with `bench/doctor_suite.py` (healthy and faulty runs
of every model family); the reasoning for each is next to its threshold in `Thresholds`.

Codes (stable; tools may match on them):
    init.loss_too_high          step-0 loss far above ln(classes): a confidently wrong softmax
    act.saturated               many tanh/sigmoid outputs in the flat tails
    act.dead_units              units that passed no gradient on any example over a window
    grad.vanishing              gradients shrink by orders of magnitude towards the input, or
                                back through time in a recurrent layer
    grad.exploding              gradients grow towards the input or back through time, or are NaN/Inf
    update.too_small            update:data ratio far below ~1e-3: learning rate too low
    update.too_large            update:data ratio far above ~1e-3: learning rate too high
    norm.batch_stats_mismatch   BatchNorm's train-mode and eval-mode outputs disagree
    norm.bias_before_batchnorm  a bias that the following BatchNorm cancels
    loss.diverging              the loss became NaN/Inf or rose well above its best
    loss.plateau                the loss barely moved
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .records import ModuleInfo, Records, StepRecord

SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class Finding:
    code: str                     # stable identifier, e.g. "act.saturated"
    severity: str                 # info | warning | error
    where: str                    # the layer, parameter or quantity concerned
    evidence: str                 # the numbers that triggered it, next to the healthy range
    fix: str                      # what to change
    step: int | None = None       # the step the evidence comes from (None: the whole run)

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity)

    def _repr_html_(self) -> str:
        from .integrations.notebook import finding_html  # Jupyter shows the report's finding card

        return finding_html(self)

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "severity": self.severity, "where": self.where, "evidence": self.evidence,
                "fix": self.fix, "step": self.step}


@dataclass(frozen=True)
class Thresholds:
    # A near-uniform softmax at step 0 gives a loss of ln(V). Logits with std s add about s^2/2
    # nats, so 20% above ln(V) (0.66 nats for V=27) means logits of std ~1.1: the first steps go
    # to shrinking them, a note. Some authors' own inits land there on purpose (T5's head, tied to
    # an N(0, 1) embedding and rescaled by d_model^-0.5, gives logits of std ~1.5). Half ln(V)
    # again (logits of std ~1.8 for V=27) means the right class gets on average under 1/sqrt(V)
    # of its uniform share: confidently wrong, a warning. Twice ln(V) is the lecture's "27
    # instead of 3.3" kind of error.
    init_loss_rel: float = 0.2           # a note from here
    init_loss_warn_rel: float = 0.5      # a warning from here
    init_loss_abs: float = 0.25          # ... and at least this many nats above (small V)
    # Initialized with std = gain/sqrt(fan_in) on standardized inputs, a layer's outputs have a std
    # near 1 (0.1-1 in the suite's cases). Ten times that at the first nonlinearity, before any
    # training, means what enters the network is far too large: raw inputs (amounts in the
    # thousands) or first weights drawn by hand.
    first_act_std_max: float = 10.0
    # With the tanh gain 5/3 on unit-variance inputs the pre-activations have std 5/3, and about
    # 21% of the outputs sit beyond |t| > 0.97 (the lecture's first layer shows 20%); deeper
    # layers settle near 5-10%. 35% needs pre-activations of std ~2.24 (P(|z| > 2.09/2.24) = 0.35:
    # a gain ~1.35x too big).
    saturated_init: float = 0.35
    saturated_error: float = 0.6        # pre-activations of std > 4: most units pass no gradient
    saturated_late: float = 0.5         # median over the second half of the run (a note only: tanh
                                        # nets and RNNs that train well often saturate as they learn)
    # A unit that passed no gradient on any of (window x batch) examples is dead. A few happen in
    # healthy nets (info); a tenth of a layer dead from the start is an initialization fault
    # (warning). Units that die during training are common in ReLU nets that train well (the
    # PyTorch MNIST example with Adadelta loses a third of its first dense layer): a warning from
    # half the layer.
    dead_frac: float = 0.1
    dead_frac_late: float = 0.5
    # A window must hold enough examples to tell a dead unit from a sparse one: a unit that passes
    # gradient on 1 example in 200 stays silent over 1,000 examples with probability e^-5 (under
    # 1%), over the 160 of five batches of 32 with probability 45%. A layer with few rows per
    # recording (small batches, dense layers) is judged on windows of more recordings.
    dead_min_rows: int = 1000
    # Gradient std at the first vs the last hidden layer. Healthy nets (with the right gain,
    # normalization or residuals) stay within a factor ~3; 10^1.5 (~30x) means the signal fades
    # or grows geometrically with depth.
    depth_decades: float = 1.5
    # log10 update:data ratio of the layers' weight matrices (median over matrices, then over the
    # recorded steps). The lectures aim for -3; Adam at the learning rates that train these models
    # fastest sits at -1.5 to -2.5 (the healthy suite cases). Above -1 every step changes each
    # matrix by more than 10% of its spread. Below -3 (the lectures' target, 3x under the slowest
    # healthy case) three hundred steps move the weights by a few percent, unless they go the same
    # way every step - but a small ratio alone is not the learning rate: weights initialized far
    # too large, or a fine-tuning, make it small in runs that learn well. So a small ratio is
    # reported when the loss agrees: less than 10% better from the start of the run to its end
    # (moving averages). A single step above 10^0 changed the weights by more than their own spread.
    update_max: float = -1.0
    update_min: float = -3.0
    update_min_loss_gain: float = 0.1
    update_min_loss_steps: int = 20     # ... over at least this many steps (fewer say nothing)
    update_peak: float = 0.0
    update_target: float = -2.5         # where the suggested learning-rate change aims
    # Train-mode vs eval-mode output gap of a BatchNorm layer, in output stds, once the running
    # statistics had time to converge, against the gap the batch's own sampling noise gives (about
    # sqrt(1.5/B) for B Gaussian rows: 0.31 at 16 rows, 0.05 at 512). Calibrated running statistics
    # differ from the batch's by about that noise; the gap must exceed it bn_noise_times over, and
    # bn_mismatch in any case (records without a noise estimate use bn_mismatch alone).
    bn_mismatch: float = 0.25
    bn_noise_times: float = 2.0
    bn_min_steps: int = 50              # momentum 0.1 forgets its initial (0, 1) in ~50 steps
    # A bias in front of BatchNorm gets an exactly-zero gradient (the mean is subtracted):
    # rms below this fraction of its weight's rms is numerically zero.
    bias_grad_rel: float = 1e-4
    # Loss curves are judged on moving averages over 5% of the run (at least 5 steps).
    diverge_abs: float = 0.3            # nats above the best smoothed loss ...
    diverge_rel: float = 0.1            # ... and this fraction of it
    diverge_rel_regression: float = 0.5  # a regression loss (MSE, Huber, ...): half its value again
    plateau_min_steps: int = 100
    plateau_rel: float = 0.02           # less than 2% improvement from start to end
    # Through time, in a recurrent layer: the per-step gain of the gradient (how much one step of
    # the recurrence scales the gradient flowing back; geometric mean over the steps, median over
    # the recorded steps). Healthy tanh RNNs, GRUs and LSTMs at their default init sit around
    # 0.3-1: what the loss says about step t reaches t-10 weakened but present. Below 0.1 the
    # gradient falls 10x per step, so nothing past a step or two is learned; above 1.5 it grows
    # geometrically back through time.
    time_gain_min: float = 0.1
    time_gain_max: float = 1.25
    # Only steps where the learning rate is at least this fraction of its largest recorded value
    # judge the update size (not a warm-up's first steps or a decay's last ones).
    update_lr_frac: float = 0.5


DEFAULT = Thresholds()


# ---------------------------------------------------------------------------------------------
# helpers


def _fmt(x: float) -> str:
    return f"{x:.3g}" if x == x else "nan"


def _nonlinear(r: Records) -> list[ModuleInfo]:
    return [m for m in r.modules if m.role in ("saturating", "relu", "smooth")]


def _depth_chain(r: Records) -> list[ModuleInfo]:
    """Layers along the depth of the network: the nonlinearities, else the hidden linear layers."""
    chain = _nonlinear(r)
    if len(chain) < 2:
        chain = [m for m in r.modules if m.role == "linear" and m.name != r.output_module]
    return chain


def _before(r: Records, name: str) -> str | None:
    names = [m.name for m in r.modules]
    i = names.index(name)
    return names[i - 1] if i > 0 else None


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan


def _finite(xs: list[float]) -> list[float]:
    """The finite values of xs: xs itself when its sum is finite (no NaN or Inf in it)."""
    return xs if math.isfinite(sum(xs)) else [x for x in xs if math.isfinite(x)]


def _loss_gain(losses: list[float]) -> float:
    """How much lower the loss is at the end than at the start, as a fraction of the start: moving
    averages over 5% of the run (at least 5 steps); 0 for a loss that is not finite or positive."""
    finite = _finite(losses)
    if not finite:
        return 0.0
    w = min(len(finite), max(5, len(finite) // 20))
    sm = _moving_average(finite, w)[w - 1 :]
    return float((sm[0] - sm[-1]) / sm[0]) if sm[0] > 0 else 0.0


def moving_average(losses: list[float], w: int) -> list[float]:
    """Moving average over w steps (trailing; the first w - 1 over the steps so far), for finite losses."""
    return _moving_average(losses, w).tolist()


def _moving_average(losses: list[float], w: int) -> np.ndarray:
    """`moving_average` as a float64 array (what the checks read)."""
    total = np.cumsum(np.asarray(losses, dtype=np.float64))
    sums = np.concatenate([total[:w], total[w:] - total[:-w]])
    return sums / np.minimum(np.arange(1, len(total) + 1), w)


# ---------------------------------------------------------------------------------------------
# the checks


def _blown_input(r: Records, t: Thresholds = DEFAULT) -> tuple[str, float] | None:
    """(the first nonlinearity, its output std) when that std is above `t.first_act_std_max` at step 0."""
    nl = _nonlinear(r)
    if r.first_step != 0 or not r.steps or not nl or nl[0].name not in r.steps[0].acts:
        return None
    std = r.steps[0].acts[nl[0].name].std
    return (nl[0].name, std) if std > t.first_act_std_max else None


def check_init_loss(r: Records, t: Thresholds = DEFAULT) -> list[Finding]:
    if r.first_step != 0 or not r.losses or not r.n_classes or r.n_classes < 2:
        return []
    # the classification loss function's own value when the monitor saw it (the training loss may
    # add other terms), else the training loss
    loss0 = r.init_loss if r.init_loss is not None else r.losses[0]
    expected = math.log(r.n_classes)
    if not math.isfinite(loss0) or loss0 - expected <= max(t.init_loss_rel * expected, t.init_loss_abs):
        return []
    warn_at = expected + max(t.init_loss_warn_rel * expected, t.init_loss_abs)
    where = r.output_module or "the output layer"
    fix = (f"scale {where}'s initial weights down (multiply by about 0.01-0.1) and zero its bias, so the first "
           "logits are near zero and the softmax near uniform")
    evidence = (f"step-0 loss {loss0:.2f}, expected about {expected:.2f} (ln {r.n_classes}) for a near-uniform softmax; "
                f"healthy below {expected * (1 + t.init_loss_rel):.2f}, confidently wrong from {warn_at:.2f}")
    blown = _blown_input(r, t)
    if blown:  # the forward pass is blown up from its first layer: the inputs, not the output layer
        evidence += f"; the first nonlinearity, {blown[0]}, already outputs std {blown[1]:.3g} (healthy about 1)"
        fix = ("what enters the network is far too large: standardize the inputs (subtract each feature's mean, divide "
               "by its std) and initialize the first layer with std = gain/sqrt(fan_in); then " + fix)
    severity = "error" if loss0 > 2 * expected else "warning" if loss0 > warn_at else "info"
    return [Finding("init.loss_too_high", severity, where, evidence, fix, step=0)]


def check_saturation(r: Records, t: Thresholds = DEFAULT) -> list[Finding]:
    layers = [m for m in _nonlinear(r) if m.role == "saturating"]
    if not r.steps or not layers:
        return []
    first = r.steps[0]
    late = r.steps[len(r.steps) // 2 :] if len(r.steps) >= 4 else []
    bad = []  # (fraction, layer, step, phase)
    for m in layers:
        a = first.acts.get(m.name)
        if a is not None and a.saturated is not None and a.saturated > t.saturated_init:
            bad.append((a.saturated, m, first.step, "at the first recorded step"))
            continue
        fr = [s.acts[m.name].saturated for s in late if m.name in s.acts and s.acts[m.name].saturated is not None]
        if fr and _median(fr) > t.saturated_late:
            bad.append((_median(fr), m, late[-1].step, f"median over steps {late[0].step}-{late[-1].step}"))
    if not bad:
        return []
    at_init = [b for b in bad if b[3].startswith("at the first")]
    frac, m, step, phase = max(at_init or bad, key=lambda b: b[0])
    others = ", ".join(f"{b[1].name} {b[0]:.0%}" for b in bad if b[1] is not m)
    prev = _before(r, m.name)
    # saturation that grows during training is common in tanh nets that train well: a note only
    severity = ("error" if frac > t.saturated_error else "warning") if at_init else "info"
    return [Finding(
        "act.saturated", severity, m.name,
        f"{frac:.0%} of {m.name}'s {m.kind} outputs are saturated (|t| > 0.97, {phase})"
        + (f"; also {others}" if others else "") + f"; healthy below {t.saturated_init:.0%} (about 5-20% at init)",
        f"the inputs of {m.name} are too large: initialize {prev or 'the layer before it'} with std = gain/sqrt(fan_in) "
        "and gain 5/3 for tanh (kaiming_normal_(w, nonlinearity='tanh')), or put BatchNorm/LayerNorm before the "
        "nonlinearity",
        step=step,
    )]


@dataclass(frozen=True)
class _Dead:
    """A layer's dead units over windows of consecutive records."""

    dead: int          # dead units in the worst window
    units: int
    examples: int      # rows in the worst window
    first: int         # first step of the worst window
    last: int          # last step of the worst window
    at_start: int      # dead units in the first window


def _dead_in_windows(r: Records, m: ModuleInfo, t: Thresholds = DEFAULT) -> _Dead:
    """Dead units in windows of `r.window` consecutive records, or more when a record holds few
    rows (at least `t.dead_min_rows` examples per window, as far as the run has them)."""
    recs = [s for s in r.steps if m.name in s.acts and s.acts[m.name].unit_active is not None]
    if not recs:
        return _Dead(0, m.units, 0, 0, 0, 0)
    rows = max(1, min(s.acts[m.name].rows for s in recs))
    w = min(max(r.window, math.ceil(t.dead_min_rows / rows)), len(recs))
    units = [s.acts[m.name].unit_active for s in recs]
    n = min(len(u) for u in units)  # type: ignore[arg-type]
    active = np.array([u[:n] for u in units], dtype=np.int64)  # type: ignore[index]  # (records, units)
    total = np.concatenate([np.zeros((1, n), dtype=np.int64), active.cumsum(0)])
    dead = ((total[w:] - total[:-w]) == 0).sum(1)  # dead units in each window of w records, in order
    i = int(dead.argmax())  # the first of the worst windows
    win = recs[i : i + w]
    return _Dead(int(dead[i]), n, sum(s.acts[m.name].rows for s in win), win[0].step, win[-1].step, int(dead[0]))


def _dead_from_start(r: Records, t: Thresholds = DEFAULT) -> set[str]:
    """Layers with at least `t.dead_frac` of their units dead in their first window."""
    return {m.name for m in _nonlinear(r) if (d := _dead_in_windows(r, m, t)).at_start / max(1, d.units) >= t.dead_frac}


def _died_under_large_steps(r: Records, t: Thresholds = DEFAULT) -> list[tuple[float, int, str, _Dead]]:
    """Layers that lost at least `t.dead_frac_late` of their units during the run after a step
    whose update:data ratio was above the band: (that ratio, its step, layer, dead units), the
    largest ratio first. A step that moves the weights by a tenth of their spread or more can
    push a ReLU's pre-activation below zero for every input, and such a unit never comes back."""
    per_step = [(s.step, _median(u)) for s in r.steps
                if s.step > r.first_step and not s.skipped and (u := update_log_ratios(s, r.matrices))]
    out = []
    for m in _nonlinear(r):
        d = _dead_in_windows(r, m, t)
        if (d.dead - d.at_start) / max(1, d.units) < t.dead_frac_late:
            continue
        big = [(x, step) for step, x in per_step if step <= d.last and x > t.update_max]
        if big:
            x, step = max(big)
            out.append((x, step, m.name, d))
    return sorted(out, key=lambda o: -o[0])


def check_dead_units(r: Records, t: Thresholds = DEFAULT) -> list[Finding]:
    worst = None  # (how far past its warning level, dead, units, examples, first step, last step, layer)
    for m in _nonlinear(r):
        d = _dead_in_windows(r, m, t)
        dead, units, examples, s0, s1 = d.dead, d.units, d.examples, d.first, d.last
        if not dead:
            continue
        at_start = d.at_start / units >= t.dead_frac
        # tanh/sigmoid units that saturate while the net learns still pass a little gradient and can
        # come back: like saturation that grows during training (check_saturation), a note
        late = math.inf if m.role == "saturating" else t.dead_frac_late
        level = (dead / units) / (t.dead_frac if at_start else late)
        if worst is None or level > worst[0]:
            worst = (level, dead, units, examples, s0, s1, m)
    if worst is None:
        return []
    level, dead, units, examples, s0, s1, m = worst
    frac = dead / units
    what = {"saturating": "saturated (|t| > 0.97)", "smooth": "in the flat part (slope |f'(x)| < 0.06)"}.get(
        m.role, "never positive")
    if m.role == "saturating":
        fix = (f"these units sit in {m.kind}'s flat tails for every input: shrink the initial weights of "
               f"{_before(r, m.name) or 'the layer before'} (gain 5/3 for tanh) or normalize its output (BatchNorm)")
    elif m.role == "relu":
        fix = ("dead ReLUs never recover: do not initialize biases negative (use 0), use kaiming init with the ReLU "
               "gain, lower the learning rate if they die during training, or use LeakyReLU/GELU")
    else:  # GELU, SiLU, ELU, ...: below zero the gradient is small, not zero
        fix = (f"{m.kind} units below zero on every input pass little gradient and learn slowly: do not initialize "
               f"biases negative (use 0), scale the initial weights of {_before(r, m.name) or 'the layer before'} "
               "with kaiming init, or lower the learning rate if they sink during training")
    return [Finding(
        "act.dead_units", "warning" if level >= 1 else "info", m.name,
        f"{dead} of {units} units ({frac:.1%}) of {m.name} ({m.kind}) were {what} on every one of {examples:,} "
        f"examples in steps {s0}-{s1}; healthy: none (warning from {t.dead_frac:.0%} of a layer from the start, "
        + ("a note when they saturate during training)" if m.role == "saturating" else
           f"{t.dead_frac_late:.0%} when they die during training)"),
        fix, step=s1,
    )]


def _depth_ratio(rec: StepRecord, first: str, last: str, r: Records | None = None) -> float | None:
    """log10(gradient at the first layer / at the last layer) on one record: per example, the
    gradient's norm over the layer's output (std x sqrt(elements)). Layers of different sizes (a
    convolution's channels x positions, then a dense layer) compare by norm: pooling and striding
    spread one gradient over fewer elements, not a smaller one."""
    a, b = rec.grads.get(first), rec.grads.get(last)
    if a is None or b is None or not (b.std > 0) or not math.isfinite(a.std) or not math.isfinite(b.std):
        return None
    if a.std <= 0:
        return -math.inf
    size = 0.0
    if r is not None:
        ma, mb, xa, xb = r.module(first), r.module(last), rec.acts.get(first), rec.acts.get(last)
        if ma and mb and xa and xb and xa.rows > 0 and xb.rows > 0:
            size = 0.5 * math.log10((xa.rows * ma.units) / (xb.rows * mb.units))
    return math.log10(a.std / b.std) + size


def _nonfinite_grads(r: Records) -> list[tuple[int, str]]:
    """(step, layer or parameter) whose gradient had NaN/Inf values, earliest first, on the steps
    the optimizer did not skip (GradScaler finds its scale by overflowing and skipping)."""
    steps = [s for s in r.steps if not s.skipped]
    bad = [(s.step, name) for s in steps for name, g in s.grads.items() if g.nonfinite > 0]
    bad += [(s.step, name) for s in steps for name, p in s.params.items() if p.grad_nonfinite > 0]
    return sorted(bad, key=lambda b: b[0])


def check_gradient_flow(r: Records, t: Thresholds = DEFAULT) -> list[Finding]:
    out = []
    # a step the optimizer skipped (GradScaler found Inf/NaN in the scaled gradients) is how mixed
    # precision finds its scale, not an explosion
    steps = [s for s in r.steps if not s.skipped]
    bad = _nonfinite_grads(r)
    if bad:
        step, name = bad[0]
        out.append(Finding(
            "grad.exploding", "error", name,
            f"the gradient at {name} has NaN or Inf values at step {step}; healthy: all finite",
            "lower the learning rate (about 10x), clip the gradient norm (clip_grad_norm_ to 1.0), and check the "
            "initialization scale",
            step=step,
        ))
    chain = _depth_chain(r)
    if len(chain) < 2 or not r.steps:
        return out
    first, last = chain[0].name, chain[-1].name
    ratios = [(s.step, x) for s in steps if (x := _depth_ratio(s, first, last, r)) is not None]
    if not ratios:
        return out
    init_step, init = ratios[0]
    med = _median([x for _, x in ratios])
    lo, lo_step = (init, init_step) if init < med else (med, None)
    hi, hi_step = (init, init_step) if init > med else (med, None)
    phase = lambda s: f"at step {s}" if s is not None else "median over the run"  # noqa: E731
    healthy = f"healthy within 10^±{t.depth_decades:g}"
    if lo < -t.depth_decades:
        out.append(Finding(
            "grad.vanishing", "error" if lo < -2 * t.depth_decades else "warning", first,
            f"the gradient reaching {first} is 10^{_fmt(lo)} of the one reaching {last} (norm per example, {phase(lo_step)}, "
            f"{len(chain)} layers); {healthy}",
            "gradients fade on their way to the early layers: use the nonlinearity's gain in the init "
            "(kaiming_normal_, 5/3 for tanh), add BatchNorm/LayerNorm, or residual connections; saturated "
            "units also block gradients",
            step=lo_step,
        ))
    elif hi > t.depth_decades:
        out.append(Finding(
            "grad.exploding", "error" if hi > 2 * t.depth_decades else "warning", first,
            f"the gradient reaching {first} is 10^{_fmt(hi)} times the one reaching {last} (norm per example, {phase(hi_step)}, "
            f"{len(chain)} layers); {healthy}",
            "gradients grow geometrically with depth: the init gain is too large; use std = gain/sqrt(fan_in) "
            "with the nonlinearity's gain (kaiming_normal_), add normalization, and clip the gradient norm",
            step=hi_step,
        ))
    return out


def time_gain(rec: StepRecord, layer: str) -> float | None:
    """The geometric mean of a recurrent layer's per-step gradient gains on one record."""
    ts = rec.time.get(layer)
    gains = [g for g in ts.gains if math.isfinite(g) and g > 0] if ts is not None else []
    return math.exp(statistics.fmean(math.log(g) for g in gains)) if gains else None


def check_time_flow(r: Records, t: Thresholds = DEFAULT) -> list[Finding]:
    """Gradients through time in recurrent layers: the recurrence's per-step gain, first vs last step."""
    layers = list(dict.fromkeys(name for s in r.steps for name in s.time))
    worst = None  # (distance from healthy in decades, layer, gain, record)
    for name in layers:
        recs = [(s, g) for s in r.steps if not s.skipped and (g := time_gain(s, name)) is not None]
        if not recs:
            continue
        # at the first recorded step (initialization) or over the run, whichever is further out
        for rec, gain in ((recs[0][0], recs[0][1]), (recs[-1][0], _median([g for _, g in recs]))):
            off = max(math.log10(t.time_gain_min / gain), math.log10(gain / t.time_gain_max))
            if off > 0 and (worst is None or off > worst[0]):
                worst = (off, name, gain, rec)
    if worst is None:
        return []
    _, name, gain, rec = worst
    ts = rec.time[name]
    T = len(ts.grad_rms)
    first, last = ts.grad_rms[0], ts.grad_rms[-1]
    ev = (f"back through time one step of {name}'s recurrence scales the gradient by {gain:.2g} (geometric mean over "
          f"{T - 1} steps, at step {rec.step} or the median over the run): over the {T} steps that is "
          f"10^{_fmt((T - 1) * math.log10(gain))}; "
          f"the total gradient at the first step is {first:.2g} vs {last:.2g} at the last (step {rec.step}); "
          f"healthy {t.time_gain_min:g} to {t.time_gain_max:g} per step")
    if gain < t.time_gain_min:
        return [Finding(
            "grad.vanishing", "warning", name, ev,
            "the loss at later time steps cannot teach earlier ones: initialize the recurrent weights with a larger "
            "gain (orthogonal_ weight_hh), keep the hidden units out of saturation, or use an LSTM/GRU",
            step=rec.step,
        )]
    return [Finding(
        "grad.exploding", "warning", name, ev,
        "gradients grow geometrically back through time: shrink the recurrent weights (spectral radius below 1, "
        "e.g. orthogonal_ weight_hh), clip the gradient norm (clip_grad_norm_), or use an LSTM/GRU",
        step=rec.step,
    )]


def update_log_ratios(rec: StepRecord, matrices: list[str] | None = None) -> list[float]:
    """log10 update:data ratios of the weight matrices on one record (`matrices`: their names;
    empty or None: every parameter with a gradient histogram, i.e. every matrix)."""
    ps = [p for n, p in rec.params.items() if (n in matrices if matrices else p.grad_hist is not None)]
    return [math.log10(p.update_ratio) for p in ps
            if p.update_ratio is not None and math.isfinite(p.update_ratio) and p.update_ratio > 0]


def check_updates(r: Records, t: Thresholds = DEFAULT) -> list[Finding]:
    # the steps taken at (near) full learning rate: not a warm-up's first ones, not a decay's last
    top = max((s.lr for s in r.steps if s.lr is not None), default=None)
    full = [s for s in r.steps if not s.skipped and (top is None or s.lr is None or s.lr >= t.update_lr_frac * top)]
    per_step = [(s.step, _median(u)) for s in full if (u := update_log_ratios(s, r.matrices))]
    if not per_step:
        return []
    peak_step, peak = max(per_step, key=lambda x: x[1])
    # the typical ratio: after step 0 (Adam's first step is exactly lr per weight) and before the last
    # fifth of the run (where a decaying schedule drives it down on purpose)
    last = per_step[-1][0]
    body = [x for s, x in per_step if 0 < s <= r.first_step + 0.8 * (last - r.first_step)] or [x for _, x in per_step]
    u = _median(body)
    band = f"healthy about 10^-3 (accepted 10^{t.update_min:g} to 10^{t.update_max:g})"
    where = "learning rate"
    if u > t.update_max or peak > t.update_peak:
        big = u if u > t.update_max else peak
        what = (f"update:data ratio 10^{u:.1f} (median over {len(r.matrices) or 'the'} weight matrices and {len(body)} "
                f"recorded steps)" if u > t.update_max else
                f"update:data ratio 10^{peak:.1f} at step {peak_step}: the step changed the weights by more than their own spread")
        factor = 10 ** max(1, round(big - t.update_target))
        return [Finding("update.too_large", "error" if big > t.update_peak else "warning", where, f"{what}; {band}",
                        f"lower the learning rate about {factor:g}x (or warm it up over the first steps); each step "
                        "changes the weights too much to settle", step=peak_step if u <= t.update_max else None)]
    died = _died_under_large_steps(r, t)
    if died:
        x, step, name, d = died[0]
        factor = 10 ** max(1, round(x - t.update_target))
        return [Finding(
            "update.too_large", "warning", where,
            f"update:data ratio 10^{x:.1f} at step {step} (median over weight matrices); {band}; then {d.dead - d.at_start} "
            f"of {name}'s {d.units} units died (none passed gradient on any of {d.examples:,} examples in steps "
            f"{d.first}-{d.last}, against {d.at_start} in its first window)",
            f"lower the learning rate about {factor:g}x (or warm it up over the first steps): steps this large push units "
            "into the region where they pass no gradient, and they do not come back", step=step)]
    if (u < t.update_min and len(r.losses) >= t.update_min_loss_steps
            and (gain := _loss_gain(r.losses)) < t.update_min_loss_gain):
        factor = 10 ** max(1, round(t.update_target - u))
        return [Finding("update.too_small", "warning", where,
                        f"update:data ratio 10^{u:.1f} (median over weight matrices and {len(body)} recorded steps), and "
                        f"the loss only {gain:.1%} lower at the end than at the start; {band}, or a loss that falls "
                        f"by {t.update_min_loss_gain:.0%} or more",
                        f"raise the learning rate about {factor:g}x; at this rate the weights barely move", step=None)]
    return []


def check_batchnorm_stats(r: Records, t: Thresholds = DEFAULT) -> list[Finding]:
    out = []
    names = [m.name for m in r.modules if m.role == "batchnorm"]
    for name in names:
        recs = [s for s in r.steps if name in s.norms and s.step >= t.bn_min_steps]
        if not recs:
            continue
        last = recs[-3:]
        gap = _median([s.norms[name].mismatch for s in last])
        noises = [s.norms[name].noise for s in last if s.norms[name].noise is not None]
        noise = _median(noises) if noises else None  # type: ignore[arg-type]
        limit = max(t.bn_mismatch, t.bn_noise_times * noise) if noise is not None and math.isfinite(noise) else t.bn_mismatch
        if not gap > limit:
            continue
        mom = recs[-1].norms[name].momentum
        why = (f"momentum {mom:g} averages the running statistics over about {1 / mom:.0f} steps"
               if mom else "the running statistics are a cumulative average") + f", the run recorded up to step {recs[-1].step}"
        out.append(Finding(
            "norm.batch_stats_mismatch", "warning", name,
            f"train-mode and eval-mode outputs of {name} differ by {gap:.2f} output stds on the training batch "
            f"(step {recs[-1].step}); healthy below {limit:.2g}"
            + (f" ({t.bn_noise_times:g}x the {noise:.2g} that sampling noise gives at this batch)" if noise else "")
            + f"; {why}",
            "calibrate the running statistics: raise BatchNorm's momentum (PyTorch's default is 0.1), or after "
            "training run the training set through in train mode (or compute the mean/var as in the lecture) "
            "before evaluating; with small batches prefer LayerNorm/GroupNorm",
            step=recs[-1].step,
        ))
    return out


def check_bias_before_batchnorm(r: Records, t: Thresholds = DEFAULT) -> list[Finding]:
    out = []
    for a, b in zip(r.modules, r.modules[1:]):
        if a.role != "linear" or b.role != "batchnorm" or a.bias_param is None:
            continue
        weight = a.bias_param.rsplit(".", 1)[0] + ".weight" if "." in a.bias_param else "weight"
        recs = [s for s in r.steps if a.bias_param in s.params and weight in s.params]
        if recs:
            pb, pw = recs[-1].params[a.bias_param], recs[-1].params[weight]
            if not (pw.grad_rms > 0 and pb.grad_rms <= t.bias_grad_rel * pw.grad_rms):
                continue  # the bias does receive gradient: not directly cancelled
            ev = (f"{a.bias_param} feeds BatchNorm {b.name}, which subtracts the batch mean: its gradient rms is "
                  f"{pb.grad_rms:.1e} vs {pw.grad_rms:.1e} for {weight} (step {recs[-1].step}); healthy: no bias there")
        else:
            ev = f"{a.bias_param} feeds BatchNorm {b.name}, which subtracts the batch mean and cancels it"
        out.append(Finding(
            "norm.bias_before_batchnorm", "warning", a.bias_param, ev,
            f"build {a.name} with bias=False: BatchNorm's own shift (its bias, beta) does the job, and this bias only "
            "wastes parameters and optimizer state",
            step=recs[-1].step if recs else None,
        ))
    return out


def check_loss(r: Records, t: Thresholds = DEFAULT) -> list[Finding]:
    L = r.losses
    if not L:
        return []
    bad = None if math.isfinite(sum(L)) else next((i for i, x in enumerate(L) if not math.isfinite(x)), None)
    if bad is not None:
        return [Finding(
            "loss.diverging", "error", "loss",
            f"the loss became {L[bad]} at step {r.first_step + bad} (last finite "
            f"{next((x for x in reversed(L[:bad]) if math.isfinite(x)), math.nan):.3g}); healthy: finite and falling",
            "lower the learning rate about 10x and clip the gradient norm (clip_grad_norm_ to 1.0)",
            step=r.first_step + bad,
        )]
    n = len(L)
    if n < 20:
        return []
    # a spike: the loss climbed well above where it started (too large a step overshot). A
    # regression loss has no nats to count in and a noisier start: its margins are relative only
    regression = r.n_classes == 0
    abs_m, rel_m = (0.0, t.diverge_rel_regression) if regression else (t.diverge_abs, t.diverge_rel)
    sm5 = _moving_average(L, 5)[4:]
    early = sm5[: max(1, len(sm5) // 2)]
    top_at = int(early.argmax())  # the first of the highest
    top = float(early[top_at])
    margin0 = max(abs_m, rel_m * L[0])
    spike = top > L[0] + margin0
    w = max(5, n // 20)
    sm = _moving_average(L, w)[w - 1 :]  # averages of full windows
    best_at = int(sm.argmin())  # the first of the lowest
    start, best, end = float(sm[0]), float(sm[best_at]), float(sm[-1])
    best_step = r.first_step + w - 1 + best_at
    if end > L[0] + margin0:
        return [Finding(
            "loss.diverging", "error", "loss",
            f"the loss ended at {end:.3f} (moving average over {w} steps), above the {L[0]:.3f} it started from "
            f"(peak {top:.3g}); healthy: it falls from the start",
            "the steps are far too large: lower the learning rate (about 10-100x) and clip the gradient norm "
            "(clip_grad_norm_ to 1.0)",
            step=r.first_step + n - 1,
        )]
    if end > best + max(abs_m, rel_m * best):
        return [Finding(
            "loss.diverging", "error" if end > start else "warning", "loss",
            f"the loss (moving average over {w} steps) rose from its best {best:.3f} at step {best_step} to {end:.3f} "
            f"at the end (started at {start:.3f}); healthy: it keeps falling or stays flat",
            "lower the learning rate (about 10x) or decay it (a cosine schedule), and clip the gradient norm",
            step=r.first_step + n - 1,
        )]
    if spike:
        at = r.first_step + 4 + top_at
        return [Finding(
            "loss.diverging", "warning", "loss",
            f"the loss rose from {L[0]:.3f} at step {r.first_step} to {top:.3f} (5-step average) at step {at} before "
            f"coming down; healthy: it falls from the start (at most {margin0:.2f} above the first loss)",
            "the first steps overshoot: lower the learning rate (about 10x) or warm it up over the first hundred "
            "steps (a linear warm-up, e.g. LambdaLR)",
            step=at,
        )]
    if n >= t.plateau_min_steps and start > 0 and (start - end) / start < t.plateau_rel:
        return [Finding(
            "loss.plateau", "warning", "loss",
            f"the loss (moving average over {w} steps) went from {start:.3f} to {end:.3f} in {n} steps, "
            f"{(start - end) / start:.1%} better; healthy: at least {t.plateau_rel:.0%} in a short run",
            "the model is not learning: raise the learning rate (see the update:data ratio), check that gradients "
            "reach the early layers, and that the data and targets line up",
            step=r.first_step + n - 1,
        )]
    return []


CHECKS: list[Callable[[Records, Thresholds], list[Finding]]] = [
    check_init_loss, check_saturation, check_dead_units, check_gradient_flow, check_time_flow, check_updates,
    check_batchnorm_stats, check_bias_before_batchnorm, check_loss,
]

CODES = (
    "init.loss_too_high", "act.saturated", "act.dead_units", "grad.vanishing", "grad.exploding", "update.too_small",
    "update.too_large", "norm.batch_stats_mismatch", "norm.bias_before_batchnorm", "loss.diverging", "loss.plateau",
)

# Symptoms and their causes: when a cause is found, it is the finding (its fix is the one to apply).
#   * a loss that barely moves: dead or saturated units, fading gradients, tiny or huge updates;
#   * gradients fading with depth, or through time in the same layer: units that are dead or
#     saturated from the start (they pass no gradient);
#   * updates too small: units dead from the start or gradients fading with depth (the weights get
#     no gradient to move by), or units killed by steps far too large (nothing is left to move them);
#   * units dead from the start next to a huge step-0 loss when the first layer's outputs are
#     already far too large: the inputs (a unit fed a huge offset is on or off for every example);
#   * a loss that rises but never came down to twice ln(classes) after a huge step-0 loss: the
#     initialization (confidently wrong logits make the loss jump by multiples);
#   * units that die during a run whose steps are far too large (the loss may diverge, or the
#     steps may be above the band only until the units die: `_died_under_large_steps`), gradients
#     that fade in it after initialization, BatchNorm running statistics that cannot follow it:
#     those steps;
#   * a step-0 loss far too high while gradients explode with depth at init: the init gain, which
#     blows up the forward pass as well;
#   * a step-0 loss far too high, then gradients that turn NaN/Inf before the loss ever came down to
#     twice ln(classes) (the inputs being of a sane size): the weights' scale. A confidently wrong
#     softmax alone cannot make gradients overflow (the loss's gradient at the logits, softmax minus
#     one-hot, is at most 1 per element); only weights that amplify it on its way back can, and
#     the same weights blew up the forward pass. The gradient finding's fix (the init scale,
#     clipping, the learning rate) is the one to apply, not only shrinking the output layer.
_PLATEAU_CAUSES = ("act.dead_units", "act.saturated", "grad.vanishing", "update.too_small", "update.too_large")
_LR_HIGH = ("loss.diverging", "update.too_large", "grad.exploding")


def run_checks(records: Records, thresholds: Thresholds = DEFAULT) -> list[Finding]:
    """Every check on `records`, most serious first (stable within a severity), symptoms folded
    into their causes (see above)."""
    found = [f for check in CHECKS for f in check(records, thresholds)]
    if not records.steps or not found:  # nothing to fold
        return sorted(found, key=lambda f: -f.rank)
    dead_at_start = _dead_from_start(records, thresholds)
    died_under_steps = {name for _, _, name, _ in _died_under_large_steps(records, thresholds)}
    blown = _blown_input(records, thresholds)
    # a loss that never came down to twice ln(classes) has not recovered from its initialization
    # (judged on the finite losses, on moving averages over 5% of them, or over all of them when
    # fewer than 5 are finite)
    L = _finite(records.losses)
    w = min(len(L), max(5, len(L) // 20))
    never_recovered = (bool(records.n_classes) and w > 0
                       and float(_moving_average(L, w)[w - 1 :].min()) > 2 * math.log(records.n_classes))  # type: ignore[arg-type]
    overflowed = bool(_nonfinite_grads(records))
    saturated_at_start = {f.where for f in found if f.code == "act.saturated" and f.severity != "info"}
    serious = {f.code for f in found if f.severity != "info"}
    time_layers = {name for s in records.steps for name in s.time}
    # gradients that fade with depth leave the early layers' weights without gradient to move by
    depth_vanishing = any(f.code == "grad.vanishing" and f.severity != "info" and f.where not in time_layers for f in found)

    def symptom(f: Finding) -> bool:
        if f.code == "act.dead_units":
            if blown and "init.loss_too_high" in serious:
                return True  # a unit whose input is a huge offset is on or off for every example
            return bool(serious & set(_LR_HIGH)) and (not dead_at_start or f.where in died_under_steps)
        if f.code == "loss.plateau":
            return bool(serious & set(_PLATEAU_CAUSES))
        if f.code == "grad.vanishing":
            if serious & set(_LR_HIGH) and f.step != records.steps[0].step:
                return True  # appeared as the run diverged, not at initialization
            causes = dead_at_start | saturated_at_start
            return bool(causes) and (f.where not in time_layers or f.where in causes)
        if f.code == "update.too_small":  # no weights to move, or steps so large that units died, or no gradient
            return bool(dead_at_start) or "update.too_large" in serious or depth_vanishing
        if f.code == "norm.batch_stats_mismatch":  # running statistics cannot follow a diverging net
            return bool(serious & set(_LR_HIGH))
        if f.code == "loss.diverging" and "init.loss_too_high" in serious and never_recovered:
            return True  # the rises of confidently wrong logits: the initialization (or the inputs)
        if f.code == "init.loss_too_high":
            if overflowed and never_recovered and not blown and "grad.exploding" in serious:
                return True  # weights that amplify the gradient on its way back (see above)
            return any(g.code == "grad.exploding" and g.step == records.steps[0].step and g.where not in time_layers
                       for g in found)
        return False

    kept = [f for f in found if not symptom(f)]
    if any(f.code == "init.loss_too_high" and f not in kept for f in found) and overflowed:
        # the overflow's finding keeps the step-0 loss as evidence
        loss0 = records.init_loss if records.init_loss is not None else records.losses[0]
        also = (f"; at step 0 the loss was already {loss0:.2f} against ln {records.n_classes} = "
                f"{math.log(records.n_classes or 1):.2f}: the same weights blew up the forward pass")
        kept = [replace(f, evidence=f.evidence + also) if f.code == "grad.exploding" and f.where not in time_layers else f
                for f in kept]
    return sorted(kept, key=lambda f: -f.rank)


def worst_severity(findings: list[Finding]) -> str | None:
    return max(findings, key=lambda f: f.rank).severity if findings else None


__all__ = ["Finding", "Thresholds", "DEFAULT", "CHECKS", "CODES", "SEVERITIES", "run_checks", "worst_severity",
           "update_log_ratios", "time_gain", "moving_average"] + [c.__name__ for c in CHECKS]
