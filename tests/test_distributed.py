"""Data parallel training with torchrun on the CPU (gloo): the same losses as one process, and
a killed process ends the job with a clear message instead of hanging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")

# a small transformer keeps each process quick; no dropout, so the runs are deterministic
ARGS = ["--model", "transformer", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--batch-size", "8",
        "--log-interval", "1", "--samples", "0", "--device", "cpu", "--schedule", "cosine"]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MAKEMORE_DIST_TIMEOUT="30", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def _train(out: Path, data: Path, steps: int, nproc: int) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd = (launcher if nproc > 1 else [sys.executable]) + ["-m", "makemore", "train", str(data), *ARGS,
                                                            "--steps", str(steps), "--eval-interval", "6", "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=240)


def _records(run: Path, kind: str) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


def test_two_processes_match_one_process_with_the_same_global_batch(names_file: Path, tmp_path: Path) -> None:
    one = _train(tmp_path / "one", names_file, 12, 1)
    assert one.returncode == 0, one.stderr
    two = _train(tmp_path / "two", names_file, 12, 2)
    assert two.returncode == 0, two.stderr
    assert "data parallel: 2 processes (gloo), 4 items each per step" in two.stderr
    a, b = _records(tmp_path / "one", "train"), _records(tmp_path / "two", "train")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 13))
    for ra, rb in zip(a, b):
        assert abs(ra["loss"] - rb["loss"]) < 1e-5, (ra, rb)
    va, vb = _records(tmp_path / "one", "eval"), _records(tmp_path / "two", "eval")
    assert len(va) == len(vb) == 2  # rank 0 alone evaluated and logged
    for ra, rb in zip(va, vb):
        assert abs(ra["val_loss"] - rb["val_loss"]) < 1e-5
    assert (tmp_path / "two" / "best.pt").is_file() and (tmp_path / "two" / "summary.json").is_file()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def _rank_of(pid: int) -> str | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"RANK=")), None)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker processes through /proc")
def test_killing_one_process_ends_the_job_with_a_clear_message(names_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "makemore",
           "train", str(names_file), *ARGS, "--steps", "1000000", "--eval-interval", "1000000", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").is_file():  # training has started on every rank
            assert proc.poll() is None and time.monotonic() < deadline, "the job did not start"
            time.sleep(0.2)
        workers = [c for c in _children(proc.pid) if _rank_of(c) == "1"]
        assert workers, "rank 1 not found"
        os.kill(workers[0], signal.SIGKILL)
        output, _ = proc.communicate(timeout=60)  # a hang fails here
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "another process of the job" in output, output[-3000:]
