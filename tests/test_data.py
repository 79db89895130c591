"""Reading, vocabulary, splits and encoding (makemore.data, makemore.corpora)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from makemore.config import DataConfig
from makemore.corpora import builtin_names
from makemore.data import BOUNDARY, IGNORE, Vocab, encode_items, load_dataset, read_items, split_items
from makemore.errors import MakemoreError


def write(tmp_path: Path, data: bytes, name: str = "f.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_read_items_strips_drops_blank_and_accepts_crlf(tmp_path):
    p = write(tmp_path, b"  anna \r\n\r\nbob\n\t\ncarl\r\n")
    assert read_items(p) == ["anna", "bob", "carl"]


def test_unicode_and_dot_round_trip(tmp_path):
    items = ["josé", "muñoz", "中文", "a.b", "..."]
    p = write(tmp_path, ("\n".join(items) + "\n").encode("utf-8"))
    got = read_items(p)
    assert got == items
    vocab = Vocab.from_items(got)
    assert "." in vocab.chars and "中" in vocab.chars and "é" in vocab.chars
    # the boundary token is a separate id, never a real character
    assert BOUNDARY not in [vocab.encode(c)[0] for c in vocab.chars]
    assert vocab.size == len(set("".join(items))) + 1
    for s in items:
        ids = vocab.encode(s)
        assert len(ids) == len(s)
        assert vocab.decode(ids + [BOUNDARY, 3]) == s  # decoding stops at the boundary


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "holds no items"),
        (b"\n  \n\t\n", "holds no items"),
        (b"abc\x00def\n", "binary"),
        (b"caf\xe9\n", "not UTF-8"),
        (b"a" * 100 + b"\n", "100 characters long"),
    ],
)
def test_bad_files(tmp_path, data, fragment):
    p = write(tmp_path, data)
    with pytest.raises(MakemoreError, match=fragment) as e:
        read_items(p, max_len=64)
    assert str(p) in str(e.value)


def test_missing_and_directory(tmp_path):
    with pytest.raises(MakemoreError, match="does not exist"):
        read_items(tmp_path / "nope.txt")
    with pytest.raises(MakemoreError, match="is a directory"):
        read_items(tmp_path)


def test_split_is_seeded_disjoint_and_complete():
    items = [f"item{i}" for i in range(100)]
    a = split_items(items, (0.8, 0.1, 0.1), seed=1)
    b = split_items(items, (0.8, 0.1, 0.1), seed=1)
    c = split_items(items, (0.8, 0.1, 0.1), seed=2)
    assert a == b and a != c
    assert [len(s) for s in a] == [80, 10, 10]
    assert sorted(sum(a, [])) == sorted(items)


def test_single_item_is_an_error(tmp_path):
    p = write(tmp_path, b"alone\n")
    with pytest.raises(MakemoreError, match="only 1 item"):
        load_dataset(DataConfig(input=str(p)))


def test_encode_layout():
    vocab = Vocab.from_items(["ab", "b"])
    split = encode_items(["ab", "b"], vocab, block_size=4)
    a, b = vocab.encode("a")[0], vocab.encode("b")[0]
    assert split.x.tolist() == [[BOUNDARY, a, b, BOUNDARY], [BOUNDARY, b, BOUNDARY, BOUNDARY]]
    assert split.y.tolist() == [[a, b, BOUNDARY, IGNORE], [b, BOUNDARY, IGNORE, IGNORE]]
    assert split.n_chars == int((split.y != IGNORE).sum()) == 5


def test_load_dataset_with_explicit_files(tmp_path):
    train = write(tmp_path, b"anna\nbob\ncarl\ndora\n", "train.txt")
    val = write(tmp_path, b"bob\n", "val.txt")
    test = write(tmp_path, b"anna\nzed\n", "test.txt")  # 'z' and 'e' are not training characters
    ds = load_dataset(DataConfig(input=str(train), val_file=str(val), test_file=str(test)))
    assert ds.splits["train"].items == ["anna", "bob", "carl", "dora"]
    assert ds.splits["val"].items == ["bob"]
    assert ds.splits["test"].items == ["anna"] and ds.dropped["test"] == 1
    assert ds.block_size == 5
    assert ds.splits["train"].x.dtype == torch.long


def test_builtin_corpus_is_lowercase_unique_names():
    items = builtin_names()
    assert len(items) > 5000
    assert len(set(items)) == len(items)
    assert all(s == s.lower() and s.isalpha() for s in items)
    ds = load_dataset(DataConfig())
    assert ds.vocab.size == 27 and ds.source == "builtin:names"


def test_torch_tensor_infers_dtype_torch_Tensor_does_not():
    """The encoded ids are built with `torch.tensor`, which infers int64 from Python ints;
    `torch.Tensor` would have made float32 ids, which an embedding cannot index with."""
    assert torch.tensor([1, 2]).dtype == torch.int64
    assert torch.Tensor([1, 2]).dtype == torch.float32
    split = encode_items(["ab"], Vocab.from_items(["ab"]), block_size=3)
    assert split.x.dtype == split.y.dtype == torch.int64
