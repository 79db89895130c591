"""`init-ladder`: the lecture's 2-layer tanh MLP trained five ways, from a careless init to BatchNorm.

Karpathy's "Building makemore Part 3: Activations & Gradients, BatchNorm" starts from the
part-2 MLP (context 3, 10-dim embeddings, 200 tanh units) with every weight drawn from randn
and fixes its initialization one rung at a time, training each for 200,000 steps of 32
examples (lr 0.1, then 0.01 after 100,000 steps). Its loss log (train / val):

    original (randn everywhere)           2.1245 / 2.1682
    fix softmax confidently wrong         2.0696 / 2.1310   W2 * 0.01, b2 * 0
    fix tanh layer too saturated at init  2.0355 / 2.1026   W1 * 0.2, b1 * 0.01
    kaiming init (tanh gain 5/3)          2.0376 / 2.1069
    add a BatchNorm layer                 2.0668 / 2.1048

The randn rungs are built from the registry's `mlp` and re-initialized by hand below, exactly
as the lecture did in its notebook (that hand re-initialization is the lesson). The kaiming
rungs are the `mlp` model's own initialization. Every rung starts from the same seed and
sees the same batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from matplotlib.ticker import ScalarFormatter
from torch import nn

from ..models import create_model, model_config
from .common import Experiment, Lab, Outcome, Table, Trained, new_figure, plot_histogram, smoothed_losses

STYLES = ("-", "--", "-", "-.", ":")  # rows 1 and 2 share W1 (their tanh histograms coincide)
LECTURE_TRAIN = (2.1245, 2.0696, 2.0355, 2.0376, 2.0668)
LECTURE_VAL = (2.1682, 2.1310, 2.1026, 2.1069, 2.1048)


@dataclass(frozen=True)
class Rung:
    name: str
    init: str                                   # how the weights are drawn, in words
    norm: str = "none"
    # (W1, b1, W2, b2) multipliers of randn draws; None: keep the model's kaiming init
    randn: tuple[float, float, float, float] | None = None


RUNGS = (
    Rung("default-scale init", "W1, b1, W2, b2 ~ randn (no fan-in scaling)", randn=(1.0, 1.0, 1.0, 1.0)),
    Rung("output layer scaled down", "W2 * 0.01, b2 * 0", randn=(1.0, 1.0, 0.01, 0.0)),
    Rung("hidden layer scaled down too", "also W1 * 0.2, b1 * 0.01", randn=(0.2, 0.01, 0.01, 0.0)),
    Rung("kaiming (tanh gain 5/3)", "W1 ~ N(0, (5/3)^2 / fan_in), b1 = 0; output std 0.1 / sqrt(fan_in)"),
    Rung("kaiming + BatchNorm", "as kaiming, hidden layer Linear (no bias) -> BatchNorm1d -> tanh", norm="batch"),
)


@torch.no_grad()
def randn_init_(model: nn.Module, scales: tuple[float, float, float, float], gen: torch.Generator) -> None:
    """The lecture's hand initialization: W1, b1, W2, b2 = randn * scales (the embedding is randn already)."""
    first = next(m for m in model.hidden if isinstance(m, nn.Linear))  # type: ignore[union-attr]
    last = model.lm_head  # type: ignore[union-attr]
    for p, s in zip((first.weight, first.bias, last.weight, last.bias), scales):
        p.copy_(torch.randn(p.shape, generator=gen) * s)


def build(rung: Rung, vocab_size: int, block_size: int, seed: int) -> nn.Module:
    """The lecture's MLP for one rung: the registry's mlp at the lecture's sizes, re-initialized if asked."""
    cfg = model_config("mlp", context=3, n_embd=10, n_hidden=200, n_layer=1, norm=rung.norm,
                       vocab_size=vocab_size, block_size=block_size)
    torch.manual_seed(seed)  # the same embedding table and kaiming draws for every rung
    model = create_model(cfg)
    if rung.randn is not None:
        randn_init_(model, rung.randn, torch.Generator().manual_seed(seed))
    return model


def init_saturation(t: Trained) -> float | None:
    """Fraction of the hidden tanh outputs with |t| > 0.97 on the first batch (the monitor's step 0)."""
    first = t.records.steps[0] if t.records.steps else None
    tanh = next((m.name for m in t.records.modules if m.kind == "Tanh"), None)
    if first is None or tanh not in first.acts:
        return None
    return first.acts[tanh].saturated


