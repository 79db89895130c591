"""Frozen configuration dataclasses (data, model, training, sampling) with a JSON round trip.

Each field carries its help text; the command line's options are generated from these fields
(`makemore.cli`), and `makemore.options` resolves a run's values from the defaults here, the
model family's, a preset's and the options given.

Values that come from the data (vocabulary size, longest item) enter a config through
`dataclasses.replace`, never by mutation, so a config read back from a checkpoint is
exactly the one the model was built from (nanoGPT's habit).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def option(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with its command-line help (`makemore train --help` is generated from these).

    meta: `flag` (the option's name when it differs from the field's), `choices`, `min` (the least
    whole number accepted), `parse` (a function from the typed text to the value, raising
    ValueError), `cli=False` for fields the command line does not offer.
    """
    return field(default=default, metadata={"help": help, **meta})


def parse_split(text: str) -> tuple[float, float, float] | str:
    """`--split`: 'lecture', or three fractions that sum to 1 such as 0.8,0.1,0.1."""
    if text == "lecture":
        return text
    try:
        fracs = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        fracs = ()
    if len(fracs) != 3 or any(f < 0 for f in fracs) or abs(sum(fracs) - 1) > 1e-6:
        raise ValueError(f"expected 'lecture' or three fractions that sum to 1, such as 0.8,0.1,0.1, got {text!r}")
    return fracs  # type: ignore[return-value]


@dataclass(frozen=True)
class DataConfig:
    input: str | None = option(None, "text file, one item per line (default: built-in US first names)", flag="input")
    val_file: str | None = option(None, "validation items instead of a split of INPUT")
    test_file: str | None = option(None, "test items instead of a split of INPUT")
    split: tuple[float, float, float] | str = option(
        (0.8, 0.1, 0.1), "train/val/test fractions, or 'lecture': the lectures' cut of their shuffle (int(0.8 n), int(0.9 n))",
        parse=parse_split)
    max_len: int = option(64, "longest item accepted, in characters", min=1)
    seed: int = option(42, "seed of the train/val/test shuffle", flag="split_seed")
    # like makemore's min(1000, 10%) test split: past this size a held-out split only slows every
    # evaluation, its NLL being already known to about +-0.005 (fractions; 0: no cap)
    max_eval_items: int = option(25_000, "val and test hold at most this many items each; the rest train "
                                 "(with fractions; 0: no cap)", min=0)
    skip_long: bool = option(False, "drop (and count) lines longer than --max-len instead of stopping")


@dataclass(frozen=True)
class ModelConfig:
    name: str = option("transformer", "model family (see `makemore models`)", flag="model")
    vocab_size: int = option(27, "characters + boundary token (from the data)", cli=False)
    block_size: int = option(16, "longest item + 1 positions (from the data)", cli=False)
    n_embd: int = option(64, "embedding width", min=1)
    n_hidden: int = option(64, "hidden width (hidden layers, recurrent state)", min=1)
    n_layer: int = option(4, "number of hidden layers / blocks", min=1)
    n_head: int = option(4, "attention heads", min=1)
    attention: str = option("sdpa", "transformer attention: the fused SDPA kernel, or softmax(QK^T/sqrt(d)) V written out",
                            choices=("sdpa", "manual"))
    context: int = option(3, "characters of context", min=1)
    norm: str = option("none", "normalization after hidden linear layers", choices=("batch", "layer", "group", "none"))
    activation: str = option("tanh", "hidden nonlinearity", choices=("tanh", "relu", "gelu"))
    dropout: float = option(0.0, "dropout probability")
    smoothing: float = option(1.0, "add-k smoothing of the counts")
    loss: str = option("torch", "cross-entropy implementation", choices=("torch", "makemore"))
    # Initialization knobs. The defaults are the healthy choices; the others exist so the
    # classic mistakes can be reproduced and diagnosed (see `makemore doctor`).
    init_gain: float | None = option(None, "gain of hidden-layer init (default: the nonlinearity's, 5/3 for tanh)")
    init_output_scale: float = option(0.1, "scale of the output layer's initial weights (1: 'confidently wrong')")
    bias_init: float = option(0.0, "constant initial bias of hidden layers")
    hidden_bias: bool = option(False, "keep biases in linear layers followed by a norm (the norm cancels them)")
    bn_momentum: float = option(0.1, "BatchNorm running-statistics momentum (tiny: they never calibrate)")


