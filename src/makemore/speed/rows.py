"""The positions-with-a-target paths: training losses that skip the padding of a batch.

A batch of whole items padded to T positions is mostly padding on short items (about half on
names). A causal model's loss and gradients do not depend on the padding after an item: nothing
before a position sees it and its targets are IGNORE. So on the CPU the speed layer
(`makemore.speed`) computes the training loss

- on the columns up to the batch's longest item (`trim`), for any causal model;
- for a model that predicts position by position from `features(idx)` (mlp, wavenet, bow; see
  `models.common.positionwise_forward`), with `predict` on the positions that have a target only;
- for the transformer, with everything but the attention on the positions that have a target;
  the attention sees them put back in place in a zero (B, T) batch.

Each equals the model's own loss and gradients (tested in float64). Not on GPUs: reading the
longest length back is a host sync there, and the changing shapes rule out a CUDA graph.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data import IGNORE
from ..models.common import lm_loss, target_rows


def trim(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids and targets without the columns after the last one with a target: (B, L) each.

    For whole items that is the batch's longest item and its end token; the lectures' example
    rows (`makemore.examples`) have their target in the last column and keep every column.
    """
    # the running count of target columns peaks first at the last of them (0 when there is none)
    last = int((y != IGNORE).any(0).cumsum(0).argmax()) + 1
    return x[:, :last], y[:, :last]


class TrimmedLoss(nn.Module):
    """The model's own loss on the trimmed batch."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, loss = self.model(*trim(x, y))
        return loss


class PositionwiseLoss(TrimmedLoss):
    """The loss of a `features` / `predict` model with `predict` on the positions with a target."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = self.model
        x, y = trim(x, y)
        B, L = x.shape
        rows = target_rows(y)  # (N,)
        h = m.features(x)  # (B, L, ...)
        h = h.reshape(B * L, *h.shape[2:])[rows]  # (N, ...)
        return lm_loss(m.predict(h), y.reshape(-1)[rows], m.config.loss)


class TransformerLoss(TrimmedLoss):
    """The transformer's loss with the LayerNorms, projections, MLPs and output layer on the
    positions with a target only. Exact because those are each item's first positions: the
    padding after an item is all that a causal query never sees."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = self.model
        x, y = trim(x, y)
        B, L = x.shape
        rows = target_rows(y)  # (N,)
        h = m.drop(m.wte(x) + m.wpe(torch.arange(L, device=x.device)))  # (B, L, C)
        h = h.view(B * L, -1)[rows]  # (N, C)
        for block in m.blocks:
            a = block.attn
            qkv = a.c_attn(block.ln_1(h))  # (N, 3C)
            qkv = qkv.new_zeros(B * L, qkv.size(1)).index_copy(0, rows, qkv).view(B, L, -1)  # (B, L, 3C)
            h = h + a.c_proj(a.attend(qkv).view(B * L, -1)[rows])  # (N, C)
            h = h + block.mlp(block.ln_2(h))
        return lm_loss(m.lm_head(m.ln_f(h)), y.reshape(-1)[rows], m.config.loss)
