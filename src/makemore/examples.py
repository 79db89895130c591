"""The lectures' examples: every position of every item as one (context, next character) pair.

Karpathy's makemore parts 2-5 build their data set this way (`build_dataset`): for each name
and each of its characters and its closing '.', the `block_size` characters before it, padded
on the left with '.', and the character itself. A training step then draws 32 of these pairs
independently from the whole split. makemore's own batches are whole items instead (every
position of a few names). Both feed the same models, evaluation and checkpoints:

- an example's context of length `context` becomes a row of ids (B, context) whose last
  position alone has a target, so a model that reads a fixed window of previous characters
  computes for that row exactly what the lecture's network computes for the pair;
- evaluation stays over whole items: for such a model the mean loss over every position of
  every item is the mean over every example of the split (tested).

Only models whose prediction depends on a fixed window of previous characters can be trained
on examples (`EXAMPLE_MODELS`); the others read the whole item up to a position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .config import ModelConfig
from .data import IGNORE, Split
from .errors import MakemoreError
from .models.common import context_windows

# model family -> characters of context its prediction reads
EXAMPLE_MODELS: dict[str, Callable[[ModelConfig], int]] = {
    "bigram": lambda cfg: 1,
    "counts": lambda cfg: 1,
    "mlp": lambda cfg: cfg.context,
    "wavenet": lambda cfg: cfg.context,
}
# why the others cannot, in one clause each
_WHY_NOT = {
    "mlp-manual": "its BatchNorm takes statistics over every position of the rows it is given, not only the ones with a target",
}


def example_context(model: Any) -> int:
    """Characters of context `model` (a registry model, or its `ModelConfig`) reads per prediction.

    Raises:
        MakemoreError: the model does not read a fixed window (it cannot train on examples).
    """
    cfg = model if isinstance(model, ModelConfig) else getattr(model, "config", None)
    name = getattr(cfg, "name", None)
    if not isinstance(cfg, ModelConfig) or name not in EXAMPLE_MODELS:
        why = _WHY_NOT.get(str(name), "it reads the whole item up to a position, not a fixed window of characters")
        raise MakemoreError(
            f"example batches (--batches examples) are for models with a fixed context "
            f"({', '.join(EXAMPLE_MODELS)}); {name or type(model).__name__} cannot use them: {why}; "
            "train it with whole-item batches (--batches items)"
        )
    return EXAMPLE_MODELS[name](cfg)


@dataclass
class Examples:
    """A split's (context, next character) pairs as rows a model takes: (N, context) ids, targets
    (N, context) that are IGNORE except in the last column, the next character."""

    x: torch.Tensor  # (N, context) int64
    y: torch.Tensor  # (N, context) int64

    def __len__(self) -> int:
        return self.x.size(0)

    @property
    def next_chars(self) -> torch.Tensor:
        """(N,) the character each example predicts (the lectures' Y)."""
        return self.y[:, -1]


def build_examples(split: Split, context: int) -> Examples:
    """Every position of every item of `split` as one example, in item order (the lectures' X, Y).

    Built once from the split's encoded rows: no Python loop over characters.
    """
    windows = context_windows(split.x, context)  # (n, T, context): the characters ending at each position
    keep = split.y != IGNORE  # (n, T): positions with a target
    x = windows[keep]  # (N, context), row-major: item by item, position by position
    y = torch.full_like(x, IGNORE)
    y[:, -1] = split.y[keep]
    return Examples(x, y)


def batch_rows(split: Split, batches: str, model: Any) -> Split | Examples:
    """What training batches are drawn from (`TrainConfig.batches`): the split's whole items, or
    its examples at `model`'s context.

    Raises:
        MakemoreError: unknown `batches`, or examples for a model without a fixed context.
    """
    if batches == "items":
        return split
    if batches == "examples":
        return build_examples(split, example_context(model))
    raise MakemoreError(f"unknown batches {batches!r}; choose items or examples")


__all__ = ["EXAMPLE_MODELS", "Examples", "batch_rows", "build_examples", "example_context"]
