"""The training loop: schedules, optimizers, checkpoints and the resume-after-kill property."""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from makemore.checkpoint import load_checkpoint
from makemore.config import DataConfig, TrainConfig
from makemore.errors import MakemoreError
from makemore.models import model_config
from makemore.run import train_run
from makemore.train import clip_grads_, lr_at, make_optimizer


def test_lr_schedules():
    const = TrainConfig(lr=0.1, schedule="constant")
    assert lr_at(const, 500, 0.5) == 0.1
    # the lectures' step decay: 0.1, then 0.01 after 100k of 200k steps
    step = TrainConfig(lr=0.1, schedule="step", lr_drops=(100_000,), lr_drop_factor=0.1, steps=200_000)
    assert lr_at(step, 99_999, 0.4999) == 0.1
    assert math.isclose(lr_at(step, 100_000, 0.5), 0.01)
    frac = TrainConfig(lr=1.0, schedule="step", lr_drops=(0.5, 0.75), lr_drop_factor=0.5, steps=100)
    assert [lr_at(frac, s, s / 100) for s in (10, 50, 80)] == [1.0, 0.5, 0.25]
    cos = TrainConfig(lr=1.0, schedule="cosine", warmup=10, min_lr=0.1, steps=110)
    assert math.isclose(lr_at(cos, 0, 0.0), 0.1)  # warm-up starts small
    assert math.isclose(lr_at(cos, 9, 0.0), 1.0)
    assert math.isclose(lr_at(cos, 60, 0.5), 0.55)  # halfway down: min + (max-min)/2
    assert math.isclose(lr_at(cos, 110, 1.0), 0.1)


@pytest.mark.parametrize("opt", ["adamw", "sgd", "rmsprop"])
def test_optimizers_and_weight_decay_groups(opt):
    from makemore.models import create_model

    model = create_model(model_config("mlp", vocab_size=27, block_size=16))
    o = make_optimizer(model, TrainConfig(optimizer=opt, weight_decay=0.1))
    decayed = {id(p) for g in o.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.dim() >= 2), name  # matrices decay, biases do not


def test_counts_model_fits_in_one_pass(names_file, tmp_path):
    result = train_run(DataConfig(input=str(names_file)), model_config("counts"), TrainConfig(steps=0), tmp_path / "run",
                       stream=io.StringIO(), n_samples=3)
    assert result.metrics["test"]["nll"] < 2.9  # far below ln(27) = 3.30
    assert len(result.samples) == 3
    assert (tmp_path / "run" / "summary.json").is_file()


def _train_cmd(data: Path, out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "makemore", "train", str(data), "--model", "mlp", "--n-hidden", "64", "--dropout", "0.1",
            "--steps", str(steps), "--eval-interval", "50", "--log-interval", "50", "--batch-size", "16",
            "--schedule", "cosine", "--warmup", "20", "--out", str(out), "--samples", "0", "--device", "cpu"]


def _step_of(path: Path) -> int:
    """Step of the checkpoint at `path`, -1 when there is none yet (or it is being replaced)."""
    try:
        return load_checkpoint(path).step
    except MakemoreError:
        return -1


def test_resume_after_sigkill_is_bit_exact(names_file, tmp_path):
    """Kill a run with SIGKILL mid-way, resume it: the same parameters as an uninterrupted run."""
    steps = 1500
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full"
    subprocess.run(_train_cmd(names_file, full, steps), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(names_file, killed, steps), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600  # generous: CI machines can be slow to start Python
    while time.time() < deadline:
        if _step_of(killed / "last.pt") >= 100:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_at_kill = _step_of(killed / "last.pt")
    assert 0 < step_at_kill < steps, "the run should have been killed mid-way"
    assert not (killed / "summary.json").exists()  # a killed run does not look finished

    resume = [sys.executable, "-m", "makemore", "train", "--out", str(killed), "--resume", "--samples", "0", "--device", "cpu"]
    subprocess.run(resume, check=True, env=env, capture_output=True)
    a, b = load_checkpoint(full / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a.step == b.step == steps
    for k in a.model_state:
        assert torch.equal(a.model_state[k], b.model_state[k]), k
    assert json.loads((killed / "summary.json").read_text())["steps"] == steps


def test_metrics_and_best_checkpoint(names_file, tmp_path):
    out = tmp_path / "run"
    stream = io.StringIO()
    train_run(DataConfig(input=str(names_file)), model_config("bigram"), TrainConfig(steps=60, eval_interval=20, log_interval=20, lr=0.1, schedule="constant"),
              out, stream=stream, n_samples=0)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [20, 40, 60]
    best = min(evals, key=lambda r: r["val_loss"])
    assert load_checkpoint(out / "best.pt").step == best["step"]
    # the bigram starts from a uniform softmax: its step-0 loss is exactly ln(vocab size)
    m = re.search(r"step-0 loss ([\d.]+), ln\(vocab size (\d+)\) = ([\d.]+)", stream.getvalue())
    assert m and m.group(1) == m.group(3) == f"{math.log(int(m.group(2))):.4f}"


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])  # below, near and far above the limit
def test_clip_grads_matches_pytorch_clip_grad_norm(scale):
    g = torch.Generator().manual_seed(0)
    shapes = [(27, 64), (64,), (64, 192), (192,), (1,)]
    ours = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    ref = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    for a, b in zip(ours, ref):
        a.grad = torch.randn(a.shape, generator=g, dtype=torch.float64) * scale
        b.grad = a.grad.clone()
    unused = torch.nn.Parameter(torch.zeros(3))  # no gradient: left alone, as PyTorch does
    n_ours = clip_grads_([*ours, unused], 0.5)
    n_ref = torch.nn.utils.clip_grad_norm_(ref, 0.5)
    torch.testing.assert_close(n_ours, n_ref, rtol=1e-15, atol=0)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-15, atol=0)
    assert unused.grad is None


