"""Greedy decoding: `--temperature 0` picks the most likely character at every position."""

from __future__ import annotations

import pytest
import torch

from makemore.data import BOUNDARY, Vocab
from makemore.errors import MakemoreError
from makemore.models import create_model, model_config
from makemore.sampling import generate


def argmax_decode(model: torch.nn.Module, vocab: Vocab, block_size: int) -> str:
    """The reference: re-run the whole prefix each step and take the argmax, until the boundary."""
    idx = [BOUNDARY]
    with torch.no_grad():
        while len(idx) < block_size + 1:
            logits = model(torch.tensor([idx]))[0][0, -1]  # (V,)
            nxt = int(logits.argmax())
            if nxt == BOUNDARY:
                break
            idx.append(nxt)
    return vocab.decode(idx[1:])


@pytest.mark.parametrize("name", ["mlp", "gru", "transformer"])  # gru and transformer decode with a cache
def test_temperature_zero_is_argmax_decoding(name: str) -> None:
    vocab = Vocab.from_items(["emma", "olivia", "ava", "isabella", "sophia"])
    torch.manual_seed(1)
    model = create_model(model_config(name, vocab_size=vocab.size, block_size=12)).eval()
    with torch.no_grad():
        for p in model.parameters():  # larger weights than at init: confident, varied choices
            p.add_(torch.randn_like(p) * 0.5)
    expected = argmax_decode(model, vocab, 12)
    got = generate(model, vocab, 12, n=3, temperature=0.0, top_k=2, seed=7)
    assert got == [expected] * 3 and len(expected) > 0
    assert generate(model, vocab, 12, n=3, temperature=0.0, seed=8) == got  # no randomness left


def test_negative_temperature_is_refused() -> None:
    vocab = Vocab.from_items(["ab"])
    model = create_model(model_config("bigram", vocab_size=vocab.size, block_size=4))
    with pytest.raises(MakemoreError, match="zero .* or positive"):
        generate(model, vocab, 4, n=1, temperature=-1.0)
