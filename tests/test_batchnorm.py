"""BatchNorm calibration and folding against direct computation; coupling between examples."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from makemore.batchnorm import (
    batchnorm_layers, calibrate, coupling, fold_batchnorm, fold_for_inference, folded_copy, has_batchnorm,
)
from makemore.checkpoint import load_checkpoint
from makemore.cli import main
from makemore.config import DataConfig, TrainConfig
from makemore.corpora import builtin_names
from makemore.models import create_model, model_config
from makemore.run import eval_run, load_run, sample_run, train_run

V, T = 27, 12
BN_MODELS = [("mlp", {"norm": "batch", "n_layer": 2}), ("mlp", {"norm": "batch", "hidden_bias": True}),
             ("wavenet", {}), ("mlp-manual", {})]


def _moved_model(name: str, seed: int = 0, **kw) -> nn.Module:
    """A float64 BatchNorm model whose gains, shifts and running statistics are far from their defaults."""
    torch.manual_seed(seed)
    model = create_model(model_config(name, vocab_size=V, block_size=T, n_embd=8, n_hidden=32, **kw)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
        for _, bn in batchnorm_layers(model):
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return model


def _ids(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, V, (n, T), generator=torch.Generator().manual_seed(seed))


def _bn_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """What each BatchNorm receives when the whole of `x` (with targets `y`) runs through the eval-mode model at once."""
    seen: dict[str, torch.Tensor] = {}
    handles = [bn.register_forward_pre_hook(lambda m, inp, n=name: seen.__setitem__(n, inp[0].detach()))
               for name, bn in batchnorm_layers(model)]
    model.eval()
    with torch.no_grad():
        model(x, y)
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize("name,kw", BN_MODELS)
def test_calibration_gives_the_exact_statistics_of_the_eval_model(name: str, kw: dict) -> None:
    model = _moved_model(name, **kw)
    x = _ids(50, 1)
    assert calibrate(model, x, batch_size=7) == len(batchnorm_layers(model))  # several uneven batches on purpose
    # fixed point: each layer's running statistics are the mean and unbiased variance of its eval-mode input
    for lname, h in _bn_inputs(model, x).items():
        bn = model.get_submodule(lname)
        torch.testing.assert_close(bn.running_mean, h.mean(0), rtol=0, atol=1e-10, msg=lname)
        torch.testing.assert_close(bn.running_var, h.var(0, unbiased=True), rtol=1e-10, atol=1e-10, msg=lname)


def test_calibration_of_the_first_layer_is_the_plain_mean_over_all_positions() -> None:
    model = _moved_model("mlp", norm="batch")
    x = _ids(40, 2)
    calibrate(model, x, batch_size=16)
    emb = model.wte(torch.nn.functional.pad(x, (model.config.context - 1, 0)).unfold(1, model.config.context, 1))
    pre = model.hidden[0](emb.reshape(40 * T, -1))  # first Linear on every position: (n*T, H)
    torch.testing.assert_close(model.hidden[1].running_mean, pre.mean(0).detach(), rtol=0, atol=1e-10)


def test_calibration_is_idempotent_and_restores_the_mode() -> None:
    model = _moved_model("wavenet").train()
    x = _ids(30, 3)
    calibrate(model, x)
    first = {k: v.clone() for k, v in model.state_dict().items()}
    calibrate(model, x, batch_size=4)
    assert model.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, first[k], rtol=1e-12, atol=1e-12, msg=k)


@pytest.mark.parametrize("name,kw", BN_MODELS[:3])
def test_folding_matches_the_eval_model_and_removes_batchnorm(name: str, kw: dict) -> None:
    model = _moved_model(name, **kw).float().eval()
    x = _ids(16, 4)
    folded, n = folded_copy(model, x[:1])
    assert n == len(batchnorm_layers(model)) > 0
    assert not has_batchnorm(folded) and has_batchnorm(model)  # the original is untouched
    with torch.no_grad():
        torch.testing.assert_close(folded(x)[0], model(x)[0], rtol=0, atol=1e-5)
    assert all(m.bias is not None for m in folded.modules() if isinstance(m, nn.Linear))


def test_fold_formula_against_hand_computation() -> None:
    lin = nn.Linear(3, 2, bias=False).double()
    bn = nn.BatchNorm1d(2).double().eval()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]]))
        bn.running_mean.copy_(torch.tensor([0.5, -1.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25]))
        bn.weight.copy_(torch.tensor([2.0, 3.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2]))
    net = nn.Sequential(lin, bn)
    assert fold_batchnorm(net, torch.zeros(1, 3, dtype=torch.float64)) == 1
    s = torch.tensor([2.0, 3.0]) / torch.sqrt(torch.tensor([4.0, 0.25]) + 1e-5)
    torch.testing.assert_close(net[0].weight, torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]], dtype=torch.float64) * s[:, None].double())
    torch.testing.assert_close(net[0].bias, (s * -torch.tensor([0.5, -1.0]) + torch.tensor([0.1, -0.2])).double())
    assert isinstance(net[1], nn.Identity)


class _SharedOutput(nn.Module):
    """The Linear's output feeds the BatchNorm and is used again: folding would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.lin, self.bn = nn.Linear(4, 4), nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        return self.bn(h) + h


def test_folding_refuses_a_linear_output_used_elsewhere() -> None:
    model = _SharedOutput().eval()
    with torch.no_grad():
        model.bn.running_var.fill_(3.0)
        model.bn.running_mean.fill_(1.0)
    with pytest.raises(RuntimeError):
        folded_copy(model, torch.randn(2, 4))
    err = io.StringIO()
    # eval and sample fall back to the model as it is, and say why
    assert fold_for_inference(_AsLanguageModel(model), 4, err).inner is model
    assert "not folded" in err.getvalue()


