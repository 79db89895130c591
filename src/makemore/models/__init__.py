"""The model zoo: one registry, one contract.

Every model is an `nn.Module` built from a `ModelConfig` with
`forward(idx, targets=None) -> (logits, loss)`: idx (B, T) int64, logits (B, T, vocab_size),
loss the mean cross-entropy over targets that are not `IGNORE` (None without targets).

`MODELS` below is the explicit list of families, in the order `makemore models` shows them. Each
entry names the `ModelConfig` fields its model reads: `model_config` refuses any other, so a
config never records a setting that did nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..config import ModelConfig
from ..errors import MakemoreError
from .bigram import Bigram, BigramCounts
from .bow import BoW
from .mlp import MLP
from .mlp_manual import ManualMLP
from .rnn import GRU, LSTM, RNN
from .transformer import Transformer
from .wavenet import WaveNet

# Fields every family takes: they come from the data, not from the user.
DATA_FIELDS = frozenset({"vocab_size", "block_size"})


@dataclass(frozen=True)
class Needs:
    """A model field that means something only together with another setting."""

    holds: Callable[[ModelConfig], bool]   # True when the field has an effect in this config
    what: str                              # the setting it needs, as a user would type it


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[ModelConfig], nn.Module]
    description: str
    reads: frozenset[str]                  # ModelConfig fields the model uses (besides DATA_FIELDS)
    defaults: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields: the family's own sizes
    train: dict[str, Any] = field(default_factory=dict)     # TrainConfig fields it was tuned with (e.g. lr)
    needs: dict[str, Needs] = field(default_factory=dict)   # fields that need another setting to act


def _fields(text: str) -> frozenset[str]:
    return frozenset(text.split())


# hidden layers that may be followed by a norm: what the norm-related fields need
_NORM_NEEDS = {
    "bn_momentum": Needs(lambda c: c.norm == "batch", "--norm batch"),
    "hidden_bias": Needs(lambda c: c.norm != "none", "a norm (--norm batch, layer or group)"),
    "bias_init": Needs(lambda c: c.norm == "none" or c.hidden_bias, "a hidden-layer bias (--norm none, or --hidden-bias)"),
}
_INIT = "init_gain init_output_scale bias_init"
_RECURRENT = _fields("n_embd n_hidden n_layer dropout init_output_scale loss")
_RECURRENT_SIZES = {"n_embd": 64, "n_hidden": 128, "n_layer": 1}

MODELS: list[ModelSpec] = [
    ModelSpec("counts", BigramCounts, "exact count-based bigram with add-k smoothing (no gradient training)",
              _fields("smoothing loss"), defaults={"smoothing": 1.0}),
    ModelSpec("bigram", Bigram, "learned (vocab x vocab) table of next-character logits",
              _fields("loss"), train={"lr": 0.1, "batch_size": 128}),
    ModelSpec("mlp", MLP, "Bengio 2003: concatenated context embeddings -> hidden layers -> logits",
              _fields(f"context n_embd n_hidden n_layer norm activation dropout loss {_INIT} hidden_bias bn_momentum"),
              defaults={"context": 5, "n_embd": 24, "n_hidden": 256, "n_layer": 2, "norm": "none", "activation": "tanh"},
              train={"lr": 3e-3, "weight_decay": 0.1}, needs=_NORM_NEEDS),
    ModelSpec("mlp-manual", ManualMLP, "the lectures' tanh + BatchNorm MLP, trained with a hand-written backward pass",
              # one tanh layer with BatchNorm, no dropout: the model the hand-written backward is for
              _fields(f"context n_embd n_hidden {_INIT} hidden_bias bn_momentum"),
              defaults={"context": 3, "n_embd": 10, "n_hidden": 200, "n_layer": 1, "norm": "batch", "activation": "tanh"},
              train={"lr": 3e-3}, needs=_NORM_NEEDS),
    ModelSpec("wavenet", WaveNet, "hierarchical MLP fusing pairs of positions level by level",
              _fields(f"context n_embd n_hidden norm activation dropout loss {_INIT} hidden_bias bn_momentum"),
              defaults={"context": 8, "n_embd": 24, "n_hidden": 128, "norm": "batch", "activation": "tanh"},
              train={"lr": 3e-3}, needs=_NORM_NEEDS),
    ModelSpec("rnn", RNN, "vanilla tanh RNN (nn.RNN)", _RECURRENT, defaults=_RECURRENT_SIZES,
              train={"lr": 1e-2}),
    ModelSpec("gru", GRU, "gated recurrent unit (nn.GRU)", _RECURRENT, defaults=_RECURRENT_SIZES,
              train={"lr": 1e-2, "weight_decay": 0.1}),
    ModelSpec("lstm", LSTM, "long short-term memory (nn.LSTM)", _RECURRENT, defaults=_RECURRENT_SIZES,
              train={"lr": 1e-2}),
    ModelSpec("bow", BoW, "causal bag of words + MLP", _fields(f"n_embd n_hidden activation loss {_INIT}"),
              defaults={"n_embd": 64, "n_hidden": 128, "activation": "tanh"}, train={"lr": 3e-3}),
    ModelSpec("transformer", Transformer, "GPT-style decoder, pre-LayerNorm",
              _fields(f"n_embd n_layer n_head attention dropout loss {_INIT}"),
              defaults={"n_embd": 64, "n_layer": 4, "n_head": 4},
              train={"lr": 3e-3, "warmup": 100, "weight_decay": 0.1}),
]
_BY_NAME = {spec.name: spec for spec in MODELS}


def model_names() -> list[str]:
    return [spec.name for spec in MODELS]


def get_spec(name: str) -> ModelSpec:
    if name not in _BY_NAME:
        raise MakemoreError(f"unknown model {name!r}; choose one of: {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def _flags(names: Iterable[str]) -> str:
    return ", ".join(f"--{n.replace('_', '-')}" for n in sorted(names)) or "none"


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The config of model `name`: its registered defaults, then `overrides` (None means default).

    An override the family does not read, or one that needs another setting it lacks, is a
    `MakemoreError` naming the family and the option: it would have no effect.
    """
    spec = get_spec(name)
    given = {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in dataclasses.fields(ModelConfig)} - {"name"}
    unknown = sorted(set(given) - known)
    if unknown:
        raise MakemoreError(f"unknown model option(s): {', '.join(unknown)}")
    unused = sorted(set(given) - spec.reads - DATA_FIELDS)
    if unused:
        raise MakemoreError(f"the {name} model does not use {_flags(unused)}; "
                            f"its model options are: {_flags(spec.reads)}")
    cfg = dataclasses.replace(ModelConfig(), name=name, **{**spec.defaults, **given})
    for key in sorted(given):
        need = spec.needs.get(key)
        if need is not None and not need.holds(cfg):
            raise MakemoreError(f"--{key.replace('_', '-')} has no effect on the {name} model without {need.what}")
    return cfg


def create_model(cfg: ModelConfig) -> nn.Module:
    """Build the model a config describes (the only place a name becomes a class)."""
    return get_spec(cfg.name).build(cfg)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "ModelSpec", "Needs", "DATA_FIELDS", "model_names", "get_spec", "model_config", "create_model",
           "n_params"]
