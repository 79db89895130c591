"""Backpropagation by hand through the lectures' two-layer MLP with BatchNorm.

Follows Karpathy's "Building makemore Part 4: Becoming a Backprop Ninja" (2022): the forward
pass is written one small tensor operation at a time and keeps every intermediate; the backward
pass walks the same chain in reverse, one line per intermediate, and must agree with autograd.

    emb = C[X]                        (n, context, n_embd)   embedding lookup
    embcat = emb.view(n, -1)          (n, context*n_embd)    concatenation as a view
    hprebn = embcat @ W1 (+ b1)       (n, H)                 linear
    bnmeani .. hpreact                (n, H)                 BatchNorm, step by step
    h = tanh(hpreact)                 (n, H)
    logits = h @ W2 + b2              (n, V)                 linear
    logit_maxes .. logprobs, loss                            cross-entropy, step by step

Targets equal to IGNORE (padding of makemore's (B, T) rows) carry no loss but still count in
BatchNorm's batch statistics, as in the lectures, where every example of the batch does. (The `mlp`
model with `--norm batch` differs: its statistics cover the positions with a target only.)

Besides the line-by-line backward there are the lecture's compact formulas: cross-entropy's
`dlogits = (softmax - one_hot) / n` and BatchNorm's
`dhprebn = gain * inv_std / n * (n * dhpreact - dhpreact.sum(0) - bnraw * (dhpreact * bnraw).sum(0))`.

One deliberate difference from the lecture: the batch variance uses 1/n (biased), as
`torch.nn.BatchNorm1d` does in training, so the train-mode output equals PyTorch's batch_norm;
the running variance stores the unbiased estimate, again as PyTorch does. The lecture's
b1 (a bias cancelled by BatchNorm, whose gradient is zero up to rounding) is optional.

`gradcheck()` builds the table `makemore gradcheck` prints; `train()` is a training loop
whose gradients come only from the hand-written backward (or, for comparison, from autograd).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .data import IGNORE
from .models.common import context_windows

EPS = 1e-5  # BatchNorm's epsilon, as nn.BatchNorm1d

# every tensor of the forward pass in the order the backward pass reaches it, then the compact formulas
BACKWARD_ORDER = (
    "logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes", "logits",
    "h", "W2", "b2", "hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar", "bndiff2", "bndiff",
    "bnmeani", "hprebn", "embcat", "W1", "b1", "emb", "C",
)
def init_params(
    vocab_size: int, context: int, n_embd: int, n_hidden: int, generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32, b1: bool = True, lecture: bool = True,
    init_gain: float = 5 / 3, output_scale: float = 0.1,
) -> dict[str, torch.Tensor]:
    """Parameters of the MLP; W1 is (fan_in, H) and W2 is (H, V), used as `x @ W`.

    `lecture=True` is the lecture's initialization for checking gradients: biases, gains and
    shifts get small random values so that no wrong formula can hide behind a zero.
    Otherwise: zero biases, unit gain, zero shift (what a model trains from).
    """
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=dtype)

    fan_in = context * n_embd
    p = {
        "C": randn(vocab_size, n_embd),
        "W1": randn(fan_in, n_hidden) * (init_gain / math.sqrt(fan_in)),  # Kaiming init for tanh
        "b1": randn(n_hidden) * 0.1 if lecture else torch.zeros(n_hidden, dtype=dtype),
        "bngain": randn(n_hidden) * 0.1 + 1.0 if lecture else torch.ones(n_hidden, dtype=dtype),
        "bnbias": randn(n_hidden) * 0.1 if lecture else torch.zeros(n_hidden, dtype=dtype),
        "W2": randn(n_hidden, vocab_size) * (output_scale / math.sqrt(n_hidden)),  # near-uniform first softmax
        "b2": randn(vocab_size) * 0.1 if lecture else torch.zeros(vocab_size, dtype=dtype),
    }
    if not b1:
        del p["b1"]
    return p


def examples(idx: torch.Tensor, targets: torch.Tensor, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) rows of ids and targets -> the lecture's (B*T, context) windows and (B*T,) targets.

    Every position is an example for BatchNorm's statistics (what calibration reproduces for this
    model); padding positions keep their IGNORE target and carry no loss.
    """
    return context_windows(idx, context).reshape(-1, context), targets.reshape(-1)  # (n, context), (n,)


