"""The positions-with-a-target paths: training losses that skip the padding of a batch.

A batch of whole items padded to T positions is mostly padding on short items (about half on
names). A causal model's loss and gradients do not depend on the padding after an item: nothing
before a position sees it and its targets are IGNORE. On the CPU the Trainer's batches already stop
at their longest item (`RowSampler(narrow=True)`), and for a model that predicts position by
position from `features(idx)` (mlp, wavenet, bow; see `models.common.positionwise_forward`) the
speed layer (`makemore.speed`) runs `predict` on the positions that have a target only; for the
transformer, everything but the attention, which sees them put back in place in a zero (B, T)
batch. Each equals the model's own loss and gradients (tested in float64). Not on GPUs, where the
changing shapes would rule out a CUDA graph.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.common import ModelLoss, lm_loss, target_rows


class PositionwiseLoss(ModelLoss):
    """The loss of a `features` / `predict` model with `predict` on the positions with a target."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = self.model
        B, T = x.shape
        rows = target_rows(y)  # (N,)
        h = m.features(x)  # (B, T, ...)
        h = h.reshape(B * T, *h.shape[2:])[rows]  # (N, ...)
        return lm_loss(m.predict(h), y.reshape(-1)[rows], m.config.loss)


class TransformerLoss(ModelLoss):
    """The transformer's loss with the LayerNorms, projections, MLPs and output layer on the
    positions with a target only. Exact because those are each item's first positions: the
    padding after an item is all that a causal query never sees."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = self.model
        B, T = x.shape
        rows = target_rows(y)  # (N,)
        h = m.drop(m.wte(x) + m.wpe(torch.arange(T, device=x.device)))  # (B, T, C)
        h = h.view(B * T, -1)[rows]  # (N, C)
        for block in m.blocks:
            a = block.attn
            qkv = a.c_attn(block.ln_1(h))  # (N, 3C)
            qkv = qkv.new_zeros(B * T, qkv.size(1)).index_copy(0, rows, qkv).view(B, T, -1)  # (B, T, 3C)
            h = h + a.c_proj(a.attend(qkv).view(B * T, -1)[rows])  # (N, C)
            h = h + block.mlp(block.ln_2(h))
        return lm_loss(m.lm_head(m.ln_f(h)), y.reshape(-1)[rows], m.config.loss)
