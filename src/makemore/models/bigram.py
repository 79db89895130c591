"""Bigram models: a learned lookup table, and the exact count-based baseline.

`bigram` learns logits[next | current] by gradient descent; `counts` is the analytical
answer, maximum likelihood with add-k smoothing, fitted in one pass over the data.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..data import IGNORE
from .common import lm_loss


class Bigram(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        # zero logits: a uniform softmax, so the step-0 loss is exactly ln(vocab_size)
        self.logits = nn.Parameter(torch.zeros(cfg.vocab_size, cfg.vocab_size))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.logits[idx]  # (B, T, V)
        loss = lm_loss(logits, targets, self.config.loss) if targets is not None else None
        return logits, loss


class BigramCounts(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.register_buffer("counts", torch.zeros(cfg.vocab_size, cfg.vocab_size))

    @torch.no_grad()
    def fit_closed_form(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Count every (current, next) pair of the training split: the maximum-likelihood fit."""
        keep = y != IGNORE
        self.counts.zero_()
        ones = torch.ones_like(x[keep], dtype=self.counts.dtype)
        self.counts.index_put_((x[keep], y[keep]), ones, accumulate=True)

    def log_probs(self) -> torch.Tensor:
        smoothed = self.counts + self.config.smoothing  # (V, V)
        # (V, V) / (V, 1) broadcasts each row's sum across that row; keepdim=True matters
        return (smoothed / smoothed.sum(1, keepdim=True)).log()

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.log_probs()[idx]  # (B, T, V), already normalized
        loss = lm_loss(logits, targets, self.config.loss) if targets is not None else None
        return logits, loss
