"""The lectures' MLP with BatchNorm, trained through a hand-written backward pass.

Karpathy, "Building makemore Part 4: Becoming a Backprop Ninja" (2022): embedding, concatenation,
linear, BatchNorm, tanh, linear, cross-entropy; the math lives in `makemore.manual`.

The Trainer feeds (B, T) rows padded with IGNORE targets. Every one of the B*T positions is
an example for BatchNorm's batch statistics (they do not depend on the targets, and calibration
reproduces them; `mlp --norm batch`, by contrast, takes them over the positions with a target
only); only positions with a target carry loss. `forward` is the autograd path, with a real `nn.BatchNorm1d`; it serves evaluation and
sampling and is the reference `manual_backward` is tested against. `manual_backward` runs the
lecture's step-by-step forward and the compact hand-written backward, without autograd.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import manual
from ..config import ModelConfig
from .common import context_windows, lm_loss


class ManualMLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.norm != "batch" or cfg.activation != "tanh" or cfg.n_layer != 1 or cfg.dropout:
            raise ValueError("mlp-manual is the lectures' one-hidden-layer tanh MLP with BatchNorm "
                             "(norm batch, activation tanh, one layer, no dropout)")
        self.config = cfg
        init = manual.init_params(
            cfg.vocab_size, cfg.context, cfg.n_embd, cfg.n_hidden, b1=cfg.hidden_bias, lecture=False,
            init_gain=cfg.init_gain if cfg.init_gain is not None else 5 / 3, output_scale=cfg.init_output_scale,
        )
        if cfg.hidden_bias:
            init["b1"].fill_(cfg.bias_init)
        # C, W1 (fan_in, H), [b1], W2 (H, V), b2 in the lecture's layout; gain and shift live in the BatchNorm
        self.params = nn.ParameterDict({k: nn.Parameter(v) for k, v in init.items() if not k.startswith("bn")})
        self.bn = nn.BatchNorm1d(cfg.n_hidden, eps=manual.EPS, momentum=cfg.bn_momentum)

    def _p(self) -> dict[str, torch.Tensor]:
        return {**dict(self.params.items()), "bngain": self.bn.weight, "bnbias": self.bn.bias}

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        p = self.params
        X = context_windows(idx, self.config.context)  # (B, T, context)
        hprebn = p["C"][X].view(B * T, -1) @ p["W1"]  # (B*T, H): embed, concatenate (a view), linear
        if "b1" in p:
            hprebn = hprebn + p["b1"]
        h = torch.tanh(self.bn(hprebn))  # (B*T, H)
        logits = (h @ p["W2"] + p["b2"]).view(B, T, -1)  # (B, T, V)
        loss = lm_loss(logits, targets, self.config.loss) if targets is not None else None
        return logits, loss

    def manual_backward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Forward and hand-written backward on a training batch; fills every parameter's `.grad`.

        No autograd graph is built. Updates BatchNorm's running statistics as `nn.BatchNorm1d`
        does in training. Returns the loss (a scalar tensor).
        """
        with torch.no_grad():
            X, Y = manual.examples(idx, targets, self.config.context)  # (n, context), (n,)
            p = {k: v.detach() for k, v in self._p().items()}
            t = manual.forward(p, X, Y)
            grads = manual.backward_compact(p, X, Y, t)
            bn, n = self.bn, X.size(0)
            bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * t["bnmeani"].squeeze(0))
            # the running variance stores the unbiased estimate, as nn.BatchNorm1d does
            bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * n / max(n - 1, 1) * t["bnvar"].squeeze(0))
            bn.num_batches_tracked.add_(1)
        for k, v in self.params.items():
            v.grad = grads[k]
        self.bn.weight.grad, self.bn.bias.grad = grads["bngain"], grads["bnbias"]
        return t["loss"]
