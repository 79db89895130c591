"""`wavenet-log`: makemore part 5's performance log, from part 3's MLP to the hierarchical model.

Karpathy's "Building makemore Part 5: Building a WaveNet" starts from part 3's MLP with
BatchNorm and ends with a tree of layers that fuse two consecutive positions at a time (van
den Oord et al. 2016), logging train / val after each change, every row 200,000 SGD steps of
32 examples, lr 0.1 then 0.01 from step 150,000:

    original (context 3, 200 hidden, 12K params)     2.058 / 2.105
    context 3 -> 8 (22K params)                        1.918 / 2.027
    flat -> hierarchical (22K params)                  1.941 / 2.029
    fix bug in BatchNorm                               1.912 / 2.022
    n_embd 24, n_hidden 128 (76K params)               1.769 / 1.993

Its layers are initialized as in the lecture: weights randn / sqrt(fan_in) (gain 1), the
output layer's scaled by 0.1, Linear without bias before each BatchNorm. Rows 1-2 are the
registry's `mlp` with BatchNorm, rows 3-5 its `wavenet`. Row 3 keeps the lecture's bug: on the
(N, L, H) input of a fused level its BatchNorm took statistics over dimension 0 only, one mean
and variance per position and channel instead of per channel (`PerPositionBatchNorm`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..models import create_model, model_config, n_params
from .common import Experiment, Lab, Outcome, Table, Trained, new_figure, smoothed_losses

DROP = 0.75  # lr 0.1 -> 0.01 at step 150,000 of 200,000


@dataclass(frozen=True)
class Row:
    name: str
    family: str                     # registry name
    context: int
    n_embd: int
    n_hidden: int
    lecture_params: int
    lecture_train: float
    lecture_val: float
    bn_bug: bool = False


ROWS = (
    Row("original (context 3, 200 hidden)", "mlp", 3, 10, 200, 12_097, 2.058, 2.105),
    Row("context 3 -> 8", "mlp", 8, 10, 200, 22_097, 1.918, 2.027),
    Row("flat -> hierarchical (BatchNorm bug)", "wavenet", 8, 10, 68, 22_397, 1.941, 2.029, bn_bug=True),
    Row("fix bug in BatchNorm", "wavenet", 8, 10, 68, 22_397, 1.912, 2.022),
    Row("n_embd 24, n_hidden 128", "wavenet", 8, 24, 128, 76_579, 1.769, 1.993),
)


class PerPositionBatchNorm(nn.Module):
    """The lecture's bug: BatchNorm of (N*L, H) rows with one mean and variance per (position, channel).

    The lecture's BatchNorm averaged over dimension 0 of an (N, L, H) input, so each of the L
    positions got its own statistics, while gain and shift stayed per channel. Here the statistics
    live in an `nn.BatchNorm1d(L * H)` without affine parameters (so calibration finds them).
    """

    def __init__(self, positions: int, width: int, momentum: float = 0.1) -> None:
        super().__init__()
        self.positions = positions
        self.stats = nn.BatchNorm1d(positions * width, momentum=momentum, affine=False)
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        H = h.size(1)
        x = self.stats(h.reshape(-1, self.positions * H))  # (N, L*H): rows are (item, position)-major
        return x.view(-1, H) * self.weight + self.bias  # (N*L, H)


def build(row: Row, vocab_size: int, block_size: int, seed: int) -> nn.Module:
    """One row's model from the registry at the lecture's sizes and init."""
    layers = {"n_layer": 1} if row.family == "mlp" else {}  # the wavenet's depth follows from its context
    cfg = model_config(row.family, context=row.context, n_embd=row.n_embd, n_hidden=row.n_hidden, norm="batch",
                       activation="tanh", init_gain=1.0, init_output_scale=0.1, vocab_size=vocab_size,
                       block_size=block_size, **layers)
    torch.manual_seed(seed)
    model = create_model(cfg)
    if row.bn_bug:
        positions = row.context // 2
        for level in model.levels:  # type: ignore[union-attr]
            if positions > 1:  # on the last level (one position) the bug changed nothing
                level.norm = PerPositionBatchNorm(positions, row.n_hidden, cfg.bn_momentum)
            positions //= 2
    return model


def run(lab: Lab) -> Outcome:
    data = lab.dataset
    cfg = lab.recipe(drop=DROP)
    table = Table(
        f"part 5's performance log: {lab.steps} steps of {lab.batch_words()} per row",
        ["model", "parameters", "lecture parameters", "train loss", "lecture train", "val loss", "lecture val"],
    )
    rows = [ROWS[k] for k in lab.selected(len(ROWS))]
    runs: list[Trained] = []
    for k, row in zip(lab.selected(len(ROWS)), rows):
        lab.say(f"[row {k + 1} of {len(ROWS)}] {row.name}")
        model = build(row, data.vocab.size, data.block_size, lab.seed)
        t = lab.train(model, cfg, progress=True)
        if not t.diverged:
            t.calibrate()  # exact BatchNorm statistics over the training split
        losses = t.losses()
        runs.append(t)
        table.add(row.name, n_params(model), row.lecture_params, losses["train"], row.lecture_train, losses["val"],
                  row.lecture_val)

    fig, ax = new_figure()
    for row, t in zip(rows, runs):
        ax.plot(*smoothed_losses(t.records.losses, lab.steps), label=row.name, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (block means)")
    ax.set_title("more context, fused in a tree, and a wider model")
    ax.legend(fontsize=8)
    val = table.column("val loss")
    return Outcome(
        [table], {"wavenet_log_loss": fig},
        intro="From part 3's MLP to a hierarchical model that fuses consecutive characters two at a time, one "
              "change per row, as in the lecture's performance log.",
        method=[
            lab.data_words(),
            f"Optimization: {lab.steps} steps of plain SGD, lr 0.1, then 0.01 from {DROP:.0%} of the run (the "
            "lecture: step 150,000 of 200,000).",
            "Models: rows 1-2 the registry's mlp (one hidden layer, Linear without bias -> BatchNorm1d -> tanh), "
            "rows 3-5 its wavenet (three levels fusing pairs of positions); weights randn / sqrt(fan_in) "
            "(init_gain 1), output layer scaled by 0.1, as the lecture's Linear.",
            "Row 3 reproduces the lecture's BatchNorm bug (statistics per position and channel); row 4 fixes it.",
            "Losses: exact over whole splits after recalibrating the BatchNorm statistics over the training split.",
        ] + [f"Row {i + 1}: {r.name}, {r.family}, context {r.context}, n_embd {r.n_embd}, n_hidden {r.n_hidden}."
             for i, r in enumerate(ROWS)],
        notes=[f"{r.name}: val {v:.4f} against the lecture's {r.lecture_val} ({v - r.lecture_val:+.4f})."
               for r, v in zip(rows, val)],
        runs={row.name: t for row, t in zip(rows, runs)},
    )


EXPERIMENT = Experiment(
    "wavenet-log", "Part 5: the WaveNet performance log",
    "part 5: MLP -> context 8 -> hierarchical (with and without the BatchNorm bug) -> wider; train/val per row",
    run, steps=200_000, quick_steps=40, rows=len(ROWS),
)

__all__ = ["EXPERIMENT", "ROWS", "Row", "PerPositionBatchNorm", "build"]
