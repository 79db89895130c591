"""Causal bag of words: each position sees the uniform average of the embeddings so far.

Karpathy's makemore BoW: token + position embeddings, one block of causal averaging and an
MLP with residual connections, then an MLP head (here each MLP has a LayerNorm in front). The causal average is a cumulative sum
divided by the count, equal to uniform causal attention without the (T, T) matrix.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .common import activation, init_hidden_, init_output_, positionwise_forward


class BoW(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        fc, proj, head_fc = (nn.Linear(cfg.n_embd, cfg.n_hidden), nn.Linear(cfg.n_hidden, cfg.n_embd),
                             nn.Linear(cfg.n_embd, cfg.n_hidden))
        for lin in (fc, head_fc):
            init_hidden_(lin, cfg.activation, cfg.init_gain, cfg.bias_init)
        init_hidden_(proj, "linear")
        # LayerNorm in front of each MLP (pre-LN, as in the transformer): the sum of token, position
        # and averaged embeddings has std ~1.7, which would saturate a tanh layer initialized with
        # the tanh gain (about half the units at |t| > 0.97 at step 0, found by `makemore doctor`)
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(fc, activation(cfg.activation), proj)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Sequential(head_fc, activation(cfg.activation))
        self.lm_head = nn.Linear(cfg.n_hidden, cfg.vocab_size)
        init_output_(self.lm_head, cfg.init_output_scale)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, n_embd): each position's embedding plus the average of those so far."""
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))  # (B, T, n_embd)
        counts = torch.arange(1, T + 1, device=idx.device, dtype=x.dtype).view(1, T, 1)
        return x + x.cumsum(1) / counts  # causal uniform average of positions <= t

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_embd) -> (N, V) logits: the residual MLP, then the MLP head."""
        x = x + self.mlp(self.ln_1(x))
        return self.lm_head(self.head(self.ln_2(x)))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return positionwise_forward(self, idx, targets)
