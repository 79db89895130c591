"""Exact evaluation against a brute-force per-item computation; batched sampling."""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from makemore.config import DataConfig, TrainConfig
from makemore.data import BOUNDARY, Vocab, encode_items
from makemore.errors import MakemoreError
from makemore.evaluate import evaluate_split, length_batches
from makemore.run import eval_run, load_run, sample_run, train_run
from makemore.models import create_model, get_spec, model_config
from makemore.sampling import generate, novelty

ITEMS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "a", "zoe"]


def trained_like_model(name: str, vocab: Vocab, block_size: int, n_layer: int = 2):
    torch.manual_seed(0)
    sizes = {k: v for k, v in dict(n_embd=16, n_hidden=32, n_layer=n_layer, n_head=2).items() if k in get_spec(name).reads}
    model = create_model(model_config(name, vocab_size=vocab.size, block_size=block_size, **sizes))
    with torch.no_grad():  # random weights of a sensible size, so the distribution is not uniform
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.double().eval()


@pytest.mark.parametrize("name", ["mlp", "gru", "rnn", "lstm", "transformer", "wavenet"])
def test_eval_equals_brute_force(name):
    vocab = Vocab.from_items(ITEMS)
    block = max(map(len, ITEMS)) + 1
    model = trained_like_model(name, vocab, block)
    split = encode_items(ITEMS, vocab, block)
    got = evaluate_split(model, split, batch_size=3)  # several batches on purpose
    total, count = 0.0, 0
    with torch.no_grad():
        for item in ITEMS:  # one item at a time, no padding at all
            ids = [BOUNDARY] + vocab.encode(item) + [BOUNDARY]
            logits, _ = model(torch.tensor([ids[:-1]]))
            logp = torch.log_softmax(logits[0], dim=-1)
            for t, target in enumerate(ids[1:]):
                total -= logp[t, target].item()
                count += 1
    assert got["n_chars"] == count == sum(len(s) + 1 for s in ITEMS)
    assert abs(got["nll"] - total / count) < 1e-9
    assert abs(got["bpc"] - got["nll"] / math.log(2)) < 1e-12
    assert abs(got["perplexity"] - math.exp(got["nll"])) < 1e-9


@pytest.mark.parametrize("name", ["gru", "rnn"])
def test_eval_path_equals_the_model_in_float64(name):
    """The speed layer's evaluation path (a table lookup for the input projection, the recurrence
    without autograd) gives the model's own logits, and evaluate_split the same figure either way."""
    from makemore.speed import fast_logits
    from makemore.speed.recurrent import applies

    vocab = Vocab.from_items(ITEMS)
    model = trained_like_model(name, vocab, 9, n_layer=1)
    assert applies(model.rnn)
    split = encode_items(ITEMS, vocab, 9)
    x, _ = split.batch(torch.arange(len(ITEMS)), 9)
    with torch.inference_mode():
        torch.testing.assert_close(fast_logits(model)(x), model(x)[0], rtol=1e-12, atol=1e-12)
    fast, plain = evaluate_split(model, split, positions=20), evaluate_split(model, split, positions=20, fast=False)
    assert abs(fast["nll"] - plain["nll"]) < 1e-12


def test_a_diverged_model_has_infinite_perplexity_not_an_error():
    vocab = Vocab.from_items(ITEMS)
    model = trained_like_model("mlp", vocab, 9)
    with torch.no_grad():  # confidently wrong: every logit but the boundary's is far below it
        model.lm_head.bias.fill_(-1e4)
        model.lm_head.bias[BOUNDARY] = 1e4
    got = evaluate_split(model, encode_items(ITEMS, vocab, 9))
    assert got["nll"] > 700 and got["perplexity"] == math.inf

def test_sampling_is_deterministic_and_batched():
    vocab = Vocab.from_items(ITEMS)
    model = trained_like_model("transformer", vocab, 9).float()
    a = generate(model, vocab, 9, n=20, seed=3)
    b = generate(model, vocab, 9, n=20, seed=3)
    c = generate(model, vocab, 9, n=20, seed=4)
    assert a == b and a != c and len(a) == 20
    assert all(len(s) <= 9 and set(s) <= set(vocab.chars) for s in a)


def test_prefix_temperature_and_top_k():
    vocab = Vocab.from_items(ITEMS)
    model = trained_like_model("mlp", vocab, 9).float()
    out = generate(model, vocab, 9, n=10, prefix="em", seed=0)
    assert all(s.startswith("em") for s in out)
    # top-k 1 is greedy: every item is the same whatever the seed
    g1 = generate(model, vocab, 9, n=5, top_k=1, seed=1)
    g2 = generate(model, vocab, 9, n=5, top_k=1, seed=2)
    assert len(set(g1)) == 1 and g1 == g2
    with pytest.raises(MakemoreError, match="never saw"):
        generate(model, vocab, 9, n=1, prefix="Q")
    with pytest.raises(MakemoreError, match="temperature"):
        generate(model, vocab, 9, n=1, temperature=-1)  # 0 is greedy decoding (tests/test_sampling.py)


def test_novelty_marks():
    splits = {"train": ["ann"], "val": ["bo"], "test": ["cy"]}
    assert novelty(["ann", "bo", "cy", "dee"], splits) == ["train", "val", "test", "new"]


# ---------------------------------------------------------------------------------------------
# evaluation that scales; vocabularies of thousands of characters


