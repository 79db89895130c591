"""Hierarchical ("WaveNet-style") MLP: van den Oord et al. 2016 as taught in makemore part 5.

The `context` embeddings (a power of two) are fused two consecutive positions at a time,
level by level, so the context is merged in a tree instead of squashed into one layer.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .common import activation, context_windows, init_hidden_, init_output_, make_norm, positionwise_forward


class FuseLevel(nn.Module):
    """(N, L, C) -> (N, L/2, H): concatenate consecutive pairs (a view), linear, norm, activation."""

    def __init__(self, n_in: int, n_out: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm = make_norm(cfg.norm, n_out, cfg.bn_momentum)
        self.linear = nn.Linear(2 * n_in, n_out, bias=cfg.hidden_bias or self.norm is None)
        init_hidden_(self.linear, cfg.activation, cfg.init_gain, cfg.bias_init)
        self.act = activation(cfg.activation)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, L, C = x.shape
        h = self.linear(x.view(N * L // 2, 2 * C))  # (N*L/2, H)
        if self.norm is not None:
            h = self.norm(h)  # statistics over all N*L/2 rows, as the lectures' BatchNorm over (0, 1)
        return self.drop(self.act(h)).view(N, L // 2, -1)


class WaveNet(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.context
        if c < 2 or c & (c - 1):
            raise ValueError(f"wavenet needs a context that is a power of two, got {c}")
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        levels, n_in = [], cfg.n_embd
        while c > 1:
            levels.append(FuseLevel(n_in, cfg.n_hidden, cfg))
            n_in, c = cfg.n_hidden, c // 2
        self.levels = nn.Sequential(*levels)
        self.lm_head = nn.Linear(cfg.n_hidden, cfg.vocab_size)
        init_output_(self.lm_head, cfg.init_output_scale)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, context): the `context` characters each position predicts from."""
        return context_windows(idx, self.config.context)

    def predict(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, context) ids -> (N, V) logits: embed, fuse pairs level by level, output layer."""
        h = self.levels(self.wte(windows))  # (N, context, n_embd) -> (N, 1, n_hidden)
        return self.lm_head(h.view(h.size(0), -1))  # (N, V)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        # with BatchNorm, training batches hold the positions that have a target only
        return positionwise_forward(self, idx, targets, on_targets=self.config.norm == "batch")
