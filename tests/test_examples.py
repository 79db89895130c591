"""The lectures' data mode: `--split lecture`, (context, next) examples, and example batches in the Trainer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import full_names_txt
from makemore.cli import main
from makemore.config import DataConfig, TrainConfig
from makemore.data import load_dataset, lecture_split
from makemore.errors import MakemoreError
from makemore.evaluate import evaluate_split
from makemore.examples import EXAMPLE_MODELS, build_examples, example_context
from makemore.models import create_model, model_config
from makemore.run import train_run
from makemore.train import Trainer


def lecture_build_dataset(words: list[str], block_size: int, stoi: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The lectures' `build_dataset`, verbatim but for the names."""
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(X), torch.tensor(Y)


def test_lecture_split_and_examples_are_the_lectures_on_names_txt() -> None:
    path = full_names_txt()
    ds = load_dataset(DataConfig(input=str(path), split="lecture"))
    # the lecture's own cells
    words = open(path).read().splitlines()
    random.seed(42)
    random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    lecture = {"train": words[:n1], "val": words[n1:n2], "test": words[n2:]}
    stoi = {s: i + 1 for i, s in enumerate(sorted(set("".join(words))))}
    stoi["."] = 0
    shapes = {}
    for name, ws in lecture.items():
        assert ds.splits[name].items == ws
        ex = build_examples(ds.splits[name], 3)
        X, Y = lecture_build_dataset(ws, 3, stoi)
        assert torch.equal(ex.x, X) and torch.equal(ex.next_chars, Y)
        assert (ex.y[:, :-1] == -1).all()
        shapes[name] = tuple(ex.x.shape)
    assert shapes == {"train": (182_625, 3), "val": (22_655, 3), "test": (22_866, 3)}  # part 3's printed shapes


def test_lecture_split_cuts_at_int_fractions() -> None:
    items = [f"n{i}" for i in range(32_033)]
    train, val, test = lecture_split(items)
    assert (len(train), len(val), len(test)) == (25_626, 3_203, 3_204)
    assert sorted(train + val + test) == sorted(items)
    with pytest.raises(MakemoreError, match="at least 3"):
        lecture_split(["a", "b"])


@pytest.mark.parametrize("family, kw", [("mlp", {"context": 3}), ("wavenet", {"context": 8, "norm": "batch"}),
                                        ("bigram", {})])
def test_whole_item_eval_is_the_mean_over_examples(names_file: Path, family: str, kw: dict) -> None:  # type: ignore[type-arg]
    """The same evaluation serves both modes: for a fixed-context model, the loss over every position of
    every item equals the lectures' mean over every example (float64)."""
    ds = load_dataset(DataConfig(input=str(names_file), split="lecture"))
    torch.manual_seed(0)
    model = create_model(model_config(family, vocab_size=ds.vocab.size, block_size=ds.block_size, **kw)).double()
    if family == "bigram":
        torch.nn.init.normal_(model.logits)
    model.train()
    model(ds.splits["train"].x[:64], ds.splits["train"].y[:64])  # one training forward: BatchNorm's running stats move
    model.eval()
    split = ds.splits["val"]
    ex = build_examples(split, example_context(model))
    with torch.no_grad():
        logits, _ = model(ex.x)
        lecture = F.cross_entropy(logits[:, -1], ex.next_chars).item()
    assert evaluate_split(model, split)["nll"] == pytest.approx(lecture, abs=1e-12)


