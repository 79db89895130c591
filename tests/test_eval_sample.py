"""Exact evaluation against a brute-force per-item computation; batched sampling."""

from __future__ import annotations

import math

import pytest
import torch

from makemore.data import BOUNDARY, Vocab, encode_items
from makemore.errors import MakemoreError
from makemore.evaluate import evaluate_split
from makemore.models import create_model, model_config
from makemore.sampling import generate, novelty

ITEMS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "a", "zoe"]


def trained_like_model(name: str, vocab: Vocab, block_size: int):
    torch.manual_seed(0)
    model = create_model(model_config(name, vocab_size=vocab.size, block_size=block_size, n_embd=16, n_hidden=32,
                                      n_layer=2, n_head=2))
    with torch.no_grad():  # random weights of a sensible size, so the distribution is not uniform
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.double().eval()


@pytest.mark.parametrize("name", ["mlp", "gru", "transformer", "wavenet"])
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
