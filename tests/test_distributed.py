"""Data parallel training with torchrun on the CPU (gloo): the same losses as one process, and
a killed process ends the job with a clear message instead of hanging."""

from __future__ import annotations

import json
import os
import signal
import socket
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


def _command(out: Path, data: Path, steps: int, launcher: list[str], extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, *launcher, "-m", "makemore", "train", str(data), *ARGS, *extra,
            "--steps", str(steps), "--eval-interval", "6", "--out", str(out)]


def _train(out: Path, data: Path, steps: int, nproc: int, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    return subprocess.run(_command(out, data, steps, launcher, extra), capture_output=True, text=True, env=_env(), timeout=240)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The names file and a single-process run on it: the reference for every multi-process run."""
    from makemore.corpora import builtin_names

    tmp = tmp_path_factory.mktemp("one")
    data = tmp / "names.txt"
    data.write_text("\n".join(builtin_names()[:300]) + "\n", encoding="utf-8")
    one = _train(tmp / "run", data, 12, 1)
    assert one.returncode == 0, one.stderr
    return data, tmp / "run"


def _records(run: Path, kind: str) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


def _same_curves(one: Path, two: Path, tol: float) -> None:
    a, b = _records(one, "train"), _records(two, "train")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 13))
    for ra, rb in zip(a, b):
        assert abs(ra["loss"] - rb["loss"]) < tol, (ra, rb)
    va, vb = _records(one, "eval"), _records(two, "eval")
    assert len(va) == len(vb) == 2  # rank 0 alone evaluated and logged
    for ra, rb in zip(va, vb):
        assert abs(ra["val_loss"] - rb["val_loss"]) < tol
    assert (two / "best.pt").is_file() and (two / "summary.json").is_file()


def test_two_processes_match_one_process_with_the_same_global_batch(one_process: tuple[Path, Path], tmp_path: Path) -> None:
    data, one = one_process
    two = _train(tmp_path / "two", data, 12, 2)
    assert two.returncode == 0, two.stderr
    assert "data parallel: 2 processes (gloo), 4 items each per step" in two.stderr
    _same_curves(one, tmp_path / "two", 1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_machines_with_the_readme_rendezvous_match_one_process(one_process: tuple[Path, Path], tmp_path: Path) -> None:
    # the README's several-machines command line, each "machine" a launcher of its own on this
    # host, meeting through torchrun's c10d rendezvous on a TCP port
    data, one = one_process
    port = _free_port()
    procs = []
    for node in range(2):
        launcher = ["-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={node}", "--nproc_per_node=1",
                    "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=makemore-test"]
        procs.append(subprocess.Popen(_command(tmp_path / "two", data, 12, launcher), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, env=_env()))
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=240)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    assert sum("data parallel: 2 processes (gloo), 4 items each per step" in o for o in outputs) == 1  # rank 0 only
    _same_curves(one, tmp_path / "two", 1e-5)


def test_compiled_monitored_data_parallel_matches_one_eager_process(one_process: tuple[Path, Path], tmp_path: Path) -> None:
    # `--monitor-every` rather than `--monitor`, which torchrun's parser takes for its own --monitor-interval
    data, one = one_process
    two = _train(tmp_path / "two", data, 12, 2, ("--compile", "--monitor-every", "4"))
    assert two.returncode == 0, two.stderr
    assert "torch.compile failed" not in two.stderr
    _same_curves(one, tmp_path / "two", 1e-4)  # compiled kernels round differently; the monitor changes nothing
    records = json.loads((tmp_path / "two" / "diagnostics.json").read_text())  # rank 0's view of its slice
    assert [s["step"] for s in records["steps"]] == [0, 4, 8, 11]
    assert all(len(s["acts"]) >= 8 and len(s["grads"]) >= 4 for s in records["steps"])  # hooks ran every time


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