def run(lab: Lab) -> Outcome:
    data = lab.dataset
    V = data.vocab.size
    cfg = lab.recipe()
    table = Table(
        f"init ladder: 2-layer tanh MLP, {lab.steps} steps of {lab.batch_words()}",
        ["init", "step-0 loss", "ln(vocab)", "saturated at init", "train loss", "lecture train", "val loss", "lecture val",
         "findings"],
    )
    runs: list[Trained] = []
    for k, rung in enumerate(RUNGS):
        lab.say(f"[{k + 1}/{len(RUNGS)}] {rung.name}: {rung.init}")
        model = build(rung, V, data.block_size, lab.seed)
        t = lab.train(model, cfg, progress=True)
        if rung.norm == "batch" and not t.diverged:
            t.calibrate()  # exact running statistics over the training split, as the lecture did
        losses = t.losses()
        runs.append(t)
        table.add(rung.name, t.step0_loss, math.log(V), init_saturation(t), losses["train"], LECTURE_TRAIN[k],
                  losses["val"], LECTURE_VAL[k], t.codes() or ["healthy"])

    figs = {"init_ladder_loss": _loss_figure(runs, lab.steps), "init_ladder_tanh": _tanh_figure(runs)}
    step0 = table.column("step-0 loss")
    val = table.column("val loss")
    notes = [
        f"Step-0 loss falls from {step0[0]:.2f} (randn output layer: a confidently wrong softmax) to "
        f"{step0[1]:.2f} once the output layer is scaled down; ln({V}) = {math.log(V):.2f}.",
        f"Hidden units saturated at init: {_pct(table.rows[0][3])} with randn W1, {_pct(table.rows[2][3])} after "
        f"scaling W1 by 0.2, {_pct(table.rows[3][3])} with kaiming.",
        "Val loss per rung: " + ", ".join(f"{v:.4f}" for v in val) + " (lecture on names.txt at 200,000 steps: "
        + ", ".join(f"{v:.2f}" for v in LECTURE_VAL) + ").",
    ]
    return Outcome(
        [table], figs,
        intro="The lecture's MLP (context 3, 10-dimensional embeddings, 200 tanh units) trained five ways with "
              "the same seed and the same batches. A careless init wastes the first thousands of steps "
              "squashing a confidently wrong softmax and leaves tanh units saturated; scaling the layers, "
              "kaiming's gain or BatchNorm fix it, and the final loss improves.",
        method=[
            lab.data_words(),
            f"Optimization: {lab.steps} steps of plain SGD (no momentum, no weight decay, no clipping), lr 0.1, "
            "then 0.01 from half-way (TrainConfig(optimizer='sgd', momentum=0, schedule='step', lr_drops=(0.5,), "
            "lr_drop_factor=0.1)), as the lecture's 200,000 steps with the drop at 100,000.",
            "Model: makemore's mlp registry entry at context 3, n_embd 10, n_hidden 200, n_layer 1; rows 1-3 "
            "re-initialize W1, b1, W2, b2 with randn times the factors named; rows 4-5 keep the model's kaiming init.",
            "Step-0 loss is the first training batch's; saturation is the fraction of hidden tanh outputs with "
            "|t| > 0.97 on that batch; train and val loss are exact over the whole split (nats per character). "
            "The BatchNorm row's running statistics are recalibrated over the training split before evaluation.",
            "Findings: the codes of makemore.diagnostics' checks (warning or worse) over the monitored run.",
        ] + [f"Row {i + 1} ({r.name}): {r.init}." for i, r in enumerate(RUNGS)],
        notes=notes,
        runs={rung.name: t for rung, t in zip(RUNGS, runs)},
    )


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _loss_figure(runs: list[Trained], steps: int):  # type: ignore[no-untyped-def]
    fig, ax = new_figure()
    for rung, t, style in zip(RUNGS, runs, STYLES):
        ax.plot(*smoothed_losses(t.records.losses, steps), label=rung.name, lw=1, ls=style)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss (mean over {max(1, steps // 200)} steps)")
    ax.set_title("loss curves: the careless init spends its first steps undoing itself")
    ax.legend(fontsize=8)
    return fig


def _tanh_figure(runs: list[Trained]):  # type: ignore[no-untyped-def]
    """The lecture's histogram of the hidden tanh outputs on the first batch, one line per rung."""
    fig, ax = new_figure()
    for rung, t, style in zip(RUNGS, runs, STYLES):
        if not t.records.steps:
            continue
        tanh = next((m.name for m in t.records.modules if m.kind == "Tanh"), None)
        act = t.records.steps[0].acts.get(tanh) if tanh else None
        if act is None:
            continue
        plot_histogram(ax, act.hist, f"{rung.name} ({_pct(act.saturated)} saturated)", ls=style)
    ax.set_xlabel("tanh output at init")
    ax.set_ylabel("density")
    ax.set_title("hidden activations on the first batch")
    ax.legend(fontsize=8)
    return fig


EXPERIMENT = Experiment(
    "init-ladder", "Init ladder: from a careless init to kaiming and BatchNorm",
    "the lecture's 2-layer tanh MLP trained five ways: randn init -> scaled layers -> kaiming -> BatchNorm",
    run, steps=200_000, quick_steps=60,
)

__all__ = ["EXPERIMENT", "RUNGS", "Rung", "build", "randn_init_", "LECTURE_VAL", "LECTURE_TRAIN"]
