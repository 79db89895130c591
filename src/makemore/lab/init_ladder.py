"""`init-ladder`: the lecture's 2-layer tanh MLP trained five ways, from a careless init to BatchNorm.

Karpathy's "Building makemore Part 3: Activations & Gradients, BatchNorm" starts from the
part-2 MLP (context 3, 10-dim embeddings, 200 tanh units) with every weight drawn from randn
and fixes its initialization one rung at a time, training each for 200,000 steps of 32
examples (lr 0.1, then 0.01 after 100,000 steps). Its loss log (train / val):

    original (randn everywhere)           2.1245 / 2.1682
    fix softmax confidently wrong         2.0696 / 2.1310   W2 * 0.01, b2 * 0
    fix tanh layer too saturated at init  2.0356 / 2.1027   W1 * 0.2, b1 * 0.01
    kaiming init (tanh gain 5/3)          2.0377 / 2.1070   W1 * (5/3) / sqrt(fan_in)
    add a BatchNorm layer                 2.0668 / 2.1048

Every rung is the registry's `mlp` at the lecture's sizes, its parameters drawn as the
lecture's cell draws them (`lecture_init_`): C, W1, b1, W2, b2 from one generator, in that
order, times the rung's factors (the BatchNorm rung has no b1 and draws none). The lecture
then takes its batch indices from the same generator, so the lab does too; with that
generator's seed (`--seed 2147483647`) a rung starts from the lecture's very numbers and sees
its very batches.
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
# the lecture's printed losses rounded to 4 decimals (it prints 2.0355966..., 2.1026785..., 2.0376641..., 2.1069896...)
LECTURE_TRAIN = (2.1245, 2.0696, 2.0356, 2.0377, 2.0668)
LECTURE_VAL = (2.1682, 2.1310, 2.1027, 2.1070, 2.1048)
LECTURE_SEED = 2147483647  # the lecture's torch.Generator seed


FAN_IN = 30  # the hidden layer reads 3 characters x 10 dimensions
KAIMING = (5 / 3) / math.sqrt(FAN_IN)  # tanh's gain over sqrt(fan_in)


@dataclass(frozen=True)
class Rung:
    name: str
    init: str                                   # how the weights are drawn, in words
    # factors of the randn draws of C, W1, b1, W2, b2 (b1 None: the hidden layer has no bias, none is drawn)
    scales: tuple[float, float, float | None, float, float]
    norm: str = "none"


RUNGS = (
    Rung("default-scale init", "C, W1, b1, W2, b2 ~ randn (no fan-in scaling)", (1.0, 1.0, 1.0, 1.0, 1.0)),
    Rung("output layer scaled down", "W2 * 0.01, b2 * 0", (1.0, 1.0, 1.0, 0.01, 0.0)),
    Rung("hidden layer scaled down too", "also W1 * 0.2, b1 * 0.01", (1.0, 0.2, 0.01, 0.01, 0.0)),
    Rung("kaiming (tanh gain 5/3)", "W1 * (5/3) / sqrt(fan_in) instead of * 0.2", (1.0, KAIMING, 0.01, 0.01, 0.0)),
    Rung("kaiming + BatchNorm", "as kaiming, hidden layer W1 (no bias) -> BatchNorm -> tanh", (1.0, KAIMING, None, 0.01, 0.0),
         norm="batch"),
)


@torch.no_grad()
def lecture_init_(model: nn.Module, scales: tuple[float, float, float | None, float, float], gen: torch.Generator) -> None:
    """Draw C, W1 (fan_in, H), b1, W2 (H, V), b2 from `gen` in the lecture's order and shapes, times
    `scales`, into the registry's mlp (whose Linear weights are W1.T and W2.T). A None factor skips b1."""
    first, last = model.hidden[0], model.lm_head  # type: ignore[index, union-attr]
    H, fan_in = first.weight.shape
    V = last.weight.shape[0]
    c, w1, b1, w2, b2 = scales
    model.wte.weight.copy_(torch.randn(model.wte.weight.shape, generator=gen) * c)  # type: ignore[union-attr]
    first.weight.copy_(torch.randn(fan_in, H, generator=gen).T * w1)
    if b1 is not None:
        first.bias.copy_(torch.randn(H, generator=gen) * b1)
    last.weight.copy_(torch.randn(H, V, generator=gen).T * w2)
    last.bias.copy_(torch.randn(V, generator=gen) * b2)


def build(rung: Rung, vocab_size: int, block_size: int, gen: torch.Generator) -> nn.Module:
    """The lecture's MLP for one rung, its parameters drawn from `gen` as the lecture draws them.

    `gen` is left where the lecture's next draws, its batch indices, begin.
    """
    cfg = model_config("mlp", context=3, n_embd=10, n_hidden=200, n_layer=1, norm=rung.norm,
                       vocab_size=vocab_size, block_size=block_size)
    model = create_model(cfg)
    if (model.hidden[0].bias is None) != (rung.scales[2] is None):  # type: ignore[index]
        raise ValueError(f"rung {rung.name!r}: b1's factor must be None exactly when the hidden layer has no bias")
    lecture_init_(model, rung.scales, gen)
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
        gen = torch.Generator().manual_seed(lab.seed)  # each rung restarts the lecture's generator
        model = build(rung, V, data.block_size, gen)
        t = lab.train(model, cfg, progress=True, batches_from=gen)
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
        intro="The lecture's MLP (context 3, 10-dimensional embeddings, 200 tanh units) trained five ways, "
              "each from the same seed, as the lecture did. A careless init wastes the first thousands of steps "
              "squashing a confidently wrong softmax and leaves tanh units saturated; scaling the layers, "
              "kaiming's gain or BatchNorm fix it, and the final loss improves.",
        method=[
            lab.data_words(),
            f"Optimization: {lab.steps} steps of plain SGD (no momentum, no weight decay, no clipping), lr 0.1, "
            "then 0.01 from half-way (TrainConfig(optimizer='sgd', momentum=0, schedule='step', lr_drops=(0.5,), "
            "lr_drop_factor=0.1)), as the lecture's 200,000 steps with the drop at 100,000.",
            "Model: makemore's mlp registry entry at context 3, n_embd 10, n_hidden 200, n_layer 1; C, W1, b1, W2, b2 "
            f"drawn from randn times each row's factors, in the lecture's order, from one generator seeded {lab.seed}, "
            "which then draws the batch indices, as in the lecture"
            + (" (whose generator is seeded so)." if lab.seed == LECTURE_SEED else f" (the lecture's: --seed {LECTURE_SEED})."),
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

__all__ = ["EXPERIMENT", "RUNGS", "Rung", "build", "lecture_init_", "LECTURE_SEED", "LECTURE_VAL", "LECTURE_TRAIN"]
