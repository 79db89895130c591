"""MLP language model after Bengio et al. 2003, "A Neural Probabilistic Language Model".

Embed each of the `context` previous characters, concatenate the embeddings through a view,
then hidden layers (linear -> norm -> activation) and an output layer; makemore part 2-4.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from . import register_model
from .common import context_windows, hidden_block, init_output_, output_and_loss, rows_only_here, target_rows


@register_model(
    "mlp",
    "Bengio 2003: concatenated context embeddings -> hidden layers -> logits",
    train={"lr": 3e-3, "weight_decay": 0.1},  # 0.01 overfits within minutes: val 2.07 vs 1.95
    context=5, n_embd=24, n_hidden=256, n_layer=2, norm="none", activation="tanh",
)
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

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        windows = context_windows(idx, self.config.context)  # (B, T, context), a view of idx
        # BatchNorm: statistics over real characters only; on the CPU: no work on padding
        rows = target_rows(self.config.norm == "batch" or rows_only_here(idx), targets)
        if rows is not None:
            windows = windows.reshape(B * T, -1)[rows]  # (N, context)
        emb = self.wte(windows)  # (B, T, context, n_embd) or (N, ...), freshly allocated, contiguous
        # (B*T or N, context*n_embd): the concatenation is a view of the same storage, no copy
        # (on views and strides: http://blog.ezyang.com/2019/05/pytorch-internals/)
        out = self.lm_head(self.hidden(emb.view(-1, emb.size(-2) * emb.size(-1))))  # (B*T or N, V)
        return output_and_loss(out, rows, targets, B, T, self.config.loss)  # logits (B, T, V): 0 at padding
