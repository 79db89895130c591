"""MLP language model after Bengio et al. 2003, "A Neural Probabilistic Language Model".

Embed each of the `context` previous characters, concatenate the embeddings through a view,
then hidden layers (linear -> norm -> activation) and an output layer; makemore part 2-4.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .common import context_windows, hidden_block, init_output_, positionwise_forward


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        layers: list[nn.Module] = []
        n_in = cfg.context * cfg.n_embd
        for _ in range(cfg.n_layer):
            layers += hidden_block(n_in, cfg.n_hidden, cfg)
            n_in = cfg.n_hidden
        self.hidden = nn.Sequential(*layers)
        self.lm_head = nn.Linear(n_in, cfg.vocab_size)
        init_output_(self.lm_head, cfg.init_output_scale)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, context): the `context` characters each position predicts from."""
        return context_windows(idx, self.config.context)  # a view of idx

    def predict(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, context) ids -> (N, V) logits."""
        emb = self.wte(windows)  # (N, context, n_embd), freshly allocated, contiguous
        # (N, context*n_embd): the concatenation is a view of the same storage, no copy
        # (on views and strides: http://blog.ezyang.com/2019/05/pytorch-internals/)
        return self.lm_head(self.hidden(emb.view(emb.size(0), -1)))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        # with BatchNorm, training batches hold the positions that have a target only
        return positionwise_forward(self, idx, targets, on_targets=self.config.norm == "batch")
