"""`bigram-counts` and `bigram-neural`: makemore part 1, the bigram model counted and learned.

Karpathy's "The spelled-out intro to language modeling: building makemore" (part 1) counts
every (character, next character) pair of names.txt, 228,146 of them, and scores the whole
file with the smoothed counts ((N + 1) normalized per row): average negative log-likelihood
2.4544 as printed by the lecture's loop, which adds up one float32 log-probability at a time.
Then it learns the same table by gradient descent: W ~ randn(27, 27), logits = one-hot @ W,
loss = mean NLL + 0.01 * mean(W^2), full-batch steps of lr 50, which settles near 2.48.

Both run on every line of the input, as the lecture did (there is no split in part 1): the
registry's `counts` model (closed form, add-k smoothing) and `bigram` model (a learned
table; one-hot @ W is its row lookup, see the `embedding` experiment).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data import BOUNDARY, IGNORE, Split, Vocab, encode_items, read_items
from ..evaluate import evaluate_split
from ..examples import build_examples
from ..models import create_model, model_config
from .common import Experiment, Lab, Outcome, Table, new_figure

# the lecture's printed figures (part 1 notebook)
LECTURE_PAIRS = 228_146
LECTURE_SMOOTHED = 2.4544     # (N + 1) counts, its float32 running sum
LECTURE_UNSMOOTHED = 2.4541   # N counts, its float32 running sum
LECTURE_STEP0 = 3.7686        # the regularized loss of W ~ randn with its generator (seed 2147483647)
LECTURE_NEURAL = 2.48         # the regularized loss after its gradient descent, "about 2.48"
LECTURE_SEED = 2147483647
REG = 0.01                    # weight of mean(W^2) in the loss
LR = 50.0


def whole_file(lab: Lab) -> tuple[Split, Vocab, str]:
    """Every line of the input as one split (the lecture's `words`), its vocabulary and its name."""
    if lab.settings.input is None:
        from ..corpora import builtin_names

        items, source = builtin_names(), "builtin:names"
    else:
        items, source = read_items(lab.settings.input), lab.settings.input
    vocab = Vocab.from_items(items)
    return encode_items(items, vocab, max(len(s) for s in items) + 1), vocab, source


def running_sum_nll(model: torch.nn.Module, pairs_x: torch.Tensor, pairs_y: torch.Tensor) -> float:
    """Mean NLL as the lecture's loop computes it: float32 log-probabilities added one at a time, in file order."""
    with torch.no_grad():
        logp = torch.log_softmax(model(pairs_x)[0][:, -1].float(), dim=-1)  # (N, V)
        picked = logp.gather(1, pairs_y[:, None]).squeeze(1).numpy()  # (N,)
    # numpy's float32 cumulative sum adds sequentially in float32, as `log_likelihood += logprob` does
    return -float(np.cumsum(picked, dtype=np.float32)[-1]) / len(picked)


def log_table(x: torch.Tensor, y: torch.Tensor, V: int, k: float) -> torch.Tensor:
    """(V, V) float64 log P(next | character) of the (x, y) pairs' counts with +k smoothing."""
    counts = torch.zeros(V, V, dtype=torch.float64).index_put_((x, y), torch.ones(len(x), dtype=torch.float64),
                                                               accumulate=True)
    smoothed = counts + k
    return (smoothed / smoothed.sum(1, keepdim=True)).log()


def variants(lab: Lab, split: Split, V: int) -> Table:
    """The counting bigram's average NLL under the natural variants of its recipe, in float64:
    the smoothing, what is averaged, which pairs are scored, and where it is counted."""
    pairs = build_examples(split, 1)
    x, y = pairs.x[:, 0], pairs.next_chars  # (N,) each
    line = (split.y != IGNORE).nonzero()[:, 0]  # (N,) the line each pair comes from, in the same order
    table = Table("the counting bigram's variants: average NLL", ["variant", "pairs scored", "NLL"])
    for k in (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0):
        table.add(f"+{k:g} smoothing, whole file, mean over pairs", len(x), -log_table(x, y, V, k)[x, y].mean().item())
    nll = -log_table(x, y, V, 1.0)[x, y]  # (N,)
    n_lines = int(line.max()) + 1
    per_line = torch.zeros(n_lines, dtype=torch.float64).index_add_(0, line, nll) / torch.bincount(line, minlength=n_lines)
    table.add("+1 smoothing, whole file, mean over lines of each line's mean", len(x), per_line.mean().item())
    for what, keep in (("the closing '.' not scored", y != BOUNDARY), ("the opening '.' not scored", x != BOUNDARY)):
        table.add(f"+1 smoothing, whole file, {what}", int(keep.sum()), nll[keep].mean().item())
    data = lab.dataset  # the lab's split of the same file (the lectures' by default)
    train = build_examples(data.splits["train"], 1)
    logp = log_table(train.x[:, 0], train.next_chars, data.vocab.size, 1.0)
    for name in ("train", "val", "test"):
        ex = build_examples(data.splits[name], 1)
        table.add(f"+1 smoothing, counted on the {lab.split_words()} train part, scored on its {name} part", len(ex),
                  -logp[ex.x[:, 0], ex.next_chars].mean().item())
    return table


def run_counts(lab: Lab) -> Outcome:
    split, vocab, source = whole_file(lab)
    pairs = build_examples(split, 1)  # every (character, next character) pair, in file order
    table = Table(
        f"counting bigram over every line of {source}: average negative log-likelihood per pair",
        ["smoothing", "pairs", "NLL (float64 sum)", "NLL (float32 running sum)", "lecture"],
    )
    for k, lecture in ((1.0, LECTURE_SMOOTHED), (0.0, LECTURE_UNSMOOTHED)):
        model = create_model(model_config("counts", smoothing=k, vocab_size=vocab.size, block_size=split.x.size(1)))
        model.fit_closed_form(split.x, split.y)  # type: ignore[operator]
        exact = evaluate_split(model, split)["nll"]
        table.add(f"+{k:g}", len(pairs), exact, running_sum_nll(model, pairs.x, pairs.next_chars), lecture)
        if k == 1.0:
            probs = model.log_probs().exp()  # type: ignore[operator]
    fig, ax = new_figure(width=6.0, height=6.0)
    ax.imshow(probs.numpy(), cmap="Blues")
    labels = ["."] + list(vocab.chars)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("next character")
    ax.set_ylabel("character")
    ax.set_title("P(next | character), +1 smoothing ('.' starts and ends a name)")
    ex, rs = table.rows[0][2], table.rows[0][3]
    return Outcome(
        [table, variants(lab, split, vocab.size)], {"bigram_counts": fig},
        intro="Count every (character, next character) pair, normalize each row, and the table is the "
              "maximum-likelihood bigram model; +1 smoothing keeps every probability above zero.",
        method=[
            f"Data: every line of {source} ({split.x.size(0)} lines), '.' (makemore's boundary token) before and after "
            f"each: {len(pairs)} pairs (the lecture: {LECTURE_PAIRS:,} on names.txt).",
            "Model: the registry's `counts` (fit_closed_form: one index_put_ of ones; add-k smoothing).",
            "NLL (float64 sum): makemore.evaluate over every pair. NLL (float32 running sum): the same "
            "log-probabilities added one at a time in float32, as the lecture's Python loop does.",
            "Variants: the same counts in float64 with other smoothing, averaged per line instead of per pair, "
            "without the boundary pairs, or counted on a train part and scored on held-out names.",
        ],
        notes=[f"The exact average is {ex:.4f}; adding float32 log-probabilities one by one, as the lecture's loop does, "
               f"gives {rs:.4f}" + (f": the lecture's printed {LECTURE_SMOOTHED} is that rounding, not a different model."
                                    if round(rs, 4) == LECTURE_SMOOTHED else " (the lecture's figures are for names.txt).")],
    )


def run_neural(lab: Lab) -> Outcome:
    split, vocab, source = whole_file(lab)
    pairs = build_examples(split, 1)  # (N, 1) characters, (N, 1) next characters: one full batch
    V = vocab.size
    model = create_model(model_config("bigram", vocab_size=V, block_size=split.x.size(1)))
    W = model.logits  # (V, V): row c holds the logits of the character after c
    with torch.no_grad():
        W.copy_(torch.randn(V, V, generator=torch.Generator().manual_seed(lab.seed)))  # the lecture's init
    losses: list[float] = []
    for _ in range(lab.steps):
        _, nll = model(pairs.x, pairs.y)
        loss = nll + REG * (W**2).mean()
        losses.append(loss.item())
        W.grad = None
        loss.backward()
        with torch.no_grad():
            W -= LR * W.grad
    _, nll = model(pairs.x, pairs.y)
    final_loss = (nll + REG * (W**2).mean()).item()
    counts = create_model(model_config("counts", smoothing=1.0, vocab_size=V, block_size=split.x.size(1)))
    counts.fit_closed_form(split.x, split.y)  # type: ignore[operator]
    count_nll = evaluate_split(counts, split)["nll"]
    gap = (torch.softmax(W.detach(), 1) - counts.log_probs().exp()).abs().max().item()  # type: ignore[operator]

    table = Table(
        f"neural bigram over every line of {source}: {lab.steps} full-batch steps of lr {LR:g}",
        ["quantity", "ours", "lecture"],
    )
    table.add("step-0 loss (randn W)", losses[0], LECTURE_STEP0 if lab.seed == LECTURE_SEED else None)
    table.add("final loss (NLL + 0.01 mean(W^2))", final_loss, LECTURE_NEURAL)
    table.add("final NLL", nll.item(), None)
    table.add("counting bigram NLL (+1 smoothing)", count_nll, LECTURE_SMOOTHED)
    table.add("max |softmax(W) - counts' probabilities|", gap, None)
    fig, ax = new_figure()
    ax.plot(range(len(losses)), losses, label="loss (NLL + 0.01 mean(W^2))")
    ax.axhline(count_nll, color="C2", ls="--", label=f"counting bigram {count_nll:.4f}")
    ax.set_xlabel("step (full batch)")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("gradient descent finds the counted table")
    return Outcome(
        [table], {"bigram_neural": fig},
        intro="The same bigram table learned by gradient descent: logits = one-hot(x) @ W, softmax, mean negative "
              "log-likelihood plus a small pull of W towards zero (the smoothing's counterpart).",
        method=[
            f"Data: every (character, next character) pair of {source}, {len(pairs)} pairs, all in every step.",
            f"Model: the registry's `bigram` (its (V, V) logits table is W), W ~ randn (seed {lab.seed}) as in the lecture "
            f"(whose generator is seeded {LECTURE_SEED}: --seed {LECTURE_SEED} draws its W).",
            f"Optimization: {lab.steps} steps of W -= {LR:g} * grad of NLL + {REG} * mean(W^2).",
        ],
        notes=[f"Final loss {final_loss:.4f} (the lecture: about {LECTURE_NEURAL}); the regularized NLL {nll.item():.4f} "
               f"approaches the counting bigram's {count_nll:.4f}"
               + ("." if math.isfinite(gap) else ", but the run diverged.")],
    )


COUNTS = Experiment(
    "bigram-counts", "Part 1: the counting bigram",
    "part 1: count every (character, next) pair of the whole file, +1 smoothing; NLL against the lecture's 2.4544; the recipe's variants",
    run_counts, steps=1, quick_steps=1, steps_means="closed form, no steps (the size is ignored)",
)
NEURAL = Experiment(
    "bigram-neural", "Part 1: the neural bigram",
    "part 1: the bigram table learned by full-batch gradient descent (lr 50, 0.01 mean(W^2)); against the counts",
    run_neural, steps=100, quick_steps=5, steps_means="full-batch gradient-descent steps",
)

__all__ = ["COUNTS", "NEURAL", "LECTURE_SMOOTHED", "running_sum_nll", "whole_file"]
