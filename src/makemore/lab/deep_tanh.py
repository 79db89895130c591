"""`deep-tanh`: a 5-layer tanh MLP at four init gains, with and without BatchNorm.

Karpathy's "Building makemore Part 3" stacks five Linear -> (BatchNorm) -> tanh layers and
looks at each layer's activations and gradients at initialization: with gain 1 the
activations shrink layer by layer, with 3 they saturate, with tanh's 5/3 they settle at a few
percent saturated with gradients of similar size in every layer; with BatchNorm the gain
hardly matters. This experiment builds those eight networks from the registry's `mlp`
(`init_gain`, `norm`), records them with the diagnostics monitor and trains each briefly.
"""

from __future__ import annotations

import math

import torch

from ..models import create_model, model_config
from .common import Experiment, Lab, Outcome, Table, Trained, new_figure, plot_histogram

GAINS = (0.5, 1.0, 5 / 3, 3.0)
NORMS = ("none", "batch")
N_LAYER, N_HIDDEN = 5, 100


def _gain_name(g: float) -> str:
    return "5/3" if abs(g - 5 / 3) < 1e-9 else f"{g:g}"


def tanh_layers(t: Trained) -> list[str]:
    """Names of the tanh modules, input side first."""
    return [m.name for m in t.records.modules if m.kind == "Tanh"]


def run(lab: Lab) -> Outcome:
    data = lab.dataset
    batch = lab.batch_size
    cfg = lab.recipe(batch, lr=0.1, decay=False)
    summary = Table(
        f"5-layer tanh MLP ({N_HIDDEN} units per layer): saturation and gradient std per layer at init, "
        f"then {lab.steps} steps of SGD",
        ["norm", "gain", "saturated per layer", "grad std first/last", "step-0 loss", "val loss", "findings"],
    )
    layers = Table(
        "per layer at initialization (step 0): tanh output and the gradient reaching it",
        ["norm", "gain", "layer", "act mean", "act std", "saturated", "grad std"],
    )
    runs: dict[tuple[str, float], Trained] = {}
    for norm in NORMS:
        for gain in GAINS:
            mcfg = model_config("mlp", context=3, n_embd=10, n_hidden=N_HIDDEN, n_layer=N_LAYER, norm=norm, init_gain=gain,
                                vocab_size=data.vocab.size, block_size=data.block_size)
            torch.manual_seed(lab.seed)
            t = lab.train(create_model(mcfg), cfg)
            runs[(norm, gain)] = t
            first = t.records.steps[0]
            sats, grads = [], []
            for k, name in enumerate(tanh_layers(t)):
                a, g = first.acts.get(name), first.grads.get(name)
                sats.append(a.saturated if a else None)
                grads.append(g.std if g else None)
                layers.add(norm, _gain_name(gain), k + 1, a.mean if a else None, a.std if a else None,
                           a.saturated if a else None, g.std if g else None)
            ratio = grads[0] / grads[-1] if grads and grads[0] is not None and grads[-1] else None
            val = t.losses(("val",))["val"]
            summary.add(norm, _gain_name(gain), [f"{100 * s:.0f}%" if s is not None else "-" for s in sats], ratio,
                        t.step0_loss, val, t.codes() or ["healthy"])
            lab.say(f"  norm {norm}, gain {_gain_name(gain)}: saturated {' '.join(summary.rows[-1][2])}, val {val:.4f}")

    def row(norm: str, gain: float) -> list:  # type: ignore[type-arg]
        return summary.rows[NORMS.index(norm) * len(GAINS) + GAINS.index(gain)]

    notes = [
        f"Without BatchNorm: gain 1 gives saturation {' '.join(row('none', 1.0)[2])} per layer, gain 5/3 "
        f"{' '.join(row('none', 5 / 3)[2])}, gain 3 {' '.join(row('none', 3.0)[2])}.",
        f"With BatchNorm the gain hardly matters: gain 0.5 {' '.join(row('batch', 0.5)[2])}, gain 3 "
        f"{' '.join(row('batch', 3.0)[2])}.",
        "Gradient std at the first over the last tanh layer (1 is ideal): "
        + ", ".join(f"{n}/{_gain_name(g)} {_r(row(n, g)[3])}" for n in NORMS for g in GAINS) + ".",
    ]
    return Outcome(
        [summary, layers],
        {"deep_tanh_activations": _hist_grid(runs, "acts", "tanh output"),
         "deep_tanh_gradients": _hist_grid(runs, "grads", "gradient at the tanh output")},
        intro="Five Linear -> (BatchNorm) -> tanh layers initialized with std = gain / sqrt(fan_in). The gain sets "
              "whether activations shrink, stay put or saturate as they pass through the layers, and whether "
              "gradients keep their size on the way back. BatchNorm re-standardizes every layer, so the gain "
              "stops mattering.",
        method=[
            f"Model: makemore's mlp, context 3, n_embd 10, {N_LAYER} hidden layers of {N_HIDDEN}, output weights "
            "scaled 0.1; init_gain = the gain (norm none: Linear with bias; batch: Linear without bias -> BatchNorm1d).",
            "Statistics at initialization: the first training batch's forward and backward pass, recorded by "
            "makemore.diagnostics.Monitor (saturated: |tanh| > 0.97).",
            lab.data_words(),
            f"Training: {lab.steps} steps of plain SGD at lr 0.1, {lab.batch_words(batch)} per step; val loss exact "
            "over the whole split; findings: the doctor's codes (warning or worse).",
        ],
        notes=notes,
    )


def _r(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2g}"


def _hist_grid(runs: dict[tuple[str, float], Trained], kind: str, xlabel: str):  # type: ignore[no-untyped-def]
    """The lecture's per-layer histograms: one panel per (norm, gain), one line per layer."""
    fig, axes = new_figure(len(NORMS), len(GAINS), width=4.0, height=3.0)
    for (norm, gain), t in runs.items():
        ax = axes[NORMS.index(norm)][GAINS.index(gain)]
        rec = t.records.steps[0]
        for k, name in enumerate(tanh_layers(t)):
            s = getattr(rec, kind).get(name)
            if s is None:
                continue
            sat = f", sat {100 * s.saturated:.0f}%" if getattr(s, "saturated", None) is not None else ""
            plot_histogram(ax, s.hist, f"layer {k + 1}: std {s.std:.2g}{sat}", lw=1)
        ax.set_title(f"norm {norm}, gain {_gain_name(gain)}", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("density", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    return fig


EXPERIMENT = Experiment(
    "deep-tanh", "Deep tanh: init gains with and without BatchNorm",
    "a 5-layer tanh MLP at gains 0.5, 1, 5/3, 3, with and without BatchNorm: activations and gradients per layer",
    run, steps=1000, quick_steps=10,
)
