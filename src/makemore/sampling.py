"""Batched generation under inference mode: all N items are generated together.

A model may offer cached decoding (`init_cache(batch)` and `forward_step(idx_t, cache)`,
e.g. a key/value cache or a recurrent state); otherwise the whole prefix is re-run each step,
which for a block size of about 16 costs little.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
from torch import nn

from .data import BOUNDARY, Vocab
from .errors import MakemoreError


@torch.inference_mode()
def generate(
    model: nn.Module,
    vocab: Vocab,
    block_size: int,
    n: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> list[str]:
    """Sample `n` items; the same seed gives the same items. `temperature=0` is greedy decoding
    (every item the same: the most likely character at each position).

    Raises:
        MakemoreError: bad temperature/top-k, or a prefix with characters the model never saw.
    """
    if n < 1:
        raise MakemoreError(f"-n must be at least 1, got {n}")
    if not temperature >= 0:
        raise MakemoreError(f"--temperature must be zero (greedy: the most likely character) or positive, got {temperature}")
    if top_k is not None and top_k < 1:
        raise MakemoreError(f"--top-k must be at least 1, got {top_k}")
    unknown = vocab.unknown([prefix])
    if unknown:
        raise MakemoreError(f"the prefix uses characters the model never saw: {' '.join(sorted(unknown))}")
    if len(prefix) >= block_size:
        raise MakemoreError(f"the prefix is {len(prefix)} characters; this model makes items of at most {block_size - 1}")
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    start = torch.tensor([BOUNDARY] + vocab.encode(prefix), dtype=torch.long, device=device)
    idx = start.expand(n, -1).contiguous()  # (n, 1 + len(prefix))
    done = torch.zeros(n, dtype=torch.bool, device=device)
    cached = hasattr(model, "forward_step") and hasattr(model, "init_cache")
    cache = model.init_cache(n) if cached else None  # type: ignore[operator]
    if cached:
        for t in range(idx.size(1)):  # feed the boundary token and the prefix
            logits, cache = model.forward_step(idx[:, t], cache)  # type: ignore[operator]
    try:
        while idx.size(1) < block_size + 1 and not bool(done.all()):
            if not cached:
                logits = model(idx)[0][:, -1, :]  # (n, V): re-run the whole context
            if temperature == 0:  # greedy decoding: the limit of softmax(logits / T) as T -> 0
                nxt = logits.argmax(dim=-1, keepdim=True)  # (n, 1)
            else:
                logits = logits.float() / temperature
                if top_k is not None and top_k < logits.size(-1):
                    kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen)  # (n, 1)
            nxt = nxt.masked_fill(done.unsqueeze(1), BOUNDARY)
            done |= nxt.squeeze(1) == BOUNDARY
            idx = torch.cat([idx, nxt], dim=1)
            if cached and idx.size(1) < block_size + 1:
                logits, cache = model.forward_step(nxt.squeeze(1), cache)  # type: ignore[operator]
    finally:
        model.train(was_training)
    return [prefix + vocab.decode(row[1 + len(prefix) :].tolist()) for row in idx.cpu()]


def novelty(samples: list[str], splits: Mapping[str, Collection[str]]) -> list[str]:
    """For each sample: 'train', 'val', 'test' (first split that holds it) or 'new'.

    A split is a list of items or anything that answers `in` quickly (a `makemore.data.Split`).
    """
    sets = {name: set(items) if isinstance(items, (list, tuple)) else items for name, items in splits.items()}
    return [next((name for name in ("train", "val", "test") if s in sets.get(name, ())), "new") for s in samples]