def _picked(Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and class index of every example with a target (rows whose target is IGNORE carry no loss)."""
    rows = (Y != IGNORE).nonzero().squeeze(1)  # (N,)
    return rows, Y[rows]


def forward(p: dict[str, torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The forward pass in small steps; returns every intermediate (and 'loss').

    When the parameters require grad, every intermediate retains its grad, so autograd's
    answer can be read off each one after `loss.backward()`.
    """
    n = X.size(0)
    t: dict[str, torch.Tensor] = {}
    t["emb"] = p["C"][X]  # (n, context, n_embd)
    t["embcat"] = t["emb"].view(n, -1)  # (n, context*n_embd)
    t["hprebn"] = t["embcat"] @ p["W1"] + p["b1"] if "b1" in p else t["embcat"] @ p["W1"]  # (n, H)
    # BatchNorm over the batch dimension
    t["bnmeani"] = 1 / n * t["hprebn"].sum(0, keepdim=True)  # (1, H)
    t["bndiff"] = t["hprebn"] - t["bnmeani"]  # (n, H)
    t["bndiff2"] = t["bndiff"] ** 2  # (n, H)
    t["bnvar"] = 1 / n * t["bndiff2"].sum(0, keepdim=True)  # (1, H) biased, as nn.BatchNorm1d in training
    t["bnvar_inv"] = (t["bnvar"] + EPS) ** -0.5  # (1, H)
    t["bnraw"] = t["bndiff"] * t["bnvar_inv"]  # (n, H)
    t["hpreact"] = p["bngain"] * t["bnraw"] + p["bnbias"]  # (n, H)
    t["h"] = torch.tanh(t["hpreact"])  # (n, H)
    t["logits"] = t["h"] @ p["W2"] + p["b2"]  # (n, V)
    # cross-entropy, step by step (max subtracted for stability)
    t["logit_maxes"] = t["logits"].max(1, keepdim=True).values  # (n, 1)
    t["norm_logits"] = t["logits"] - t["logit_maxes"]  # (n, V)
    t["counts"] = t["norm_logits"].exp()  # (n, V)
    t["counts_sum"] = t["counts"].sum(1, keepdim=True)  # (n, 1)
    t["counts_sum_inv"] = t["counts_sum"] ** -1  # (n, 1)
    t["probs"] = t["counts"] * t["counts_sum_inv"]  # (n, V)
    t["logprobs"] = t["probs"].log()  # (n, V)
    rows, cols = _picked(Y)
    t["loss"] = -t["logprobs"][rows, cols].sum() / rows.numel()  # mean over examples with a target
    if t["loss"].requires_grad:
        for v in t.values():
            v.retain_grad()
    return t


@torch.no_grad()
def backward(p: dict[str, torch.Tensor], X: torch.Tensor, Y: torch.Tensor, t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """d loss / d every intermediate and parameter, one line per step of `forward`, in reverse."""
    n, V = t["logits"].shape
    rows, cols = _picked(Y)
    d: dict[str, torch.Tensor] = {}
    d["logprobs"] = torch.zeros_like(t["logprobs"])
    d["logprobs"][rows, cols] = -1.0 / rows.numel()  # loss = -mean of the picked log-probabilities
    d["probs"] = d["logprobs"] / t["probs"]  # d log(x) = 1/x
    d["counts_sum_inv"] = (t["counts"] * d["probs"]).sum(1, keepdim=True)  # broadcast over V -> sum
    d["counts_sum"] = -t["counts_sum"] ** -2 * d["counts_sum_inv"]
    # counts feeds probs directly and through counts_sum: two contributions add
    d["counts"] = t["counts_sum_inv"] * d["probs"] + d["counts_sum"].expand_as(t["counts"])
    d["norm_logits"] = t["counts"] * d["counts"]  # d exp(x) = exp(x)
    d["logit_maxes"] = -d["norm_logits"].sum(1, keepdim=True)  # ~0: the max does not change the loss
    # logits feed norm_logits directly and through the max (to the position of the max)
    d["logits"] = d["norm_logits"] + F.one_hot(t["logits"].max(1).indices, V).to(d["norm_logits"].dtype) * d["logit_maxes"]
    d["h"] = d["logits"] @ p["W2"].T  # (n, H)
    d["W2"] = t["h"].T @ d["logits"]  # (H, V)
    d["b2"] = d["logits"].sum(0)  # (V,)
    d["hpreact"] = (1.0 - t["h"] ** 2) * d["h"]  # d tanh(x) = 1 - tanh(x)^2
    d["bngain"] = (t["bnraw"] * d["hpreact"]).sum(0)  # (H,)
    d["bnbias"] = d["hpreact"].sum(0)  # (H,)
    d["bnraw"] = p["bngain"] * d["hpreact"]  # (n, H)
    d["bnvar_inv"] = (t["bndiff"] * d["bnraw"]).sum(0, keepdim=True)  # (1, H)
    d["bnvar"] = -0.5 * (t["bnvar"] + EPS) ** -1.5 * d["bnvar_inv"]  # (1, H)
    d["bndiff2"] = (1.0 / n) * torch.ones_like(t["bndiff2"]) * d["bnvar"]  # (n, H)
    # bndiff feeds bnraw directly and bnvar through bndiff2
    d["bndiff"] = t["bnvar_inv"] * d["bnraw"] + 2 * t["bndiff"] * d["bndiff2"]  # (n, H)
    d["bnmeani"] = -d["bndiff"].sum(0, keepdim=True)  # (1, H)
    d["hprebn"] = d["bndiff"] + (1.0 / n) * torch.ones_like(t["hprebn"]) * d["bnmeani"]  # (n, H)
    d["embcat"] = d["hprebn"] @ p["W1"].T  # (n, context*n_embd)
    d["W1"] = t["embcat"].T @ d["hprebn"]  # (context*n_embd, H)
    if "b1" in p:
        d["b1"] = d["hprebn"].sum(0)  # (H,) zero up to rounding: BatchNorm subtracts any bias
    d["emb"] = d["embcat"].view(t["emb"].shape)  # undo the view
    d["C"] = torch.zeros_like(p["C"]).index_add_(0, X.reshape(-1), d["emb"].reshape(-1, p["C"].size(1)))  # scatter-add rows
    return d


@torch.no_grad()
def dlogits_compact(t: dict[str, torch.Tensor], Y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy's gradient in one line: (softmax - one_hot) / N (zero on rows without a target)."""
    rows, cols = _picked(Y)
    dlogits = F.softmax(t["logits"], dim=1)  # (n, V)
    dlogits[rows, cols] -= 1.0
    dlogits[Y == IGNORE] = 0.0
    return dlogits / rows.numel()


@torch.no_grad()
def dhprebn_compact(p: dict[str, torch.Tensor], t: dict[str, torch.Tensor], dhpreact: torch.Tensor) -> torch.Tensor:
    """BatchNorm's backward in one line (biased batch variance)."""
    n = dhpreact.size(0)
    bnraw = t["bnraw"]
    return p["bngain"] * t["bnvar_inv"] / n * (n * dhpreact - dhpreact.sum(0) - bnraw * (dhpreact * bnraw).sum(0))


@torch.no_grad()
def backward_compact(p: dict[str, torch.Tensor], X: torch.Tensor, Y: torch.Tensor, t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Parameter gradients through the compact cross-entropy and BatchNorm formulas (what training uses)."""
    dlogits = dlogits_compact(t, Y)  # (n, V)
    g = {"W2": t["h"].T @ dlogits, "b2": dlogits.sum(0)}
    dhpreact = (1.0 - t["h"] ** 2) * (dlogits @ p["W2"].T)  # (n, H)
    g["bngain"] = (t["bnraw"] * dhpreact).sum(0)
    g["bnbias"] = dhpreact.sum(0)
    dhprebn = dhprebn_compact(p, t, dhpreact)  # (n, H)
    g["W1"] = t["embcat"].T @ dhprebn
    if "b1" in p:
        g["b1"] = dhprebn.sum(0)
    demb = (dhprebn @ p["W1"].T).view(t["emb"].shape)  # (n, context, n_embd)
    g["C"] = torch.zeros_like(p["C"]).index_add_(0, X.reshape(-1), demb.reshape(-1, p["C"].size(1)))
    return g


# ---------------------------------------------------------------------------------------------
# the check against autograd


@dataclass(frozen=True)
class GradRow:
    name: str
    shape: tuple[int, ...]
    exact: bool          # bit-for-bit equal to autograd's gradient
    max_abs_diff: float


def gradcheck(
    batch_size: int = 32, vocab_size: int = 27, context: int = 3, n_embd: int = 10, n_hidden: int = 64,
    seed: int = 42, dtype: torch.dtype = torch.float64, n_ignored: int = 0,
) -> list[GradRow]:
    """Compare the hand-written gradients of every tensor with autograd's, on a random batch.

    One row per intermediate and parameter (line-by-line backward), then the compact
    cross-entropy and BatchNorm formulas. `n_ignored` examples get an IGNORE target.
    """
    g = torch.Generator().manual_seed(seed)
    p = init_params(vocab_size, context, n_embd, n_hidden, g, dtype=dtype, lecture=True)
    X = torch.randint(0, vocab_size, (batch_size, context), generator=g)  # (n, context)
    Y = torch.randint(0, vocab_size, (batch_size,), generator=g)  # (n,)
    Y[batch_size - n_ignored :] = IGNORE
    leaf = {k: v.clone().requires_grad_() for k, v in p.items()}
    t = forward(leaf, X, Y)
    t["loss"].backward()
    ref = {**{k: v.grad for k, v in t.items() if k != "loss"}, **{k: v.grad for k, v in leaf.items()}}
    plain = {k: v.detach() for k, v in t.items()}
    ours = backward(p, X, Y, plain)
    ours["logits (compact cross-entropy)"] = dlogits_compact(plain, Y)
    ref["logits (compact cross-entropy)"] = ref["logits"]
    ours["hprebn (compact BatchNorm)"] = dhprebn_compact(p, plain, ref["hpreact"])
    ref["hprebn (compact BatchNorm)"] = ref["hprebn"]
    rows = []
    for name in [*BACKWARD_ORDER, "logits (compact cross-entropy)", "hprebn (compact BatchNorm)"]:
        if name not in ours:
            continue
        a, b = ours[name], ref[name]
        rows.append(GradRow(name, tuple(a.shape), bool(torch.equal(a, b)), float((a - b).abs().max())))
    return rows


def format_gradcheck(rows: list[GradRow], tol: float) -> str:
    lines = [f"{'tensor':<32} {'shape':<12} {'exact':>5} {'max |diff|':>11}  ok (< {tol:g})"]
    for r in rows:
        shape = "x".join(map(str, r.shape))
        ok = "yes" if r.max_abs_diff < tol else "NO"
        lines.append(f"{r.name:<32} {shape:<12} {'yes' if r.exact else 'no':>5} {r.max_abs_diff:>11.3e}  {ok}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# training with the hand-written backward


def train(
    p: dict[str, torch.Tensor], X: torch.Tensor, Y: torch.Tensor, steps: int, batch_size: int = 32,
    lr: float = 0.1, generator: torch.Generator | None = None, use_autograd: bool = False,
) -> list[float]:
    """Plain SGD on (N, context) examples as in the lecture; returns the loss of every step.

    Gradients come from `backward_compact` (no `loss.backward()` anywhere), or with
    `use_autograd=True` from autograd, to compare the two loss curves. Updates `p` in place.
    """
    losses = []
    for _ in range(steps):
        ix = torch.randint(0, X.size(0), (batch_size,), generator=generator)
        Xb, Yb = X[ix], Y[ix]  # (batch, context), (batch,)
        if use_autograd:
            leaf = {k: v.requires_grad_() for k, v in p.items()}
            loss = forward(leaf, Xb, Yb)["loss"]
            grads = dict(zip(leaf, torch.autograd.grad(loss, list(leaf.values()))))
            for v in p.values():
                v.requires_grad_(False)
        else:
            t = forward(p, Xb, Yb)
            loss = t["loss"]
            grads = backward_compact(p, Xb, Yb, t)
        with torch.no_grad():
            for k, v in p.items():
                v -= lr * grads[k]
        losses.append(loss.item())
    return losses


__all__ = [
    "BACKWARD_ORDER", "GradRow", "init_params", "examples", "forward", "backward",
    "dlogits_compact", "dhprebn_compact", "backward_compact", "gradcheck", "format_gradcheck", "train",
]
