"""Cross-entropy from first principles: a stable forward and an analytical backward.

Follows Karpathy's "Building makemore Part 4: Becoming a Backprop Ninja" (2022): the loss of
a row is `logsumexp(logits) - logits[target]`, computed with the largest logit subtracted
first so `exp` never overflows, and its gradient with respect to the logits is simply
`(softmax(logits) - one_hot(target)) / N`, so no chain of intermediate tensors is kept for
autograd to walk back through.

Two versions live here:

* `cross_entropy`: the one the models use (`--loss makemore`), a `torch.autograd.Function`.
  Forward keeps only the (N,) log-sum-exp; backward rebuilds the softmax from it in one
  (N, V) tensor that becomes the gradient itself.
* `cross_entropy_naive`: the TEACHING VERSION, `-softmax(logits)[y].log().mean()` written out
  as in the lecture. It overflows (inf / nan) once logits reach a few hundred and autograd
  keeps every intermediate. Never use it for training.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class CrossEntropy(torch.autograd.Function):
    """Mean cross-entropy over rows whose target is not `ignore_index`, with a hand-written backward."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> torch.Tensor:  # type: ignore[override]
        # half-precision logits are reduced in float32 (as PyTorch's kernels accumulate in float)
        work = logits.float() if logits.dtype in _LOW_PRECISION else logits  # (N, V)
        valid = targets != ignore_index  # (N,)
        safe = targets.masked_fill(~valid, 0).unsqueeze(1)  # (N, 1) a real class on ignored rows
        # max-subtracted log-sum-exp: exp(logit - max) is at most 1, so it cannot overflow;
        # the one (N, V) temporary is exponentiated in place and freed after the sum
        m = work.amax(dim=1, keepdim=True)  # (N, 1)
        lse = (work - m).exp_().sum(dim=1, keepdim=True).log_().add_(m)  # (N, 1)
        row_loss = (lse - work.gather(1, safe)).masked_fill_(~valid.unsqueeze(1), 0.0)  # (N, 1), 0 on ignored rows
        n_valid = valid.sum()
        ctx.save_for_backward(logits, lse, safe, valid, n_valid)
        # the mean over no rows is 0 / 0 = nan, as in PyTorch
        return (row_loss.sum() / n_valid).to(logits.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:  # type: ignore[override]
        logits, lse, safe, valid, n_valid = ctx.saved_tensors
        work = logits.float() if logits.dtype in _LOW_PRECISION else logits
        # d loss / d logits = (softmax - one_hot) / N on valid rows, 0 on ignored rows;
        # softmax = exp(logits - lse), built in place in the tensor that is returned
        grad = (work - lse).exp_()  # (N, V)
        grad.scatter_add_(1, safe, torch.full_like(lse, -1.0))  # minus the one-hot
        # one (N, 1) factor: upstream gradient / N on valid rows, 0 on ignored ones (and when N = 0)
        scale = valid.unsqueeze(1).to(grad.dtype) * (grad_out.to(grad.dtype) / n_valid.clamp_min(1))  # (N, 1)
        return grad.mul_(scale).to(logits.dtype), None, None


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy of (N, V) logits against (N,) class ids, skipping `ignore_index` rows.

    Same value and gradient as `torch.nn.functional.cross_entropy(logits, targets,
    ignore_index=ignore_index)`; finite for any finite logits. Not twice differentiable.
    """
    if logits.dim() != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(f"expected (N, V) logits and (N,) targets, got {tuple(logits.shape)} and {tuple(targets.shape)}")
    return CrossEntropy.apply(logits, targets, ignore_index)


def cross_entropy_naive(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """TEACHING VERSION, do not train with it: softmax, pick, log, mean, exactly as the lecture first writes it.

    `logits.exp()` overflows to inf for logits above ~88 (float32) or ~709 (float64), and
    inf / inf gives nan; autograd keeps counts, probabilities and their logs alive for backward.
    """
    valid = targets != ignore_index
    logits, targets = logits[valid], targets[valid]  # (n, V), (n,)
    counts = logits.exp()  # (n, V)
    probs = counts / counts.sum(1, keepdim=True)  # (n, V)
    return -probs[torch.arange(targets.size(0), device=logits.device), targets].log().mean()


__all__ = ["CrossEntropy", "cross_entropy", "cross_entropy_naive"]
