"""The command line as a new user meets it: suggestions for typos, the model listing, devices,
bad paths, and one behaviour for the findings of `train --monitor`, `report` and `doctor`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from makemore.cli import main
from makemore.errors import MakemoreError
from makemore.models import get_spec, model_names
from makemore.run import resolve_device


def test_a_mistyped_option_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--batch-sise", "8"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --batch-sise" in err and "did you mean --batch-size?" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_mistyped_choice_or_command_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--model", "trasformer"]) == 2
    assert "did you mean transformer?" in capsys.readouterr().err
    assert main(["trian"]) == 2
    assert "did you mean train?" in capsys.readouterr().err


def test_models_shows_each_familys_sizes_and_training_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in model_names():
        spec = get_spec(name)
        block = out.split(f"\n{name}: ", 1)[1].split("\n\n", 1)[0]
        for key, value in spec.defaults.items():
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            assert f"--{key.replace('_', '-')} {shown}" in block, (name, key)
        for key, value in spec.train.items():
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            assert f"--{key.replace('_', '-')} {shown}" in block, (name, key)
    assert "--batch-size" in out.split("\ntransformer: ", 1)[1]  # the defaults it trains with, not only its own


def test_an_output_under_a_file_is_one_sentence(tiny_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["train", str(tiny_file), "--model", "bigram", "--steps", "2", "--out", str(tiny_file / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "a part of that path is a file, not a directory" in err and "Traceback" not in err


def test_mps_is_accepted_where_pytorch_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(MakemoreError, match="--device mps needs an Apple GPU"):
        resolve_device("mps")
    with pytest.raises(MakemoreError, match="choose auto, cpu, cuda or mps"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has an Apple GPU")
def test_mps_where_there_is_none_is_one_sentence(tiny_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["train", str(tiny_file), "--model", "bigram", "--steps", "2", "--device", "mps", "--out", str(tmp_path / "r")])
    assert rc == 2 and "--device mps needs an Apple GPU" in capsys.readouterr().err
