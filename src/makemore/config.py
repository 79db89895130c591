"""Frozen configuration dataclasses (data, model, training, sampling) with a JSON round trip.

Values that come from the data (vocabulary size, longest item) enter a config through
`dataclasses.replace`, never by mutation, so a config read back from a checkpoint is
exactly the one the model was built from (nanoGPT's habit).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class DataConfig:
    input: str | None = None          # path to a file of lines; None: the built-in corpus
    val_file: str | None = None       # explicit validation items instead of a split
    test_file: str | None = None      # explicit test items instead of a split
    # train/val/test fractions, or "lecture": the lectures' cut of their shuffle (int(0.8 n), int(0.9 n))
    split: tuple[float, float, float] | str = (0.8, 0.1, 0.1)
    max_len: int = 64                 # longest item (in characters) accepted
    seed: int = 42                    # seed of the shuffle before splitting
    skip_long: bool = False           # drop (and count) lines longer than max_len instead of stopping


@dataclass(frozen=True)
class ModelConfig:
    name: str = "transformer"         # registry name, see `makemore models`
    vocab_size: int = 27              # filled from the data: characters + boundary token
    block_size: int = 16              # filled from the data: longest item + 1 positions
    n_embd: int = 64                  # embedding width
    n_hidden: int = 64                # hidden width (MLP hidden layer, RNN state, ...)
    n_layer: int = 4                  # number of hidden layers / blocks
    n_head: int = 4                   # attention heads (transformer)
    attention: str = "sdpa"           # sdpa (fused kernel) | manual (softmax(QK^T/sqrt(d)) V written out)
    context: int = 3                  # characters of context (mlp, wavenet, bow)
    norm: str = "none"                # batch | layer | group | none (MLP family)
    activation: str = "tanh"          # tanh | relu | gelu
    dropout: float = 0.0
    smoothing: float = 1.0            # add-k smoothing of the `counts` model
    loss: str = "torch"               # torch | makemore: which cross-entropy to use
    # Initialization knobs. The defaults are the healthy choices; the others exist so the
    # classic mistakes can be reproduced and diagnosed (see `makemore doctor`).
    init_gain: float | None = None    # None: the gain of the nonlinearity (5/3 for tanh)
    init_output_scale: float = 0.1    # output layer weights scaled by this (1.0: "confidently wrong")
    bias_init: float = 0.0            # constant initial bias of hidden layers
    hidden_bias: bool = False         # True: keep a bias in linear layers followed by a norm (it cancels)
    bn_momentum: float = 0.1          # BatchNorm running-statistics momentum (tiny: they never calibrate)


@dataclass(frozen=True)
class TrainConfig:
    steps: int | None = 3000          # stop after this many optimizer steps (None: only --time)
    time: float | None = None         # ... or after this many seconds of training
    batch_size: int = 32              # items (or examples) per step
    # items: whole lines, every position a target; examples: the lectures' independent
    # (context, next character) pairs, for models with a fixed context (makemore.examples)
    batches: str = "items"
    optimizer: str = "adamw"          # adamw | sgd | rmsprop
    lr: float = 5e-4
    momentum: float = 0.9             # sgd momentum (0 for plain SGD)
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.01        # decoupled for adamw, L2 for sgd/rmsprop
    grad_clip: float | None = 1.0     # max global grad norm; None disables
    schedule: str = "cosine"          # constant | step | cosine
    warmup: int = 0                   # warm-up steps (cosine)
    min_lr: float = 0.0               # floor of the cosine schedule
    lr_drops: tuple[float, ...] = (0.5,)  # step schedule: fractions (<1) or step numbers
    lr_drop_factor: float = 0.1       # step schedule: multiply lr by this at each drop
    eval_interval: int = 500          # steps between validation evaluations and checkpoints
    log_interval: int = 100           # steps between loss read-outs (host syncs)
    seed: int = 1337
    device: str = "auto"              # auto | cpu | cuda
    buckets: int = 1                  # batches of similar-length items from this many length groups (1: uniform draws)
    val_subset: int = 10_000          # val items scored at each periodic evaluation (a fixed sample); 0: all
    exact_train: bool = False         # final train figure on every train item, not on a fixed sample


@dataclass(frozen=True)
class SampleConfig:
    n: int = 10
    temperature: float = 1.0
    top_k: int | None = None
    prefix: str = ""
    seed: int = 0


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def from_dict(cls: type[T], d: dict[str, Any]) -> T:
    """Rebuild a config from `to_dict` output; unknown keys are an error, missing keys take defaults."""
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(d) - set(names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    kw = {}
    for k, v in d.items():
        default = names[k].default
        kw[k] = tuple(v) if isinstance(v, list) and isinstance(default, tuple) else v
    return cls(**kw)


__all__ = ["DataConfig", "ModelConfig", "TrainConfig", "SampleConfig", "to_dict", "from_dict"]
