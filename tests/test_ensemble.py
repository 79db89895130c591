"""The ensemble: its probabilities are the average of its members' (float64 reference), it loads,
evaluates and samples like any model, and `makemore train --members K` trains the members in
processes of their own, stops them all on a signal, resumes them and scores their average."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from makemore.checkpoint import Checkpoint, load_checkpoint, load_model, save_checkpoint
from makemore.cli import main
from makemore.config import DataConfig, ModelConfig, TrainConfig
from makemore.data import Vocab, load_encoded
from makemore.models import create_model, model_config
from makemore.models.ensemble import Ensemble
from makemore.sampling import generate
from makemore.speed import fast_logits

V, T = 7, 6


def _members(dtype: torch.dtype = torch.float32) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [create_model(model_config("gru", vocab_size=V, block_size=T, n_embd=8, n_hidden=12)).to(dtype).eval(),
            create_model(model_config("mlp", vocab_size=V, block_size=T, n_embd=4, n_hidden=10)).to(dtype).eval(),
            create_model(model_config("gru", vocab_size=V, block_size=T, n_embd=5, n_hidden=9)).to(dtype).eval()]


def test_the_ensemble_predicts_the_mean_of_its_members_probabilities() -> None:
    members = _members(torch.float64)
    x, y = torch.randint(0, V, (4, T)), torch.randint(0, V, (4, T))
    mean = sum(torch.softmax(m(x)[0], dim=-1) for m in members) / len(members)  # (B, T, V), float64
    logits, loss = Ensemble(members)(x, y)
    assert torch.allclose(logits, mean.log(), rtol=0, atol=1e-12)
    nll = -mean.log().gather(-1, y.unsqueeze(-1)).mean()
    assert abs(loss.item() - nll.item()) < 1e-12


def test_the_evaluation_path_equals_the_ensembles_own_forward() -> None:
    model = Ensemble(_members())
    x = torch.randint(0, V, (5, T))
    path = fast_logits(model)
    assert path is not None
    with torch.inference_mode():
        assert torch.allclose(path(x), model(x)[0], atol=1e-5)


def test_an_ensemble_checkpoint_loads_and_samples(tmp_path: Path) -> None:
    members = _members()
    model = Ensemble(members)
    vocab = Vocab(tuple("abcdef"))
    ckpt = Checkpoint(ModelConfig(name="ensemble", vocab_size=V, block_size=T), TrainConfig(members=3), DataConfig(),
                      vocab, 0, model.state_dict(), members=[m.config for m in members])
    save_checkpoint(tmp_path / "best.pt", ckpt)
    loaded = load_model(load_checkpoint(tmp_path / "best.pt"))
    x = torch.randint(0, V, (3, T))
    assert isinstance(loaded, Ensemble) and torch.equal(loaded(x)[0], model(x)[0])
    a = generate(loaded, vocab, T, 8, seed=3)
    assert a == generate(loaded, vocab, T, 8, seed=3) and all(set(s) <= set("abcdef") and len(s) <= T for s in a)


OPTS = ["--model", "gru", "--n-hidden", "16", "--n-embd", "8", "--eval-interval", "10", "--log-interval", "5",
        "--threads", "2", "--device", "cpu", "--samples", "3"]


def _float64_test_nll(out: Path) -> float:
    """The ensemble's test NLL from its members' checkpoints: their probabilities averaged in float64."""
    test = load_encoded(out / "data").splits["test"]
    members = [load_model(load_checkpoint(out / "members" / str(k) / "best.pt")).double() for k in (0, 1)]
    assert not torch.equal(members[0].lm_head.weight, members[1].lm_head.weight)  # seeds 1337 and 1338
    x, y = test.batch(torch.arange(len(test)), None)  # (N, T) each
    with torch.no_grad():
        p = sum(torch.softmax(m(x)[0], dim=-1) for m in members) / 2  # (N, T, V)
    keep = y >= 0
    return -p.log().gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep].mean().item()


@pytest.mark.parametrize("option", [["--monitor"], ["--stop-at-val-loss", "2.0"]])
def test_what_an_ensemble_cannot_do_yet_is_one_sentence(names_file: Path, tmp_path: Path, capsys, option) -> None:
    out = tmp_path / "run"
    assert main(["train", str(names_file), "--members", "2", "--steps", "5", "--out", str(out), *OPTS, *option]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "an ensemble (--members) cannot be combined with" in err[0]
    assert not out.exists()


def test_a_signal_stops_every_member_and_resume_finishes_the_ensemble(names_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "makemore", "train", str(names_file), "--members", "2", "--steps", "1000000",
           "--out", str(out), *OPTS]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300  # a loaded machine can be slow to start Python
    while time.time() < deadline and not all((out / "members" / str(k) / "last.pt").is_file() for k in (0, 1)):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert f"continue with: makemore train --out {out} --resume" in err
    steps = [load_checkpoint(out / "members" / str(k) / "last.pt").step for k in (0, 1)]
    assert min(steps) >= 10 and not (out / "summary.json").exists()
    assert main(["train", "--out", str(out), "--resume", "--steps", str(max(steps) + 10), "--device", "cpu"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "ensemble" and [m["steps"] for m in summary["members"]] == [max(steps) + 10] * 2
    seeds = [json.loads((out / "members" / str(k) / "config.json").read_text())["train"]["seed"] for k in (0, 1)]
    assert seeds == [1337, 1338]
    nll = _float64_test_nll(out)
    assert abs(summary["metrics"]["test"]["nll"] - nll) < 1e-5
    capsys.readouterr()
    assert main(["eval", str(out), "--json", "--device", "cpu"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["test"]["nll"] - nll) < 1e-5
    assert main(["sample", str(out), "-n", "4", "--device", "cpu"]) == 0


def test_the_doctor_refuses_an_ensemble_in_one_sentence(names_file: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "report.html"
    assert main(["doctor", str(names_file), "--members", "2", "--steps", "5", "--report", str(report)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the doctor watches one model" in err[0] and not report.exists()