class _AsLanguageModel(nn.Module):
    """Feeds (B, T) ids to a module that takes (B, 4) features, like fold_for_inference's example row."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.inner(idx.float())


def test_no_batchnorm_means_nothing_to_fold() -> None:
    model = create_model(model_config("mlp", vocab_size=V, block_size=T, norm="layer")).eval()
    err = io.StringIO()
    assert fold_for_inference(model, T, err) is model and err.getvalue() == ""


# --- coupling ----------------------------------------------------------------------------------


def _rows() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 16, generator=g, dtype=torch.float64)
    x2 = x.clone()
    x2[3] = torch.randn(16, generator=g, dtype=torch.float64) * 5  # change one other example
    return x, x2


def test_batchnorm_couples_examples_only_in_train_mode() -> None:
    x, x2 = _rows()
    bn = nn.BatchNorm1d(16).double()
    assert coupling(bn.train(), x, x2, i=0) > 1e-2
    bn.eval()
    assert coupling(bn, x, x2, i=0) == 0.0


@pytest.mark.parametrize("norm", [nn.LayerNorm(16), nn.GroupNorm(4, 16)])
def test_layernorm_and_groupnorm_never_couple(norm: nn.Module) -> None:
    x, x2 = _rows()
    assert coupling(norm.double().train(), x, x2, i=0) == 0.0


@pytest.mark.parametrize("norm,coupled", [("batch", True), ("layer", False), ("group", False)])
def test_coupling_in_a_whole_model(norm: str, coupled: bool) -> None:
    torch.manual_seed(0)
    model = create_model(model_config("mlp", vocab_size=V, block_size=T, norm=norm)).double().train()
    x = _ids(6, 6)
    x2 = x.clone()
    x2[1:] = _ids(5, 7)  # every item but the first changes
    train_mode = coupling(model, x, x2, i=0)
    assert (train_mode > 1e-6) == coupled
    assert coupling(model.eval(), x, x2, i=0) == 0.0


def test_coupling_rejects_a_changed_example() -> None:
    x, x2 = _rows()
    with pytest.raises(ValueError):
        coupling(nn.Identity(), x, x2, i=3)


# --- runs: automatic calibration, folded eval and sample, the calibrate command ----------------


@pytest.fixture(scope="module")
def bn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bn")
    data = tmp / "names.txt"
    data.write_text("\n".join(builtin_names()[:300]) + "\n", encoding="utf-8")
    out = tmp / "run"
    err = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: conftest's one-thread fixture has not run yet
    try:
        train_run(DataConfig(input=str(data)), model_config("mlp", norm="batch", n_hidden=32, n_embd=8),
                  TrainConfig(steps=40, eval_interval=20, log_interval=20, lr=1e-2), out, stream=err, n_samples=2)
    finally:
        torch.set_num_threads(threads)
    assert "BatchNorm calibrated over the training split" in err.getvalue()
    return out


def test_train_calibrates_and_records_it(bn_run: Path) -> None:
    summary = json.loads((bn_run / "summary.json").read_text())
    cal = summary["batchnorm_calibration"]
    assert cal["layers"] == 2 and cal["checkpoint"] == "best.pt"
    assert cal["val_loss_before"] > 0 and cal["val_loss_after"] > 0
    assert abs(summary["metrics"]["val"]["nll"] - cal["val_loss_after"]) < 1e-9  # final figures use the calibrated model
    assert load_checkpoint(bn_run / "best.pt").extra["calibration"] == cal
    # the saved statistics are the exact ones over the training split
    _, model, dataset = load_run(bn_run)
    train = dataset.splits["train"]
    for lname, h in _bn_inputs(model.double(), train.x, train.y).items():  # padding positions do not count
        torch.testing.assert_close(model.get_submodule(lname).running_mean, h.mean(0), rtol=0, atol=1e-5)


def test_eval_and_sample_fold_by_default(bn_run: Path) -> None:
    err = io.StringIO()
    folded = eval_run(bn_run, device="cpu", stream=err)
    assert "using BatchNorm folded into the preceding linear layers" in err.getvalue()
    err2 = io.StringIO()
    plain = eval_run(bn_run, device="cpu", fold=False, stream=err2)
    assert err2.getvalue() == ""
    for split in plain:
        assert abs(folded[split]["nll"] - plain[split]["nll"]) < 1e-5
    err3 = io.StringIO()
    a = sample_run(bn_run, n=5, seed=3, device="cpu", stream=err3)
    b = sample_run(bn_run, n=5, seed=3, device="cpu", fold=False, stream=io.StringIO())
    assert "folded" in err3.getvalue() and a == b


def test_cli_calibrate_eval_no_fold(bn_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", str(bn_run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "val loss" in out and "(+0.0000)" in out  # already calibrated: a fixed point
    assert main(["eval", str(bn_run), "--device", "cpu"]) == 0
    assert "folded" in capsys.readouterr().err
    assert main(["eval", str(bn_run), "--device", "cpu", "--no-fold"]) == 0
    assert "folded" not in capsys.readouterr().err


def test_cli_calibrate_without_batchnorm_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "n.txt"
    data.write_text("\n".join(builtin_names()[:60]) + "\n", encoding="utf-8")
    train_run(DataConfig(input=str(data)), model_config("bigram"), TrainConfig(steps=2, eval_interval=2), tmp_path / "r",
              stream=io.StringIO(), n_samples=0)
    assert main(["calibrate", str(tmp_path / "r")]) == 2
    assert "no BatchNorm" in capsys.readouterr().err
    assert main(["calibrate", str(tmp_path / "missing")]) == 2
