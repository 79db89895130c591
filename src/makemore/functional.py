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
        safe = torch.where(valid, targets, torch.zeros_like(targets))  # (N,) a real class on ignored rows
        # max-subtracted log-sum-exp: exp of (logit - max) is at most 1, so it cannot overflow;
        # the one (N, V) temporary is exponentiated in place and freed after the sum
        m = work.amax(dim=1, keepdim=True)  # (N, 1)
        # a row whose max is +-inf would give inf - inf = nan; shift such rows by 0 instead (no host sync)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        lse = (work - m).exp_().sum(dim=1).log_() + m.squeeze(1)  # (N,)
        picked = work.gather(1, safe.unsqueeze(1)).squeeze(1)  # (N,) logit of the target
        n_valid = valid.sum()
        # rows with an ignored target contribute 0; the mean over no rows is nan, as in PyTorch
        loss = torch.where(valid, lse - picked, torch.zeros_like(lse)).sum() / n_valid
        ctx.save_for_backward(logits, lse, safe, valid, n_valid)
        return loss.to(logits.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:  # type: ignore[override]
        logits, lse, safe, valid, n_valid = ctx.saved_tensors
        work = logits.float() if logits.dtype in _LOW_PRECISION else logits
        # d loss / d logits = (softmax - one_hot) / N on valid rows, 0 on ignored rows;
        # softmax = exp(logits - lse), built in place in the tensor that is returned
        grad = (work - lse.unsqueeze(1)).exp_()  # (N, V)
        rows = torch.arange(grad.size(0), device=grad.device)
        grad[rows, safe] -= 1.0
        # one (N, 1) factor: upstream gradient / N on valid rows, 0 on ignored ones (0 if N = 0)
        scale = torch.where(valid, grad_out.to(grad.dtype) / n_valid.clamp_min(1), torch.zeros((), dtype=grad.dtype, device=grad.device))
        grad.mul_(scale.unsqueeze(1))
        return grad.to(logits.dtype), None, None


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
