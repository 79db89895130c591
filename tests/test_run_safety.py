"""Runs that do not collide: the run-directory lock, a failed checkpoint write, SIGTERM and Ctrl-C."""

from __future__ import annotations

import errno
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from makemore.checkpoint import RunDir, load_checkpoint
from makemore.cli import main
from makemore.config import DataConfig, TrainConfig
from makemore.errors import MakemoreError
from makemore.models import model_config
from makemore.run import train_run

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
MODEL = ["--model", "mlp", "--n-hidden", "32", "--batch-size", "16", "--schedule", "constant", "--samples", "0",
         "--device", "cpu", "--threads", "1"]
OPTS = [*MODEL, "--log-interval", "1", "--eval-interval", "100000"]  # no periodic checkpoint


def test_second_process_on_a_locked_run_dir_exits_2(capsys, names_file, tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(names_file), "--out", str(out), "--steps", "5", *OPTS]) == 0
    capsys.readouterr()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from makemore.checkpoint import RunDir\n"
         "with RunDir(sys.argv[1]).locked():\n    print('locked', flush=True); sys.stdin.read()", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = load_checkpoint(out / "last.pt").step
        code = main(["train", "--out", str(out), "--resume", "--steps", "10", "--device", "cpu"])
        err = capsys.readouterr().err.strip()
        assert code == 2
        assert re.fullmatch(rf"makemore train: error: run directory {re.escape(str(out))} is in use by another makemore "
                            rf"run \(process {holder.pid}\); wait for it to finish or choose another --out", err), err
        assert load_checkpoint(out / "last.pt").step == before  # nothing was written
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    # the lock goes with the process that held it
    assert main(["train", "--out", str(out), "--resume", "--steps", "10", "--device", "cpu"]) == 0


def test_a_training_run_holds_the_lock(names_file, tmp_path):
    out = tmp_path / "run"
    seen: list[str] = []

    class TryLock:  # a second open file description in the same process conflicts with flock like another process
        def on_step_end(self, trainer, loss):
            if not seen:
                with pytest.raises(MakemoreError, match="in use by another makemore run") as e:
                    with RunDir(out).locked():
                        pass
                seen.append(str(e.value))

    train_run(DataConfig(input=str(names_file)), model_config("bigram"), TrainConfig(steps=3, device="cpu"), out,
              stream=io.StringIO(), n_samples=0, extra_callbacks=(TryLock(),))
    assert seen
    with RunDir(out).locked():  # released at the end of the run
        pass


@pytest.mark.parametrize("fail", ["torch.save", "os.replace"])
def test_full_disk_during_a_checkpoint_keeps_the_previous_one(capsys, monkeypatch, names_file, tmp_path, fail):
    out = tmp_path / "run"
    calls = {"n": 0}
    real_save, real_replace = torch.save, os.replace

    def full_disk_save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] > 2:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **k)

    def full_disk_replace(src, dst):
        if str(dst).endswith(".pt"):
            calls["n"] += 1
            if calls["n"] > 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    if fail == "torch.save":
        monkeypatch.setattr(torch, "save", full_disk_save)
    else:
        monkeypatch.setattr(os, "replace", full_disk_replace)
    # evaluations at steps 10 and 20: best.pt and last.pt are written at 10, the write at 20 fails
    code = main(["train", str(names_file), "--out", str(out), "--steps", "30", *MODEL, "--eval-interval", "10"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert re.fullmatch(r"makemore train: error: could not write .*\.pt \(No space left on device\); "
                        r"the previous (best|last)\.pt is unchanged", err[-1]), err[-1]
    monkeypatch.undo()
    assert load_checkpoint(out / "last.pt").step == 10
    assert load_checkpoint(out / "best.pt").step == 10
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # no half-written file is left
    assert not (out / "summary.json").exists()
    # the run continues from the intact checkpoint once there is room again
    assert main(["train", "--out", str(out), "--resume", "--device", "cpu"]) == 0
    assert load_checkpoint(out / "last.pt").step == 30


def _start(names_file: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "makemore", "train", str(names_file), "--out", str(out), "--steps", "1000000", *OPTS]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_writes_a_last_checkpoint_and_resume_is_bit_exact(capsys, names_file, tmp_path, sig):
    out = tmp_path / "run"
    proc = _start(names_file, out)
    deadline = time.time() + 300  # generous: a loaded machine can be slow to start Python
    while time.time() < deadline and not (out / "metrics.jsonl").is_file():
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, err
    m = re.search(rf"stopped by {sig.name} at step (\d+), saved in {re.escape(str(out / 'last.pt'))}; "
                  rf"continue with: makemore train --out {re.escape(str(out))} --resume", err)
    assert m, err
    step = int(m.group(1))
    # eval-interval is far away: this last.pt was written because of the signal, at the step reached
    assert load_checkpoint(out / "last.pt").step == step > 0
    assert not (out / "summary.json").exists()

    assert main(["train", "--out", str(out), "--resume", "--steps", str(step + 20), "--device", "cpu"]) == 0
    full = tmp_path / "full"
    assert main(["train", str(names_file), "--out", str(full), "--steps", str(step + 20), *OPTS]) == 0
    a, b = load_checkpoint(full / "last.pt"), load_checkpoint(out / "last.pt")
    assert a.step == b.step == step + 20
    for k in a.model_state:
        assert torch.equal(a.model_state[k], b.model_state[k]), k
