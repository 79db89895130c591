"""The hand-written backward pass against autograd and PyTorch's own layers, in float64."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from makemore import manual
from makemore.config import TrainConfig
from makemore.corpora import builtin_names
from makemore.data import IGNORE, build_splits
from makemore.models import create_model, model_config
from makemore.train import Trainer


def test_gradcheck_every_row_below_1e_8() -> None:
    rows = manual.gradcheck(n_ignored=5)
    names = [r.name for r in rows]
    assert names[: len(manual.BACKWARD_ORDER)] == list(manual.BACKWARD_ORDER)
    assert names[-2:] == ["logits (compact cross-entropy)", "hprebn (compact BatchNorm)"]
    for r in rows:
        assert r.max_abs_diff < 1e-8, r
    # the loss reaches the top of the chain unchanged: these are bit-for-bit equal
    assert all(r.exact for r in rows[:3])


def test_gradcheck_catches_a_wrong_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table must be able to fail: break the compact BatchNorm formula and it shows."""
    good = manual.dhprebn_compact
    monkeypatch.setattr(manual, "dhprebn_compact", lambda p, t, d: good(p, t, d) * 1.01)
    row = manual.gradcheck()[-1]
    assert row.name == "hprebn (compact BatchNorm)" and row.max_abs_diff > 1e-8


