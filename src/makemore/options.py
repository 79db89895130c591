"""From options to the configs of a run: the one place where a run's settings are decided.

Each value comes from, the later winning:
1. the field's default in `makemore.config`;
2. `base`, the calling command's own defaults (the doctor's shorter run);
3. the model family's registered defaults (its sizes, and the training settings it was tuned with);
4. a preset (`config.PRESETS`);
5. the options given explicitly.

`makemore train` / `doctor` and the library call the same function, so `train_run` with
`train_config("gru", steps=500)` is the run `makemore train --model gru --steps 500` makes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .auto import Choice, choose, count_items, usable_cores
from .config import PRESETS, DataConfig, ModelConfig, TrainConfig
from .errors import MakemoreError
from .models import get_spec, model_config

# `auto` (makemore.auto) picks the family, its size and its training settings for the budget
AUTO = "auto"
DEFAULT_MODEL = AUTO
# training settings a family tunes for AdamW; with SGD or RMSProp (weight decay as an L2 term in
# the gradient) they fall back to TrainConfig's unless given
_ADAMW_TUNED = ("lr", "weight_decay")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run's options decide."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    threads: int | None = None   # CPU threads per process (None: PyTorch's choice)
    auto: Choice | None = None   # what `--model auto` chose, and why


def option_name(f: dataclasses.Field) -> str:
    """The name an option has in `run_config` and, with dashes, on the command line."""
    return f.metadata.get("flag", f.name)


def _table(cls: type) -> dict[str, str]:
    """option name -> field name for the fields of `cls` that are options."""
    return {option_name(f): f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)}


DATA_OPTIONS = _table(DataConfig)
MODEL_OPTIONS = {k: v for k, v in _table(ModelConfig).items() if k != "model"}
TRAIN_OPTIONS = _table(TrainConfig)
RUN_OPTIONS = {"threads"}


def _pick(options: Mapping[str, Any], table: Mapping[str, str]) -> dict[str, Any]:
    return {table[k]: v for k, v in options.items() if k in table}


def run_config(model: str | None = None, preset: str | None = None, base: Mapping[str, Any] | None = None,
               cores: int | None = None, **options: Any) -> RunConfig:
    """The configs of a run from its options (option names as on the command line, with underscores).

    `model`: the family (default: the preset's, else `auto`, which chooses the family and its
    settings for the budget and the `cores` it may use, default this machine's; see `makemore.auto`).
    Options set to None are not given. An option the family does not use is a `MakemoreError` naming both.
    """
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(DATA_OPTIONS) - set(MODEL_OPTIONS) - set(TRAIN_OPTIONS) - RUN_OPTIONS)
    if unknown:
        raise MakemoreError(f"unknown option(s): {', '.join(unknown)}")
    if preset is not None and preset not in PRESETS:
        raise MakemoreError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    chosen = dict(PRESETS[preset]) if preset else {}
    name = model or chosen.pop("model", None) or DEFAULT_MODEL
    chosen.pop("model", None)
    auto = None
    if name == AUTO:
        steps = given.get("steps", None if "time" in given else (base or {}).get("steps", TrainConfig.steps))
        auto = choose(given.get("time"), steps, count_items(given.get("input")), cores or usable_cores())
        chosen = dict(auto.options)  # like a preset: under the options given
        won = {k: given[k] for k in chosen if k in given and given[k] != chosen[k]}
        if won:  # the printed and recorded choice says which of its options were not used
            shown = ", ".join(f"--{k.replace('_', '-')} {f'{v:g}' if isinstance(v, float) else v}" for k, v in won.items())
            auto = replace(auto, reason=f"{auto.reason} (your options win: {shown})")
        name = chosen.pop("model")
    spec = get_spec(name)

    family = dict(spec.train)
    optimizer = given.get("optimizer", chosen.get("optimizer", (base or {}).get("optimizer", TrainConfig.optimizer)))
    if optimizer != "adamw":
        family = {k: v for k, v in family.items() if k not in _ADAMW_TUNED}
    train = {**(base or {}), **family, **_pick(chosen, TRAIN_OPTIONS), **_pick(given, TRAIN_OPTIONS)}
    if "time" in given and "steps" not in given:
        train["steps"] = None  # --time alone: train for that long
    if train.get("grad_clip") == 0:
        train["grad_clip"] = None  # 0 disables clipping
    return RunConfig(
        data=DataConfig(**_pick(given, DATA_OPTIONS)),
        model=model_config(name, **{**_pick(chosen, MODEL_OPTIONS), **_pick(given, MODEL_OPTIONS)}),
        train=TrainConfig(**train),
        threads=given.get("threads", chosen.get("threads")),
        auto=auto,
    )


def train_config(model: str, preset: str | None = None, **options: Any) -> TrainConfig:
    """The TrainConfig family `model` trains with: its tuned settings (and a preset's) under `options`.

    `train_config("gru", steps=500)` is what `makemore train --model gru --steps 500` trains with.
    """
    not_train = sorted(set(options) - set(TRAIN_OPTIONS))
    if not_train:
        raise MakemoreError(f"not training options: {', '.join(not_train)} (see TrainConfig)")
    return run_config(model, preset, **options).train


__all__ = ["RunConfig", "run_config", "train_config", "option_name", "AUTO", "DEFAULT_MODEL", "DATA_OPTIONS", "MODEL_OPTIONS",
           "TRAIN_OPTIONS"]
