"""`batchnorm-coupling`: BatchNorm ties the examples of a batch together; calibration after training.

Karpathy's "Building makemore Part 3" points out BatchNorm's side effect: in training mode an
example's output depends on which other examples share its batch (the batch mean and
variance), which regularizes a little and causes bugs; in eval mode the running statistics
replace the batch's, and LayerNorm or GroupNorm never look across examples. It then
recomputes the statistics over the whole training set after training ("calibration").
This experiment measures the coupling with `makemore.batchnorm.coupling` for each norm and
mode, then trains a BatchNorm MLP and reports its val loss before and after
`makemore.batchnorm.calibrate`.
"""

from __future__ import annotations

import torch

from ..batchnorm import coupling
from ..models import create_model, model_config
from .common import Experiment, Lab, Outcome, Table, new_figure

NORMS = ("batch", "layer", "group", "none")
BATCH = 8  # items in the batch whose other examples are swapped


def _model(lab: Lab, norm: str) -> torch.nn.Module:
    data = lab.dataset
    cfg = model_config("mlp", context=3, n_embd=10, n_hidden=200, n_layer=1, norm=norm,
                       vocab_size=data.vocab.size, block_size=data.block_size)
    torch.manual_seed(lab.seed)
    return create_model(cfg).to(lab.device)


def run(lab: Lab) -> Outcome:
    data = lab.dataset
    x_all = data.splits["train"].x.to(lab.device)
    if x_all.size(0) < 2 * BATCH:
        idx = torch.arange(2 * BATCH) % x_all.size(0)
        x_all = x_all[idx]
    x = x_all[:BATCH]  # (B, T)
    x_changed = torch.cat([x[:1], x_all[BATCH + 1 : 2 * BATCH]])  # example 0 kept, the other 7 replaced
    couple = Table(
        f"coupling: largest change of example 0's logits when the other {BATCH - 1} items of its batch are replaced",
        ["norm", "mode", "max |change|", "coupled"],
    )
    for norm in NORMS:
        model = _model(lab, norm)
        for mode in ("train", "eval"):
            model.train(mode == "train")
            change = coupling(model, x, x_changed, i=0)
            couple.add(norm, mode, change, change > 0)

    batch = lab.batch_size
    t = lab.train(_model(lab, "batch"), lab.recipe(batch), progress=True)
    before = t.losses()
    layers = t.calibrate()
    after = t.losses()
    calib = Table(
        f"a BatchNorm MLP after {lab.steps} steps: loss with its running statistics, then with exact ones",
        ["split", "running stats", "calibrated", "change"],
    )
    for split in ("train", "val"):
        calib.add(split, before[split], after[split], after[split] - before[split])

    fig, ax = new_figure()
    labels = [f"{r[0]}\n{r[1]}" for r in couple.rows]
    ax.bar(range(len(labels)), [max(v, 1e-12) for v in couple.column("max |change|")], color=[
        "C3" if c else "C2" for c in couple.column("coupled")])
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("max |change| of example 0's logits (1e-12: none)")
    ax.set_title("only BatchNorm in train mode looks across the batch")

    coupled = [f"{r[0]}/{r[1]}" for r in couple.rows if r[3]]
    notes = [
        "Coupled: " + (", ".join(coupled) if coupled else "none") + "; every other norm and mode leaves example 0 exactly unchanged.",
        f"Calibrating {layers} BatchNorm layer(s) over the training split moved the val loss from {before['val']:.4f} "
        f"to {after['val']:.4f} ({after['val'] - before['val']:+.4f}).",
    ]
    return Outcome(
        [couple, calib], {"batchnorm_coupling": fig},
        intro="BatchNorm normalizes each feature with the mean and variance of the current batch, so in training "
              "mode an example's output depends on its batch-mates. In eval mode the running statistics are used "
              "instead, and LayerNorm and GroupNorm normalize each example on its own. After training, the running "
              "statistics (an exponential average over recent batches) can be replaced by the exact statistics of "
              "the training set.",
        method=[
            f"Coupling: makemore's mlp (context 3, n_embd 10, n_hidden 200) with each --norm; a batch of {BATCH} "
            f"training items, then the same batch with items 2-{BATCH} replaced; makemore.batchnorm.coupling "
            "reports the largest change of item 1's logits.",
            f"Calibration: the BatchNorm mlp trained {lab.steps} steps with the lecture's SGD recipe ({batch} items per "
            "step, lr 0.1 then 0.01 from half-way), evaluated exactly with its running statistics, then after "
            "makemore.batchnorm.calibrate over the whole training split.",
        ],
        notes=notes,
    )


EXPERIMENT = Experiment(
    "batchnorm-coupling", "BatchNorm: coupling between examples, and calibration",
    "one example's output depends on its batch with BatchNorm in train mode only; val loss before/after calibration",
    run, steps=10000, quick_steps=60,
)
