"""`mlp`: makemore part 2, Bengio et al. 2003's MLP on the lectures' examples.

Karpathy's "Building makemore Part 2: MLP" embeds each of 3 previous characters in 10
dimensions, concatenates them, and feeds one hidden layer of 200 tanh units and an output
layer; every parameter ~ randn (no scaling: that lesson comes in part 3). It trains for
200,000 SGD steps of 32 examples, lr 0.1 then 0.01 from step 100,000, and reports
train 2.1260 / val 2.1701.

The model is the registry's `mlp` at those sizes, its parameters drawn as the lecture draws
them (`init_ladder.lecture_init_`: one generator, the lecture's order and shapes; `--seed 2147483647` is
the lecture's own generator, so the run starts from the lecture's very numbers); training goes
through `makemore.train.Trainer` on example batches of the lectures' split.
"""

from __future__ import annotations

import math

import torch

from ..models import n_params
from .common import Experiment, Lab, Outcome, Table, new_figure, smoothed_losses
from .init_ladder import LECTURE_SEED, RUNGS, build

LECTURE = {"train": 2.1260, "val": 2.1701}
LECTURE_PARAMS = 11_897  # C (27x10), W1 (30x200), b1, W2 (200x27), b2


def run(lab: Lab) -> Outcome:
    data = lab.dataset
    # part 3's first rung is part 2's network: C, W1, b1, W2, b2 ~ randn from one generator; part 2's
    # notebook drew its batches from torch's unseeded global generator, so the Trainer's own seeds them
    model = build(RUNGS[0], data.vocab.size, data.block_size, torch.Generator().manual_seed(lab.seed))
    t = lab.train(model, lab.recipe(), progress=True)
    losses = t.losses(("train", "val", "test"))
    table = Table(
        f"part 2's MLP: context 3, 10-dim embeddings, 200 tanh units, randn init; {lab.steps} steps of {lab.batch_words()}",
        ["split", "loss", "lecture", "difference"],
    )
    for split in ("train", "val", "test"):
        ref = LECTURE.get(split)
        table.add(split, losses[split], ref, None if ref is None else losses[split] - ref)
    table.add("parameters", n_params(model), LECTURE_PARAMS, n_params(model) - LECTURE_PARAMS)

    fig, ax = new_figure()
    steps, smooth = smoothed_losses(t.records.losses, lab.steps)
    ax.plot(steps, [math.log10(v) for v in smooth], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("log10 training loss (block means)")
    ax.set_title("training loss: the drop at the lr decay")
    return Outcome(
        [table], {"mlp_loss": fig},
        intro="The neural language model of Bengio et al. (2003) at the lecture's sizes: embed the 3 previous "
              "characters, concatenate, one tanh layer, softmax over the next character.",
        method=[
            lab.data_words(),
            "Model: the registry's mlp (context 3, n_embd 10, n_hidden 200, n_layer 1), every parameter drawn from "
            f"randn as the lecture draws them, from a generator seeded {lab.seed}"
            + (" (the lecture's own)." if lab.seed == LECTURE_SEED else f" (the lecture's: --seed {LECTURE_SEED})."),
            f"Optimization: {lab.steps} steps of plain SGD, lr 0.1, then 0.01 from half-way.",
            "Losses: exact over whole splits (nats per character).",
        ],
        notes=[f"val {losses['val']:.4f} against the lecture's {LECTURE['val']} ({losses['val'] - LECTURE['val']:+.4f})."],
        runs={"mlp": t},
    )


EXPERIMENT = Experiment(
    "mlp", "Part 2: the MLP (Bengio et al. 2003)",
    "part 2: the lecture's MLP (context 3, 10-dim embeddings, 200 tanh units, randn init); train/val against 2.1260/2.1701",
    run, steps=200_000, quick_steps=60,
)

__all__ = ["EXPERIMENT", "LECTURE"]
