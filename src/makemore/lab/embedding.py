"""`embedding`: a table lookup is a one-hot vector times the table (makemore part 2).

Karpathy's "Building makemore Part 2: MLP" notes that `C[ix]` equals `F.one_hot(ix) @ C`: the
embedding is a linear layer without bias whose input happens to be one-hot, so PyTorch can
skip the multiplication and just index. This experiment checks both value and gradient in
float64 on the corpus's own context windows, then times forward + backward of each in float32
for growing vocabularies, where the one-hot matrix grows as (ids x vocab).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.common import context_windows
from .common import Experiment, Lab, Outcome, Table, median_ms, new_figure


def _both(idx: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(one-hot @ table, table lookup) for (N,) ids and a (V, D) table."""
    one_hot = F.one_hot(idx, table.size(0)).to(table.dtype)  # (N, V)
    return one_hot @ table, F.embedding(idx, table)  # (N, D) each


def agreement(idx: torch.Tensor, vocab: int, n_embd: int, gen: torch.Generator) -> tuple[float, float]:
    """Max |difference| of value and of the table's gradient between one-hot @ C and C[idx], in float64."""
    table = torch.randn(vocab, n_embd, dtype=torch.float64, generator=gen)
    upstream = torch.randn(idx.numel(), n_embd, dtype=torch.float64, generator=gen)  # some dL/d(output)
    grads, values = [], []
    for k in range(2):
        c = table.clone().requires_grad_(True)
        out = _both(idx, c)[k]
        out.backward(upstream)
        values.append(out.detach())
        grads.append(c.grad)
    return (values[0] - values[1]).abs().max().item(), (grads[0] - grads[1]).abs().max().item()


def timings(idx: torch.Tensor, vocab: int, n_embd: int, repeats: int, gen: torch.Generator) -> tuple[float, float]:
    """Median ms of forward + backward (float32) for one-hot @ C and for C[idx]."""
    table = torch.randn(vocab, n_embd, generator=gen).requires_grad_(True)
    upstream = torch.randn(idx.numel(), n_embd, generator=gen)

    def one_hot_pass() -> None:
        table.grad = None
        (F.one_hot(idx, vocab).float() @ table).backward(upstream)  # (N, V) @ (V, D)

    def lookup_pass() -> None:
        table.grad = None
        F.embedding(idx, table).backward(upstream)  # (N, D)

    return median_ms(one_hot_pass, repeats), median_ms(lookup_pass, repeats)


def run(lab: Lab) -> Outcome:
    data = lab.dataset
    gen = torch.Generator().manual_seed(lab.seed)
    V = data.vocab.size
    # the corpus's own ids: the lectures' context of 3 characters before every position
    x = data.splits["train"].x[:32]  # (32, T) items
    corpus_ids = context_windows(x, 3).reshape(-1)  # (32*T*3,)
    shapes = [  # (ids, vocab, n_embd, what)
        (corpus_ids[:96], V, 10, "lecture batch (32 x 3)"),
        (corpus_ids, V, 64, "32 items of the corpus"),
    ]
    n_ids = 1024 if lab.quick else 4096
    for vocab in (1024,) if lab.quick else (1024, 8192):
        shapes.append((torch.randint(vocab, (n_ids,), generator=gen), vocab, 64, "word-sized vocabulary"))
    table = Table(
        "one-hot @ C vs the lookup C[ids]: value and gradient in float64, forward+backward time in float32",
        ["case", "ids", "vocab", "n_embd", "value max|diff|", "grad max|diff|", "one-hot ms", "lookup ms", "one-hot/lookup"],
    )
    for ids, vocab, n_embd, what in shapes:
        dv, dg = agreement(ids, vocab, n_embd, gen)
        t_hot, t_look = timings(ids, vocab, n_embd, lab.steps, gen)
        table.add(what, ids.numel(), vocab, n_embd, dv, dg, t_hot, t_look, t_hot / t_look)
        lab.say(f"  {what}: one-hot {t_hot:.3f} ms, lookup {t_look:.3f} ms")

    fig, ax = new_figure()
    labels = [f"{r[0]}\nV={r[2]}" for r in table.rows]
    pos = range(len(labels))
    ax.bar([p - 0.2 for p in pos], table.column("one-hot ms"), width=0.4, label="one-hot @ C")
    ax.bar([p + 0.2 for p in pos], table.column("lookup ms"), width=0.4, label="C[ids] (lookup)")
    ax.set_xticks(list(pos), labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("forward + backward, ms (median)")
    ax.set_title("the same numbers, very different cost")
    ax.legend()

    worst = max(max(table.column("value max|diff|")), max(table.column("grad max|diff|")))
    ratio = table.rows[-1][-1]
    return Outcome(
        [table], {"embedding_speed": fig},
        intro="An embedding lookup <code>C[ids]</code> is a one-hot matrix times the table: a linear layer "
              "whose input is one-hot. Both give the same output and the same gradient for the table; the "
              "lookup skips multiplying by zeros, and the one-hot matrix grows with the vocabulary.",
        method=[f"Ids: the corpus's context windows of 3 characters (vocabulary {V}), then random ids for larger vocabularies.",
                "Agreement: one random table and one random upstream gradient in float64, both ways through autograd.",
                f"Speed: median of {lab.steps} forward + backward passes in float32 on the CPU "
                f"({torch.get_num_threads()} threads), after 2 warm-up passes."],
        notes=[f"Largest difference in value or gradient: {worst:.1e} (float64).",
               f"At vocabulary {table.rows[-1][2]} the one-hot product takes {ratio:.1f}x the lookup's time."],
    )


EXPERIMENT = Experiment(
    "embedding", "Embedding: one-hot @ table equals the lookup",
    "one-hot @ C equals C[ids] in value and gradient; the speed of each",
    run, steps=50, quick_steps=3, steps_means="timing repeats per case",
)
