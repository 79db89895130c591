"""The command line through `main(argv)`: the happy path and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from makemore.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


FAST = ("--steps", "40", "--eval-interval", "20", "--log-interval", "20", "--samples", "3", "--device", "cpu")


def test_train_eval_sample_models(capsys, names_file, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", str(names_file), "--model", "mlp", "--out", str(out), *FAST)
    assert code == 0, err
    assert "step-0 loss" in err and "test" in err and "samples:" in err
    for f in ("config.json", "data/meta.json", "metrics.jsonl", "last.pt", "best.pt", "summary.json"):
        assert (out / f).is_file(), f

    code, stdout, _ = run(capsys, "eval", str(out), "--json")
    figures = json.loads(stdout)
    assert code == 0 and set(figures) == {"train", "val", "test"}
    assert figures["val"]["nll"] == pytest.approx(json.loads((out / "summary.json").read_text())["metrics"]["val"]["nll"])

    code, stdout, err = run(capsys, "sample", str(out), "-n", "7", "--seed", "5", "--json")
    rows = json.loads(stdout)
    assert code == 0 and len(rows) == 7 and all(r["in"] in ("train", "val", "test", "new") for r in rows)
    assert "novelty" in err
    code, stdout2, _ = run(capsys, "sample", str(out), "-n", "7", "--seed", "5", "--json")
    assert json.loads(stdout2) == rows  # same seed, same items

    code, stdout, _ = run(capsys, "models")
    assert code == 0 and "transformer" in stdout and "204,544" in stdout


def test_eval_on_file_with_unknown_characters(capsys, names_file, tmp_path):
    out = tmp_path / "run"
    assert run(capsys, "train", str(names_file), "--model", "bigram", "--out", str(out), *FAST)[0] == 0
    other = tmp_path / "other.txt"
    other.write_text("anna\nzoë\nbob\n", encoding="utf-8")
    code, _, err = run(capsys, "eval", str(out), "--file", str(other))
    assert code == 2 and "'ë'" in err and "--skip-unknown" in err
    code, stdout, _ = run(capsys, "eval", str(out), "--file", str(other), "--skip-unknown", "--json")
    result = json.loads(stdout)
    assert code == 0 and result["skipped"]["items"] == 1 and result["file"]["n_items"] == 2
    longer = tmp_path / "longer.txt"
    longer.write_text("anna\n" + "a" * 40 + "\n", encoding="utf-8")
    code, _, err = run(capsys, "eval", str(out), "--file", str(longer))
    assert code == 2 and "40 characters" in err and "--max-len" not in err


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    def f(name: str, data: bytes) -> str:
        p = tmp_path / name
        p.write_bytes(data)
        return str(p)

    good = f("good.txt", b"anna\nbob\ncarl\ndora\n")
    return {
        "missing": ([str(tmp_path / "nope.txt")], "does not exist"),
        "directory": ([str(tmp_path)], "is a directory"),
        "empty": ([f("empty.txt", b"")], "holds no items"),
        "blank": ([f("blank.txt", b"\n \n\t\n")], "holds no items"),
        "binary": ([f("bin.dat", bytes(range(256)))], "binary"),
        "latin1": ([f("latin1.txt", b"jos\xe9\nana\nbo\n")], "not UTF-8"),
        "single": ([f("one.txt", b"alone\n")], "only 1 item"),
        "too long": ([f("long.txt", b"ab\n" + b"x" * 80 + b"\ncd\n"), "--max-len", "64"], "line 2 is 80 characters"),
        "unknown model": ([good, "--model", "nope"], "invalid choice: 'nope'"),
        "negative steps": ([good, "--steps", "-5"], "must be zero or positive"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs(Path("/tmp")).keys()))
def test_bad_train_input(capsys, tmp_path, case):
    args, fragment = _bad_inputs(tmp_path)[case]
    out = tmp_path / "runs" / "x"
    code, stdout, err = run(capsys, "train", *args, "--out", str(out), *FAST)
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # nothing left behind that looks like a run


def test_corrupt_and_foreign_checkpoints(capsys, names_file, tmp_path):
    out = tmp_path / "run"
    assert run(capsys, "train", str(names_file), "--model", "bigram", "--out", str(out), *FAST)[0] == 0
    best = out / "best.pt"
    data = best.read_bytes()

    best.write_bytes(data[: len(data) // 2])  # truncated
    code, _, err = run(capsys, "sample", str(out))
    assert code == 2 and "corrupt" in err and len(err.strip().splitlines()) == 1

    torch.save({"state_dict": {"w": torch.zeros(2)}}, best)  # someone else's checkpoint
    code, _, err = run(capsys, "eval", str(out))
    assert code == 2 and "not a makemore checkpoint" in err

    class Evil:  # a pickle that would run code if loaded unsafely
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "makemore-checkpoint", "payload": Evil()}, best)
    code, stdout, err = run(capsys, "sample", str(out))
    assert code == 2 and "pwned" not in stdout and "not a safe makemore checkpoint" in err

    code, _, err = run(capsys, "sample", str(tmp_path / "no-such-run"))
    assert code == 2 and "does not exist" in err


def test_existing_run_dir_is_not_overwritten(capsys, names_file, tmp_path):
    out = tmp_path / "run"
    assert run(capsys, "train", str(names_file), "--model", "bigram", "--out", str(out), *FAST)[0] == 0
    before = (out / "last.pt").read_bytes()
    code, _, err = run(capsys, "train", str(names_file), "--model", "bigram", "--out", str(out), *FAST)
    assert code == 2 and "--resume" in err
    assert (out / "last.pt").read_bytes() == before


def test_help_shows_defaults(capsys):
    code, stdout, _ = run(capsys, "train", "--help")
    assert code == 0 and "(default: adamw)" in stdout and "--resume" in stdout


def test_tensorboard_flag(capsys, names_file, tmp_path):
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", str(names_file), "--model", "bigram", "--out", str(out), "--tensorboard", *FAST)
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        assert code == 2 and "pip install tensorboard" in err and not out.exists()
    else:
        assert code == 0 and any((out / "tensorboard").iterdir())