def test_lean_adamw_is_pytorch_fused_adamw_to_the_bit():
    """LeanAdamW (the CPU's AdamW, its lists gathered once) against torch.optim.AdamW(fused=True):
    equal parameters and moments after every step, through learning-rate changes, two weight-decay
    groups, a step where one parameter has no gradient (handed to PyTorch), a state-dict round trip
    into a fresh optimizer, and step hooks (the optimizer's own and global ones) that run once per
    step on either path while registered, and not after."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from makemore.speed.optim import LeanAdamW

    g = torch.Generator().manual_seed(0)
    shapes = [(27, 16), (16, 8), (8,), (27,)]
    ref = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    ours = [torch.nn.Parameter(p.detach().clone()) for p in ref]

    def groups(ps):
        return [{"params": ps[:2], "weight_decay": 0.1}, {"params": ps[2:], "weight_decay": 0.0}]

    a = torch.optim.AdamW(groups(ref), lr=1e-2, betas=(0.9, 0.99), fused=True)
    b = LeanAdamW(groups(ours), lr=1e-2, betas=(0.9, 0.99), fused=True)
    calls = []
    hooks = [b.register_step_pre_hook(lambda *_: calls.append("pre")), b.register_step_post_hook(lambda *_: calls.append("post"))]
    for step in range(12):
        if step == 4:  # steps 4-7 run bare (no hook), then through PyTorch's wrapper again for a global hook
            for h in hooks:
                h.remove()
        if step == 6:
            hooks = [register_optimizer_step_post_hook(lambda *_: calls.append("global"))]
        if step == 7:
            hooks[0].remove()
        if step == 8:  # continue from a saved state in a fresh optimizer
            buf = io.BytesIO()
            torch.save(b.state_dict(), buf)
            b = LeanAdamW(groups(ours), lr=1e-2, betas=(0.9, 0.99), fused=True)
            b.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
        for o in (a, b):
            for group in o.param_groups:
                group["lr"] = 1e-2 / (1 + step)
        for i, (p, q) in enumerate(zip(ref, ours)):
            grad = None if (step == 5 and i == 1) else torch.randn(p.shape, generator=g)
            p.grad, q.grad = grad, None if grad is None else grad.clone()
        a.step()
        b.step()
        a.zero_grad(set_to_none=True)
        b.zero_grad(set_to_none=True)
        assert b._lists is not None or step in (5, 8)  # the lean path is on after the first step
        for p, q in zip(ref, ours):
            assert torch.equal(p, q) and q.grad is None
            for key in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(a.state[p][key], b.state[q][key]), key
    assert calls == ["pre", "post"] * 4 + ["global"] * 2  # each once per step while registered (global: a's and b's)


def test_make_optimizer_builds_the_lean_adamw_when_asked():
    from makemore.models import create_model
    from makemore.speed.optim import LeanAdamW

    model = create_model(model_config("rnn", vocab_size=27, block_size=16))
    assert type(make_optimizer(model, TrainConfig(), lean=True)) is LeanAdamW
    assert type(make_optimizer(model, TrainConfig())) is torch.optim.AdamW
    assert type(make_optimizer(model, TrainConfig(), fused=False, lean=True)) is torch.optim.AdamW
