"""`update-ratio`: a learning-rate sweep read through the update:data ratio.

Karpathy's "Building makemore Part 3" plots, for every weight matrix, log10 of
std(lr * grad) / std(weight) over training and suggests a learning rate that puts it near
-3 (each step changes a weight matrix by about a thousandth of its spread). This experiment
trains the lecture's MLP (kaiming init) with plain SGD at log-spaced learning rates and puts
the final loss next to the median update:data ratio that the diagnostics monitor measured
around `optimizer.step()`, then names the best learning rate and the ratio it gives.
"""

from __future__ import annotations

import math
import statistics

import torch

from ..diagnostics.checks import update_log_ratios
from ..models import create_model, model_config
from .common import Experiment, Lab, Outcome, Table, Trained, new_figure

LRS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # about half a decade apart
GUIDE = -3.0  # the lecture's rule of thumb: log10 update:data ratio near -3


def median_log_ratio(t: Trained) -> float | None:
    """Median over recorded steps of the median log10 update:data ratio over the weight matrices."""
    per_step = [statistics.median(u) for s in t.records.steps if (u := update_log_ratios(s))]
    return statistics.median(per_step) if per_step else None


def run(lab: Lab) -> Outcome:
    data = lab.dataset
    batch = lab.batch_size
    cfg_model = model_config("mlp", context=3, n_embd=10, n_hidden=200, n_layer=1,
                             vocab_size=data.vocab.size, block_size=data.block_size)
    table = Table(
        f"learning-rate sweep: lecture MLP (kaiming init), plain SGD at a constant rate, {lab.steps} steps of {lab.batch_words(batch)}",
        ["lr", "train loss", "val loss", "log10 update:data", "findings"],
    )
    runs: list[Trained] = []
    for lr in LRS:
        torch.manual_seed(lab.seed)  # the same initial weights for every rate
        model = create_model(cfg_model)
        t = lab.train(model, lab.recipe(batch, lr=lr, decay=False))
        losses = t.losses()
        ratio = median_log_ratio(t)
        runs.append(t)
        table.add(lr, losses["train"], losses["val"], ratio, t.codes() or ["healthy"])
        lab.say(f"  lr {lr:g}: val {losses['val']:.4f}, log10 update:data {ratio if ratio is None else round(ratio, 2)}")

    vals = table.column("val loss")
    finite = [i for i, v in enumerate(vals) if math.isfinite(v)]
    best = min(finite, key=lambda i: vals[i]) if finite else None
    notes = []
    if best is not None:
        r = table.rows[best][3]
        notes.append(f"Best learning rate: {LRS[best]:g} (val loss {vals[best]:.4f}), where the median update:data ratio "
                     f"is 10^{r:.2f}; the lecture's guide is 10^-3.")
    diverged = [LRS[i] for i in range(len(LRS)) if i not in finite]
    if diverged:
        notes.append("Diverged (loss NaN/Inf): lr " + ", ".join(f"{x:g}" for x in diverged) + ".")
    pick = best if best is not None else 0
    figs = {"update_ratio_sweep": _sweep_figure(table), "update_ratio_steps": _steps_figure(runs[pick], LRS[pick])}
    return Outcome(
        [table], figs,
        intro="How big is each step compared with the weights it changes? The update:data ratio "
              "std(W_after - W_before) / std(W_before), measured around optimizer.step(), tells a learning rate that "
              "barely moves the weights (far below 10^-3) from one that throws them around (far above). The best "
              "rate of a sweep sits near the lecture's 10^-3 guide.",
        method=[
            "Model: makemore's mlp at the lecture's sizes (context 3, n_embd 10, n_hidden 200, one tanh layer), its kaiming init, "
            "the same initial weights and batches for every rate.",
            f"Training: {lab.steps} steps of plain SGD (no momentum, weight decay or clipping) at a constant rate; "
            f"{lab.batch_words(batch)} per step.",
            lab.data_words(),
            "Ratio: log10 update:data of each weight matrix (embedding and linear weights) measured by "
            "makemore.diagnostics.Monitor on about 40 recorded steps; the median over matrices, then over steps.",
            "Losses: exact over the whole train and val splits at the end (nats per character).",
        ],
        notes=notes,
    )


def _sweep_figure(table: Table):  # type: ignore[no-untyped-def]
    fig, ax = new_figure()
    ax.plot(LRS, [v if math.isfinite(v) else float("nan") for v in table.column("val loss")], "o-", color="C0")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("val loss", color="C0")
    ax2 = ax.twinx()
    ratios = [r if r is not None else float("nan") for r in table.column("log10 update:data")]
    ax2.plot(LRS, ratios, "s--", color="C1")
    ax2.axhline(GUIDE, color="k", lw=0.8, ls=":")
    ax2.set_ylabel("median log10 update:data (dotted: the 1e-3 guide)", color="C1")
    ax.set_title("final loss and update:data ratio across learning rates")
    return fig


def _steps_figure(t: Trained, lr: float):  # type: ignore[no-untyped-def]
    """The lecture's picture: log10 update:data of each weight matrix over the steps."""
    fig, ax = new_figure()
    names = sorted({n for s in t.records.steps for n, p in s.params.items() if p.grad_hist is not None})
    for name in names:
        pts = [(s.step, math.log10(p.update_ratio)) for s in t.records.steps
               if (p := s.params.get(name)) is not None and p.update_ratio and math.isfinite(p.update_ratio) and p.update_ratio > 0]
        if pts:
            ax.plot([a for a, _ in pts], [b for _, b in pts], label=name)
    ax.axhline(GUIDE, color="k", lw=0.8, ls=":", label="1e-3 guide")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 update:data")
    ax.set_title(f"update:data ratio per weight matrix at the best rate (lr {lr:g})")
    ax.legend(fontsize=8)
    return fig


EXPERIMENT = Experiment(
    "update-ratio", "Update:data ratio: reading a learning-rate sweep",
    "a log-spaced learning-rate sweep: final loss next to the median update:data ratio, the 1e-3 guide",
    run, steps=5000, quick_steps=40,
)