def test_example_row_computes_the_lectures_network(names_file: Path) -> None:
    """A batch row (context ids, target in the last column) gives the lecture's loss and gradients
    for its (context, next) pair, BatchNorm statistics over the 32 examples included."""
    ds = load_dataset(DataConfig(input=str(names_file), split="lecture"))
    cfg = model_config("mlp", context=3, n_embd=10, n_hidden=200, n_layer=1, norm="batch",
                       vocab_size=ds.vocab.size, block_size=ds.block_size)
    torch.manual_seed(0)
    model = create_model(cfg).double()
    tc = TrainConfig(batch_size=32, batches="examples", optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0)
    x, y = Trainer(model, ds, tc, torch.device("cpu")).get_batch()
    assert x.shape == (32, 3) and y.shape == (32, 3) and (y[:, :2] == -1).all()
    _, loss = model(x, y)
    loss.backward()
    # the lecture's forward for (Xb, Yb), written out on the same parameters
    C, W1 = model.wte.weight, model.hidden[0].weight
    bn, W2, b2 = model.hidden[1], model.lm_head.weight, model.lm_head.bias
    params = [C, W1, bn.weight, bn.bias, W2, b2]
    grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    hpre = C[x].view(32, -1) @ W1.T
    hpre = bn.weight * (hpre - hpre.mean(0)) / (hpre.var(0, unbiased=False) + bn.eps).sqrt() + bn.bias
    ref = F.cross_entropy(torch.tanh(hpre) @ W2.T + b2, y[:, -1])
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), abs=1e-12)
    for g, p in zip(grads, params):
        torch.testing.assert_close(g, p.grad, rtol=0, atol=1e-12)


def test_example_batches_train_resume_and_checkpoint(tmp_path: Path, names_file: Path) -> None:
    """Example batches go through train_run, its checkpoints and an exact resume."""
    data = DataConfig(input=str(names_file), split="lecture")
    mcfg = model_config("mlp", context=3, n_embd=8, n_hidden=32, n_layer=1)
    tc = TrainConfig(steps=20, batch_size=32, batches="examples", optimizer="sgd", lr=0.1, momentum=0.0,
                     schedule="constant", eval_interval=10, log_interval=10, device="cpu")
    full = train_run(data, mcfg, tc, tmp_path / "full", n_samples=0)
    half = train_run(data, mcfg, TrainConfig(**{**tc.__dict__, "steps": 10}), tmp_path / "half", n_samples=0)
    resumed = train_run(data, mcfg, TrainConfig(**{**tc.__dict__, "steps": 20}), tmp_path / "half", resume=True, n_samples=0)
    assert half.state.step == 10 and resumed.state.step == 20
    assert resumed.metrics["val"]["nll"] == full.metrics["val"]["nll"]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    assert a["train_config"]["batches"] == "examples" and a["data_config"]["split"] == "lecture"


@pytest.mark.parametrize("family", ["transformer", "rnn", "bow", "mlp-manual"])
def test_example_batches_refused_for_models_without_a_fixed_context(family: str) -> None:
    assert family not in EXAMPLE_MODELS
    with pytest.raises(MakemoreError, match="fixed context") as e:
        example_context(model_config(family))
    assert family in str(e.value) and "--batches items" in str(e.value)


def test_cli_example_batches_and_split(tmp_path: Path, names_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t"
    assert main(["train", str(names_file), "--model", "transformer", "--batches", "examples", "--steps", "2",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fixed context" in err and "Traceback" not in err and not out.exists()
    assert main(["train", str(names_file), "--split", "0.5,0.6", "--out", str(out)]) == 2
    assert "three fractions" in capsys.readouterr().err and not out.exists()
    assert main(["train", str(names_file), "--model", "bigram", "--split", "lecture", "--batches", "examples",
                 "--steps", "3", "--samples", "0", "--out", str(out)]) == 0
    assert (out / "last.pt").is_file()


@pytest.mark.parametrize("family, kw", [("mlp", {"context": 3}), ("wavenet", {"context": 8, "norm": "batch"}),
                                        ("bigram", {})])
def test_cpu_fast_path_on_example_rows_equals_the_model(names_file: Path, family: str, kw: dict) -> None:  # type: ignore[type-arg]
    """The speed layer's positions-with-a-target loss keeps every column of an example row (float64)."""
    from makemore.speed import fast_loss

    ds = load_dataset(DataConfig(input=str(names_file), split="lecture"))
    torch.manual_seed(0)
    model = create_model(model_config(family, vocab_size=ds.vocab.size, block_size=ds.block_size, **kw)).double()
    ex = build_examples(ds.splits["train"], example_context(model))
    x, y = ex.x[:32], ex.y[:32]
    fast = fast_loss(model)
    assert fast is not None
    loss_fast = fast(x, y)
    grads_fast = torch.autograd.grad(loss_fast, list(model.parameters()), allow_unused=True)
    _, loss = model(x, y)
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    assert loss_fast.item() == pytest.approx(loss.item(), abs=1e-12)
    for a, b in zip(grads_fast, grads):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
