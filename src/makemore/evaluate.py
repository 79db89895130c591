"""Exact evaluation: mean negative log-likelihood per character over a whole split.

Every item is scored in full, the closing boundary token counted as a character (as in
makemore); nothing is estimated from a sample of batches. Sums run in float64.

Items are taken in order of length and batched by positions, not by items: each batch holds
about `positions` (rows x width) positions of similar-length items, so almost nothing is
padding, and every batch's activations have about the same, bounded size whatever the split's
size or longest line: small enough to stay in a core's cache, large enough that the matrix
products dominate. On the CPU, a family with an evaluation path in the speed layer
(`makemore.speed.EVAL_PATHS`) computes its logits through it.
"""

from __future__ import annotations

import math
import sys
from typing import IO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import IGNORE, Split
from .progress import TaskProgress
from .speed import fast_logits

LOGIT_ELEMENTS = 1 << 22   # at most this many logits per batch: big vocabularies get fewer positions


def length_batches(lengths: np.ndarray, positions: int, max_rows: int | None = None) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Order of the items by length, and (first, end, width) of batches of that order.

    Each batch's rows x width stays within `positions` (a single longer item makes a batch of
    its own), and holds at most `max_rows` rows.
    """
    order = np.argsort(lengths, kind="stable")
    width = lengths[order].astype(np.int64) + 1  # (n,) ascending: the last row of a batch is its widest
    n, batches, i = len(order), [], 0
    while i < n:
        rows = max(1, positions // int(width[i]))
        if max_rows:
            rows = min(rows, max_rows)
        j = min(i + rows, n)
        while j - i > 1 and (j - i) * int(width[j - 1]) > positions:
            j = i + max(1, positions // int(width[j - 1]))
        batches.append((i, j, int(width[j - 1])))
        i = j
    return order, batches


@torch.inference_mode()
def evaluate_split(model: nn.Module, split: Split, batch_size: int | None = None, positions: int = 1 << 12,
                   desc: str | None = None, stream: IO[str] | None = None, fast: bool = True) -> dict[str, float]:
    """NLL (nats/char), bits per character and perplexity of `model` on `split`.

    Batches hold about `positions` positions (fewer with a big vocabulary, at most `batch_size`
    rows when given). An evaluation that takes more than a couple of seconds shows progress on
    `stream` (default stderr) under `desc`. The model runs in eval mode (BatchNorm uses running
    statistics, dropout is off) and is put back into the mode it was in. `fast=False` turns off
    the speed layer's evaluation path (the model's own forward computes the logits).
    """
    was_training = model.training
    model.eval()
    positions = max(1, min(positions, LOGIT_ELEMENTS // split.vocab.size))
    order, batches = length_batches(split.lengths.cpu().numpy(), positions, batch_size)
    order_t = torch.from_numpy(order).to(split.starts.device)
    fast_path = fast_logits(model) if fast and split.tokens.device.type == "cpu" else None
    total = torch.zeros((), dtype=torch.float64, device=split.tokens.device)
    n_chars = split.n_chars
    bar = TaskProgress(f"evaluating {desc or 'split'}", sum((e - f) * w for f, e, w in batches), " position", stream or sys.stderr)
    try:
        for first, end, width in batches:
            x, y = split.batch(order_t[first:end], width)  # (rows, width) each
            logits = fast_path(x) if fast_path is not None else model(x)[0]  # (rows, width, V)
            if logits.dtype != torch.float64:
                logits = logits.float()  # bf16/fp16 logits are scored in float32
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE, reduction="none")
            total += nll.double().sum()
            bar.update((end - first) * width)
    finally:
        model.train(was_training)
        bar.close()
    nll = total.item() / max(n_chars, 1)
    return {"nll": nll, "bpc": nll / math.log(2), "perplexity": math.exp(nll) if nll < 700 else math.inf, "n_chars": n_chars, "n_items": len(split)}