def _batch(n: int = 40, V: int = 27, context: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(0, V, (n, context), generator=g)
    Y = torch.randint(0, V, (n,), generator=g)
    Y[::7] = IGNORE
    return X, Y


def test_forward_equals_pytorch_layers() -> None:
    """The step-by-step forward is embedding + linear + batch_norm + tanh + linear + cross_entropy."""
    p = manual.init_params(27, 3, 10, 64, torch.Generator().manual_seed(1), dtype=torch.float64)
    X, Y = _batch()
    t = manual.forward(p, X, Y)
    emb = F.embedding(X, p["C"]).view(X.size(0), -1)
    h = torch.tanh(F.batch_norm(emb @ p["W1"] + p["b1"], None, None, p["bngain"], p["bnbias"], training=True, eps=manual.EPS))
    logits = h @ p["W2"] + p["b2"]
    torch.testing.assert_close(t["logits"], logits, rtol=0, atol=1e-12)
    torch.testing.assert_close(t["loss"], F.cross_entropy(logits, Y, ignore_index=IGNORE), rtol=0, atol=1e-12)


def test_compact_backward_equals_autograd_for_every_parameter() -> None:
    p = manual.init_params(27, 3, 10, 64, torch.Generator().manual_seed(2), dtype=torch.float64)
    X, Y = _batch(seed=3)
    leaf = {k: v.clone().requires_grad_() for k, v in p.items()}
    manual.forward(leaf, X, Y)["loss"].backward()
    ours = manual.backward_compact(p, X, Y, manual.forward(p, X, Y))
    assert set(ours) == set(p)
    for k in p:
        torch.testing.assert_close(ours[k], leaf[k].grad, rtol=0, atol=1e-10, msg=k)


def _name_examples(context: int, n_items: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The lecture's (N, context) examples from real names."""
    ds = build_splits(builtin_names()[:n_items], [], [], "test")
    split = ds.splits["train"]
    X, Y = manual.examples(split.x, split.y, context)
    keep = Y != IGNORE
    return X[keep], Y[keep], ds.vocab.size


def _curves(steps: int) -> tuple[list[float], list[float]]:
    X, Y, V = _name_examples(3, 500)
    curves = []
    for use_autograd in (False, True):
        p = manual.init_params(V, 3, 8, 32, torch.Generator().manual_seed(0), dtype=torch.float64, lecture=False)
        curves.append(manual.train(p, X, Y, steps, batch_size=32, lr=0.1, generator=torch.Generator().manual_seed(1),
                                   use_autograd=use_autograd))
    return curves[0], curves[1]


def test_manual_training_loop_matches_autograd_1000_steps() -> None:
    manual_curve, autograd_curve = _curves(1000)
    assert max(abs(a - b) for a, b in zip(manual_curve, autograd_curve)) < 1e-4
    assert sum(manual_curve[-50:]) / 50 < manual_curve[0] - 0.5  # it learned something


class _AutogradOnly(nn.Module):
    """The same model without `manual_backward`, so the Trainer takes the loss.backward() path."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        return self.inner(idx, targets)


class _Losses:
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_step_end(self, trainer: Trainer, loss: torch.Tensor) -> None:
        self.values.append(loss.item())


def test_trainer_manual_backward_matches_autograd_1000_steps() -> None:
    """`makemore train --model mlp-manual`: the Trainer's manual path and autograd path, same seed, float64."""
    ds = build_splits(builtin_names()[:300], builtin_names()[300:330], [], "test")
    cfg = model_config("mlp-manual", vocab_size=ds.vocab.size, block_size=ds.block_size, n_embd=6, n_hidden=24)
    tcfg = TrainConfig(steps=1000, batch_size=8, lr=3e-3, eval_interval=10_000, log_interval=10_000)
    torch.manual_seed(0)
    manual_model = create_model(cfg).double()
    auto_model = create_model(cfg).double()
    auto_model.load_state_dict(manual_model.state_dict())
    runs = []
    for model in (manual_model, _AutogradOnly(auto_model)):
        losses = _Losses()
        Trainer(model, ds, tcfg, torch.device("cpu"), [losses]).fit()
        runs.append(losses.values)
    assert len(runs[0]) == len(runs[1]) == 1000
    assert max(abs(a - b) for a, b in zip(*runs)) < 1e-4
    assert sum(runs[0][-50:]) / 50 < runs[0][0] - 0.5  # it trained
    for (k, a), b in zip(manual_model.state_dict().items(), auto_model.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)  # parameters and running statistics


def test_manual_backward_fills_every_gradient_like_autograd() -> None:
    cfg = model_config("mlp-manual", vocab_size=27, block_size=10, hidden_bias=True)
    torch.manual_seed(0)
    model = create_model(cfg).double()
    with torch.no_grad():
        for prm in model.parameters():
            prm.add_(0.1 * torch.randn_like(prm))  # nothing may hide behind zero biases / unit gains
    g = torch.Generator().manual_seed(4)
    x = torch.randint(0, 27, (6, 10), generator=g)
    y = torch.randint(0, 27, (6, 10), generator=g)
    y[:, 7:] = IGNORE
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss_manual = model.manual_backward(x, y)
    manual_grads = {k: v.grad.clone() for k, v in model.named_parameters()}
    after_manual = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    model.zero_grad()
    _, loss = model(x, y)
    loss.backward()
    torch.testing.assert_close(loss_manual, loss.detach(), rtol=0, atol=1e-12)
    for k, prm in model.named_parameters():
        torch.testing.assert_close(manual_grads[k], prm.grad, rtol=0, atol=1e-10, msg=k)
    for k, v in model.state_dict().items():  # running statistics updated the same way as nn.BatchNorm1d
        torch.testing.assert_close(after_manual[k], v, rtol=0, atol=1e-12, msg=k)


def test_mlp_manual_rejects_what_it_is_not() -> None:
    for kw in ({"norm": "layer"}, {"activation": "relu"}, {"n_layer": 2}, {"dropout": 0.1}):
        with pytest.raises(ValueError):
            create_model(dataclasses.replace(model_config("mlp-manual"), **kw))


def test_cli_gradcheck_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    from makemore.cli import main

    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for name in manual.BACKWARD_ORDER:
        assert f"\n{name} " in out
    assert "28/28 tensors agree to 1e-08" in out


def test_cli_gradcheck_fails_with_exit_1_on_a_wrong_gradient(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from makemore.cli import main

    good = manual.dlogits_compact
    monkeypatch.setattr(manual, "dlogits_compact", lambda t, Y: good(t, Y) * 2)
    assert main(["gradcheck"]) == 1
    assert "FAILED: logits (compact cross-entropy)" in capsys.readouterr().out
    assert main(["gradcheck", "--batch-size", "1"]) == 2