@dataclass(frozen=True)
class TrainConfig:
    steps: int | None = option(3000, "optimizer steps (none: with --time alone, the run ends on time only)", min=1)
    time: float | None = option(None, "train for this many seconds (with --steps: whichever comes first)")
    batch_size: int = option(32, "items (or examples, see --batches) per step", min=1)
    # items: whole lines, every position a target; examples: the lectures' independent
    # (context, next character) pairs, for models with a fixed context (makemore.examples)
    batches: str = option("items", "whole items per batch, or the lectures' independent (context, next character) "
                          "examples (models with a fixed context: bigram, counts, mlp, wavenet)", choices=("items", "examples"))
    optimizer: str = option("adamw", "optimizer", choices=("adamw", "sgd", "rmsprop"))
    lr: float = option(5e-4, "peak learning rate")
    momentum: float = option(0.9, "momentum (sgd, rmsprop; 0 for plain SGD)")
    betas: tuple[float, float] = option((0.9, 0.99), "AdamW betas", cli=False)
    weight_decay: float = option(0.01, "weight decay on matrices: decoupled for adamw, L2 for sgd/rmsprop")
    grad_clip: float | None = option(1.0, "max global gradient norm (0 disables)")
    schedule: str = option("cosine", "learning-rate schedule", choices=("constant", "step", "cosine"))
    warmup: int = option(0, "warm-up steps (cosine)", min=0)
    min_lr: float = option(0.0, "final learning rate (cosine)")
    lr_drops: tuple[float, ...] = option((0.5,), "step schedule: where the rate drops, fractions of the run (<1) or step numbers")
    lr_drop_factor: float = option(0.1, "step schedule: multiply the rate by this at each drop")
    eval_interval: int = option(500, "steps between validation evaluations and checkpoints", min=1)
    log_interval: int = option(100, "steps between loss read-outs (host syncs) and progress lines", min=1)
    seed: int = option(1337, "seed of initialization, batches and dropout")
    # an ensemble uses a machine whose cores one model cannot keep busy: each member trains in its own process
    members: int = option(1, "train this many models side by side, one process each (seeds seed, seed+1, ...; the "
                          "run's CPU threads shared among them) for the same --steps / --time, and predict with the "
                          "average of their probabilities", min=1)
    device: str = option("auto", "auto, cpu, cuda or mps")
    buckets: int = option(1, "draw each batch from one of this many groups of similar-length items, so long lines do not "
                          "pad short ones (1: uniform draws)", min=1)
    val_subset: int = option(10_000, "val items scored at each periodic evaluation, a fixed sample (0: all); the final "
                             "figures are exact", min=0)
    exact_train: bool = option(False, "final train figure on every train item, not on a fixed sample")


@dataclass(frozen=True)
class SampleConfig:
    n: int = option(10, "how many items", flag="n", min=1)
    temperature: float = option(1.0, "softmax temperature (<1: safer, >1: wilder, 0: greedy, the most likely character each time)")
    top_k: int | None = option(None, "sample only from the k most likely characters", min=1)
    prefix: str = option("", "start every item with this text")
    seed: int = option(0, "same seed, same items")


# `--preset NAME`: settings applied over the family's defaults and under the options given.
# "fast" is the quickest configuration to a validation NLL of 2.00 on names.txt found on a 2-core
# CPU (bench/time_to_quality.py): the GRU learns fastest per second there. One thread: on a shared
# 2-core machine two OpenMP threads wait on each other; on a quiet one they gain little at these sizes.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {
        "model": "gru", "batch_size": 128, "lr": 1e-2, "schedule": "cosine", "warmup": 100,
        "steps": 1500, "eval_interval": 100, "log_interval": 100, "threads": 1,
    },
}


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


__all__ = ["DataConfig", "ModelConfig", "TrainConfig", "SampleConfig", "PRESETS", "option", "parse_split", "to_dict", "from_dict"]
