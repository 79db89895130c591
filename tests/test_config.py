"""One config path: the command line and the library resolve the same run; every option is
honoured or refused; presets and family defaults sit under explicit options."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from makemore.cli import build_parser, main, run_config_from_args
from makemore.config import PRESETS, DataConfig, ModelConfig, SampleConfig, TrainConfig, from_dict, to_dict
from makemore.errors import MakemoreError
from makemore.models import MODELS, create_model, get_spec, model_config, model_names
from makemore.options import MODEL_OPTIONS, RunConfig, run_config, train_config


def resolve(*argv: str) -> RunConfig:
    return run_config_from_args(build_parser().parse_args(["train", *argv]))


# --- the same options give the same configs from the command line and the library -----------------


@pytest.mark.parametrize("argv, call", [
    ((), dict()),
    (("--model", "gru", "--steps", "500"), dict(model="gru", steps=500)),
    (("--model", "mlp", "--norm", "batch", "--lr", "0.01", "--split-seed", "3"), dict(model="mlp", norm="batch", lr=0.01, split_seed=3)),
    (("--model", "transformer", "--optimizer", "sgd"), dict(model="transformer", optimizer="sgd")),
    (("--preset", "fast", "--model", "bow", "--time", "5"), dict(model="bow", preset="fast", time=5.0)),
])
def test_cli_and_library_resolve_the_same_run(argv: tuple[str, ...], call: dict) -> None:
    assert resolve(*argv) == run_config(**call)


def test_train_config_applies_the_family_defaults_under_the_options() -> None:
    assert TrainConfig().lr == 5e-4  # the dataclass default that the transformer must not get
    tf = train_config("transformer")
    assert (tf.lr, tf.warmup, tf.weight_decay) == (3e-3, 100, 0.1) == tuple(get_spec("transformer").train[k] for k in ("lr", "warmup", "weight_decay"))
    assert train_config("transformer", lr=0.02).lr == 0.02
    assert train_config("gru", steps=500) == dataclasses.replace(TrainConfig(), steps=500, lr=1e-2, weight_decay=0.1)
    assert train_config("bigram").batch_size == 128 and train_config("bigram", batch_size=7).batch_size == 7
    # tuned for AdamW: with SGD the family's lr and weight decay give way to the dataclass's
    sgd = train_config("transformer", optimizer="sgd")
    assert (sgd.lr, sgd.weight_decay, sgd.warmup) == (TrainConfig.lr, TrainConfig.weight_decay, 100)
    assert train_config("gru", time=10).steps is None and train_config("gru", time=10, steps=7).steps == 7
    assert train_config("gru", grad_clip=0).grad_clip is None
    with pytest.raises(MakemoreError, match="not training options: n_embd"):
        train_config("gru", n_embd=8)


def test_resolved_configs_survive_the_json_round_trip() -> None:
    cfg = resolve("--model", "mlp", "--lr-drops", "0.3,0.6", "--schedule", "step")
    assert cfg.train.lr_drops == (0.3, 0.6)
    for part, cls in ((cfg.data, DataConfig), (cfg.model, ModelConfig), (cfg.train, TrainConfig)):
        assert from_dict(cls, json.loads(json.dumps(to_dict(part)))) == part


# --- the options are generated from the dataclass fields --------------------------------------------


def test_every_config_field_is_an_option_with_its_help(capsys) -> None:
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for cls in (DataConfig, ModelConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            if not f.metadata.get("cli", True):
                continue
            flag = f.metadata.get("flag", f.name)
            assert (flag == "input" or f"--{flag.replace('_', '-')}" in text), flag
            assert " ".join(f.metadata["help"].split()) in text, f.name
    # defaults as a user would type them, never as Python reprs
    assert "default: 0.5)" in text and "(0.5,)" not in text
    assert "--split-seed" in text and "--no-norm" in text
    assert main(["sample", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(SampleConfig):
        assert " ".join(f.metadata["help"].split()) in text, f.name


# --- every option is honoured or refused, per family ------------------------------------------------

# a value different from every family's default, and the settings it needs to have an effect
VALUES: dict[str, tuple[str, tuple[str, ...]]] = {
    "n_embd": ("16", ()), "n_hidden": ("48", ()), "n_layer": ("3", ()), "n_head": ("2", ()),
    "attention": ("manual", ()), "context": ("4", ()), "norm": ("layer", ()), "activation": ("relu", ()),
    "dropout": ("0.5", ("--n-layer", "2")), "smoothing": ("0.5", ()), "loss": ("makemore", ()),
    "init_gain": ("3", ()), "init_output_scale": ("1", ()), "bias_init": ("0.5", ("--norm", "none")),
    "hidden_bias": ("", ("--norm", "batch")), "bn_momentum": ("0.5", ("--norm", "batch")),
}
PAIRS = [(spec.name, opt) for spec in MODELS for opt in MODEL_OPTIONS]


def _argv(family: str, opt: str) -> list[str]:
    value, needs = VALUES[opt]
    spec = get_spec(family)
    # the needed settings only where the family takes them (mlp-manual's norm is fixed, for one)
    extra = [] if not needs or needs[0][2:].replace("-", "_") not in spec.reads else list(needs)
    if family == "mlp-manual" and opt == "bias_init":
        extra = ["--hidden-bias"]
    return ["--model", family, f"--{opt.replace('_', '-')}", *([value] if value else []), *extra]


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def _differs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether two models built from the same seed differ in structure, values, or a train-mode forward."""
    sa, sb = _state(a), _state(b)
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape or not torch.equal(sa[k], sb[k]) for k in sa):
        return True
    idx = torch.randint(1, 27, (4, 16), generator=torch.Generator().manual_seed(0))
    outs = []
    for m in (a, b):
        if hasattr(m, "fit_closed_form"):  # the counts model: smoothing acts on counted pairs
            m.fit_closed_form(idx, idx.roll(1, 1))
        torch.manual_seed(1)
        outs.append(m.train()(idx, idx)[1])
    sa, sb = _state(a), _state(b)
    return not torch.equal(outs[0], outs[1]) or any(not torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("family, opt", PAIRS, ids=[f"{f}-{o}" for f, o in PAIRS])
def test_every_family_option_pair_is_honoured_or_refused(capsys, tmp_path, family: str, opt: str) -> None:
    argv = _argv(family, opt)
    if opt not in get_spec(family).reads:
        out = tmp_path / "run"
        code = main(["train", *argv, "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and family in err and f"--{opt.replace('_', '-')}" in err and "Traceback" not in err
        assert not out.exists()
        return
    cfg = resolve(*argv).model
    default = resolve("--model", family, *argv[3 + bool(VALUES[opt][0]):]).model
    assert getattr(cfg, opt) != getattr(default, opt)
    if opt == "loss":  # the same mathematics either way: check it reaches the model
        assert create_model(cfg).config.loss == "makemore"
        return
    torch.manual_seed(0)
    a = create_model(default)
    torch.manual_seed(0)
    b = create_model(cfg)
    assert _differs(a, b), f"--{opt} changed nothing in {family}"


def test_no_norm_is_refused_where_there_is_no_norm(capsys) -> None:
    assert main(["train", "--model", "transformer", "--no-norm"]) == 2
    assert "transformer" in capsys.readouterr().err
    assert resolve("--model", "wavenet", "--no-norm").model.norm == "none"


def test_library_refuses_unused_model_options_too() -> None:
    with pytest.raises(MakemoreError, match=r"transformer model does not use --activation"):
        model_config("transformer", activation="relu")
    with pytest.raises(MakemoreError, match=r"--bn-momentum has no effect on the mlp model without --norm batch"):
        model_config("mlp", bn_momentum=0.01)
    assert model_config("mlp", vocab_size=30, block_size=9).vocab_size == 30  # data fields: every family


def test_resume_refuses_settings_it_would_ignore(capsys, tmp_path) -> None:
    assert main(["train", "--out", str(tmp_path), "--resume", "--lr", "0.1"]) == 2
    assert "--lr cannot be changed" in capsys.readouterr().err


# --- presets and family defaults under explicit options, in any order -------------------------------


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_applies_under_explicit_options_in_any_order(preset: str) -> None:
    values = PRESETS[preset]
    cfg = resolve("--preset", preset)
    assert cfg.model.name == values.get("model", "transformer")
    assert cfg.threads == values.get("threads")
    for key, value in values.items():
        if key not in ("model", "threads"):
            assert getattr(cfg.train, key) == value, key
    # every option the preset sets, given explicitly before or after it, wins
    other = {"model": "transformer", "batch_size": 7, "lr": 0.5, "schedule": "step", "warmup": 3, "steps": 11,
             "eval_interval": 500, "log_interval": 9, "threads": 2}
    for key in values:
        flag = [f"--{key.replace('_', '-')}", str(other[key])]
        for argv in ([*flag, "--preset", preset], ["--preset", preset, *flag]):
            got = resolve(*argv)
            seen = got.model.name if key == "model" else got.threads if key == "threads" else getattr(got.train, key)
            assert seen == other[key], (argv, seen)


def test_explicit_model_with_a_preset_trains_that_model_with_its_sizes() -> None:
    cfg = resolve("--model", "transformer", "--preset", "fast")
    assert cfg.model == model_config("transformer") and cfg.train.batch_size == PRESETS["fast"]["batch_size"]
    assert resolve("--eval-interval", "500", "--preset", "fast").train.eval_interval == 500


@pytest.mark.parametrize("name", model_names())
def test_family_defaults_apply_under_explicit_options(name: str) -> None:
    spec = get_spec(name)
    cfg = resolve("--model", name)
    assert all(getattr(cfg.model, k) == v for k, v in spec.defaults.items())
    assert all(getattr(cfg.train, k) == v for k, v in spec.train.items())
    explicit = resolve("--model", name, "--lr", "0.123", "--batch-size", "5", "--weight-decay", "0.2", "--warmup", "4")
    assert (explicit.train.lr, explicit.train.batch_size, explicit.train.weight_decay, explicit.train.warmup) == (0.123, 5, 0.2, 4)
