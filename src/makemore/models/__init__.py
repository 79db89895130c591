"""The model zoo: one registry, one contract.

Every model is an `nn.Module` built from a `ModelConfig` with
`forward(idx, targets=None) -> (logits, loss)`: idx (B, T) int64, logits (B, T, vocab_size),
loss the mean cross-entropy over targets that are not `IGNORE` (None without targets).
Register a family with `@register_model(name, description, **defaults)`; the CLI's choices
and `makemore models` come from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..config import ModelConfig
from ..errors import MakemoreError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[ModelConfig], nn.Module]
    description: str
    defaults: dict[str, Any]          # ModelConfig fields: the family's default sizes
    train: dict[str, Any]             # TrainConfig fields the family trains best with (e.g. lr)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, description: str, train: dict[str, Any] | None = None, **defaults: Any) -> Callable[[type], type]:
    """Class decorator adding a model family to the registry with its default sizes.

    `train` holds the training settings (TrainConfig fields, e.g. the learning rate) that the
    command line uses for this family unless told otherwise.
    """

    def wrap(cls: type) -> type:
        _REGISTRY[name] = ModelSpec(name, cls, description, defaults, train or {})
        return cls

    return wrap


def model_names() -> list[str]:
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise MakemoreError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The config of model `name`: its registered defaults, then `overrides` (None means default)."""
    spec = get_spec(name)
    values = {**spec.defaults, **{k: v for k, v in overrides.items() if v is not None}}
    return dataclasses.replace(ModelConfig(), name=name, **values)


def create_model(cfg: ModelConfig) -> nn.Module:
    """Build the model a config describes (the only place a name becomes a class)."""
    return get_spec(cfg.name).build(cfg)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# importing the families registers them, in the order `makemore models` lists them
from . import bigram, mlp, mlp_manual, wavenet, rnn, bow, transformer  # noqa: E402,F401

__all__ = ["ModelSpec", "register_model", "model_names", "get_spec", "model_config", "create_model", "n_params"]
