"""An ensemble: the average of its members' predicted distributions.

For members with next-character distributions p_1 ... p_K, the ensemble predicts

    p(c | context) = (1/K) sum_k p_k(c | context)

(model averaging, as in Hansen & Salamon 1990 and Lakshminarayanan et al. 2017). Its logits
are log p, so softmax(logits) is that average, and the cross-entropy of the logits, the
evaluation and sampling treat the ensemble like any model. Members are trained apart
(`makemore train --members K`); this module only combines them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import lm_loss


class Ensemble(nn.Module):
    """Members (any models of the zoo over the same vocabulary) whose probabilities are averaged."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    @staticmethod
    def average(member_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        """log((1/K) sum_k softmax(logits_k)) of K members' (B, T, V) logits, computed stably."""
        log_probs = torch.stack([F.log_softmax(z, dim=-1) for z in member_logits])  # (K, B, T, V)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(member_logits))  # (B, T, V)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.average([m(idx)[0] for m in self.members])  # (B, T, V): log of the mean probability
        loss = lm_loss(logits, targets) if targets is not None else None
        return logits, loss


__all__ = ["Ensemble"]
