"""Exact evaluation: mean negative log-likelihood per character over a whole split.

Every item is scored in full, the closing boundary token counted as a character (as in
makemore); nothing is estimated from a sample of batches. Sums run in float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .data import IGNORE, Split


@torch.inference_mode()
def evaluate_split(model: nn.Module, split: Split, batch_size: int = 2048) -> dict[str, float]:
    """NLL (nats/char), bits per character and perplexity of `model` on `split`.

    The model runs in eval mode (BatchNorm uses running statistics, dropout is off) and is
    put back into the mode it was in.
    """
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=split.x.device)
    count = 0
    try:
        for i in range(0, split.x.size(0), batch_size):
            x, y = split.x[i : i + batch_size], split.y[i : i + batch_size]
            logits, _ = model(x)
            if logits.dtype != torch.float64:
                logits = logits.float()  # bf16/fp16 logits are scored in float32
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE, reduction="none")
            total += nll.double().sum()
            count += int((y != IGNORE).sum())
    finally:
        model.train(was_training)
    nll = total.item() / max(count, 1)
    return {"nll": nll, "bpc": nll / math.log(2), "perplexity": math.exp(nll), "n_chars": count, "n_items": split.x.size(0)}
