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


# -- one behaviour for train --monitor, report and doctor ----------------------------------------------

BAD_INIT = ["--model", "mlp", "--n-hidden", "16", "--init-output-scale", "10", "--device", "cpu", "--threads", "1"]


def finding_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("ERROR", "WARNING", "INFO"))]


def test_an_error_finding_is_printed_alike_and_exits_1_in_all_three(names_file: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    rc = main(["train", str(names_file), *BAD_INIT, "--steps", "12", "--eval-interval", "12", "--samples", "0",
               "--out", str(run), "--monitor-every", "4"])
    train_out = capsys.readouterr().out
    assert rc == 1 and "ERROR   init.loss_too_high at lm_head (step 0)" in train_out
    assert f"report: {run / 'report.html'}" in train_out

    assert main(["report", str(run)]) == 1
    report_out = capsys.readouterr().out
    assert finding_lines(report_out) == finding_lines(train_out)  # the same findings, printed the same way
    assert f"report: {run / 'report.html'} (replaced the previous one)" in report_out

    assert main(["doctor", str(names_file), *BAD_INIT, "--steps", "12", "--every", "4"]) == 1
    doctor_out = capsys.readouterr().out
    assert "ERROR   init.loss_too_high at lm_head (step 0)" in finding_lines(doctor_out)[0]
    assert "report: doctor-report.html" in doctor_out
    page = (tmp_path / "doctor-report.html").read_text(encoding="utf-8")
    assert "makemore doctor " in page and "--init-output-scale 10" in page  # the command that reproduces it
    for cmd in ("doctor", "report", "train"):
        assert main([cmd, "--help"]) == 0
        assert "exit status:" in capsys.readouterr().out


def test_the_doctor_never_replaces_a_report_silently(names_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "doctor-report.html").write_text("mine")
    args = ["doctor", str(names_file), "--model", "bigram", "--steps", "3", "--every", "1", "--threads", "1"]
    assert main(args) in (0, 1)  # ran
    ran = capsys.readouterr()
    assert "report: doctor-report-2.html" in ran.out  # a new name, said
    assert "step 3/3" in ran.err  # progress while it trains
    assert (tmp_path / "doctor-report.html").read_text() == "mine"
    assert main([*args, "--report", "doctor-report.html"]) == 2  # refused before any training
    err = capsys.readouterr().err
    assert "doctor-report.html exists" in err and "--overwrite" in err and (tmp_path / "doctor-report.html").read_text() == "mine"
    assert main([*args, "--report", str(names_file / "r.html")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert main([*args, "--report", "doctor-report.html", "--overwrite"]) in (0, 1)
    assert (tmp_path / "doctor-report.html").read_text().startswith("<!DOCTYPE html>")


def test_without_matplotlib_the_report_commands_say_so(names_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    rc = main(["doctor", str(names_file), "--model", "bigram", "--steps", "3", "--report", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install 'makemore[plots]'" in err and not (tmp_path / "r.html").exists()


def test_zero_steps_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert "argument --steps: must be at least 1, got 0" in err and "Traceback" not in err


def test_help_shows_the_real_defaults_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--help"]) == 0
    doctor = " ".join(capsys.readouterr().out.split())
    assert "run ends on time only) (default: 300)" in doctor  # what the doctor runs, not train's 3000
    assert main(["train", "--help"]) == 0
    train = " ".join(capsys.readouterr().out.split())
    assert "(default: 0.5)" in train and "(0.5,)" not in train
    assert "auto, cpu, cuda or mps" in train
    assert main(["sample", "--help"]) == 0
    assert "0: greedy" in capsys.readouterr().out