def brute_force_nll(model, vocab: Vocab, items: list[str]) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for item in items:
            ids = [BOUNDARY] + vocab.encode(item) + [BOUNDARY]
            logp = torch.log_softmax(model(torch.tensor([ids[:-1]]))[0][0], dim=-1)
            total -= sum(logp[t, target].item() for t, target in enumerate(ids[1:]))
            count += len(ids) - 1
    return total / count


def test_length_batches_cover_every_item_once_within_the_budget():
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(1, 12, 500), [200, 300]]).astype(np.int32)  # a few long lines
    order, batches = length_batches(lengths, positions=256)
    assert sorted(order.tolist()) == list(range(len(lengths)))
    assert [b[0] for b in batches] == [0] + [b[1] for b in batches[:-1]] and batches[-1][1] == len(lengths)
    for first, end, width in batches:
        assert width == lengths[order[first:end]].max() + 1
        assert (end - first) * width <= 256 or end - first == 1  # a line longer than the budget goes alone
    padding = sum((e - f) * w for f, e, w in batches) - int(lengths.sum() + len(lengths))
    assert padding < 0.1 * (lengths.sum() + len(lengths))  # sorted by length: almost nothing is padding


@pytest.mark.parametrize("positions", [7, 40, 1 << 14])
def test_eval_by_positions_equals_brute_force(positions):
    items = ITEMS + ["abcdefghijklmnopqrstuvwxyz"]
    vocab = Vocab.from_items(items)
    model = trained_like_model("transformer", vocab, 27)
    got = evaluate_split(model, encode_items(items, vocab, 27), positions=positions)
    assert abs(got["nll"] - brute_force_nll(model, vocab, items)) < 1e-9
    assert got["n_items"] == len(items)


def cjk_names(n: int, seed: int = 0) -> list[str]:
    """Names of 1-4 characters drawn from 3,000 CJK ideographs, with a few emoji."""
    rng = np.random.default_rng(seed)
    chars = [chr(0x4E00 + i) for i in range(3000)] + ["😀", "🎉", "🐍"]
    return ["".join(chars[c] for c in rng.integers(0, len(chars), rng.integers(1, 5))) for _ in range(n)]


def test_thousands_of_characters_train_eval_and_sample(tmp_path):
    items = cjk_names(6000)
    p = tmp_path / "cjk.txt"
    p.write_text("\n".join(items) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    result = train_run(DataConfig(input=str(p)), model_config("transformer", n_embd=16, n_layer=1, n_head=2),
                       TrainConfig(steps=30, eval_interval=30, device="cpu"), out, stream=io.StringIO(), n_samples=5)
    ckpt, model, dataset = load_run(out)
    assert dataset.vocab.size > 2900 and dataset.splits["train"].tokens.dtype == torch.int16
    assert result.metrics["test"]["nll"] < math.log(dataset.vocab.size) + 0.5  # near uniform after 30 steps, finite
    test = dataset.splits["test"]
    assert abs(eval_run(out, device="cpu", stream=io.StringIO())["test"]["nll"]
               - brute_force_nll(model.double(), dataset.vocab, test.items)) < 1e-6
    rows = sample_run(out, n=20, seed=1, device="cpu", stream=io.StringIO())
    assert len(rows) == 20 and all(set(r["item"]) <= set(dataset.vocab.chars) for r in rows)
    assert all(r["in"] in ("train", "val", "test", "new") for r in rows)
    marks = novelty([test.items[0], dataset.splits["train"].items[3], "no such item"], dataset.splits)
    assert marks[0] in ("test", "train", "val") and marks[1] == "train" and marks[2] == "new"


def test_periodic_validation_on_a_fixed_sample_exact_figures_at_the_end(names_file, tmp_path):
    stream = io.StringIO()
    cfg = TrainConfig(steps=20, eval_interval=10, val_subset=10, device="cpu")
    out = tmp_path / "run"
    result = train_run(DataConfig(input=str(names_file)), model_config("bigram"), cfg, out, stream=stream, n_samples=0)
    ckpt, model, dataset = load_run(out)
    n_val, n_test, n_train = (len(dataset.splits[k]) for k in ("val", "test", "train"))
    assert n_val > 20 and n_train > 200
    assert f"periodic validation on a fixed sample of 10 of the {n_val} val items" in stream.getvalue()
    sample = dataset.splits["val"].sample(10, seed=cfg.seed)
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in line][-1]
    assert last["step"] == 20 and ckpt.step == 20  # the loss falls all along: best.pt is the last step
    assert last["val_loss"] == pytest.approx(evaluate_split(model, sample)["nll"], abs=1e-6)
    m = result.metrics
    assert m["val"]["n_items"] == n_val and m["test"]["n_items"] == n_test  # exact whole splits at the end
    assert m["val"]["nll"] == pytest.approx(evaluate_split(model, dataset.splits["val"])["nll"], abs=1e-6)
    assert m["train"]["n_items"] == 10 and f"a fixed sample of 10 of {n_train} items" in stream.getvalue()
    train_sample = dataset.splits["train"].sample(10, seed=0)
    assert m["train"]["nll"] == pytest.approx(evaluate_split(model, train_sample)["nll"], abs=1e-6)
    exact = train_run(DataConfig(input=str(names_file)), model_config("bigram"), replace(cfg, exact_train=True),
                      tmp_path / "exact", stream=io.StringIO(), n_samples=0)
    assert exact.metrics["train"]["n_items"] == n_train
