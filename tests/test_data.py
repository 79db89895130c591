"""Reading, vocabulary, splits and encoding (makemore.data, makemore.corpora)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from makemore import data
from makemore.config import DataConfig
from makemore.corpora import builtin_names
from makemore.data import BOUNDARY, _cache_key, IGNORE, LengthBuckets, Vocab, encode_items, load_dataset, read_items, read_lines, split_items
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


def test_held_out_splits_are_capped_and_the_rest_trains(tmp_path):
    items = [f"item{i}" for i in range(100)]
    train, val, test = split_items(items, (0.8, 0.1, 0.1), seed=1, max_eval_items=3)
    full = split_items(items, (0.8, 0.1, 0.1), seed=1)
    assert [len(s) for s in (train, val, test)] == [94, 3, 3]
    assert sorted(train + val + test) == sorted(items)
    assert split_items(items, (0.8, 0.1, 0.1), seed=1, max_eval_items=10) == full  # a cap not reached changes nothing
    p = write(tmp_path, "\n".join(items).encode() + b"\n")
    ds = load_dataset(DataConfig(input=str(p), max_eval_items=3))
    assert [len(ds.splits[k].items) for k in ("train", "val", "test")] == [94, 3, 3]
    assert _cache_key(DataConfig(input=str(p), max_eval_items=3)) != _cache_key(DataConfig(input=str(p)))


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


# ---------------------------------------------------------------------------------------------
# data that scales: the token stream, its batches, the cache, long lines, big vocabularies


def padded_reference(items: list[str], vocab: Vocab, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain (n, width) int64 layout, built item by item: what every batch must equal."""
    x = torch.full((len(items), width), BOUNDARY, dtype=torch.long)
    y = torch.full((len(items), width), IGNORE, dtype=torch.long)
    for i, item in enumerate(items):
        ids = vocab.encode(item)
        x[i, 1 : len(ids) + 1] = torch.tensor(ids, dtype=torch.long)
        y[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        y[i, len(ids)] = BOUNDARY
    return x, y


def test_batches_equal_the_padded_reference():
    items = builtin_names()[:500] + ["a", "abcdefghijklmnopqrstuvwxyzabcdefghijkl"]
    vocab = Vocab.from_items(items)
    split = encode_items(items, vocab, block_size=40)
    assert split.tokens.dtype == torch.uint8 and split.tokens[0] == BOUNDARY
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        idx = torch.randint(len(items), (32,), generator=gen)
        rows = [items[i] for i in idx.tolist()]
        longest = max(map(len, rows)) + 1
        x, y = split.batch(idx)  # as wide as the batch's longest item
        rx, ry = padded_reference(rows, vocab, longest)
        assert x.dtype == y.dtype == torch.long and torch.equal(x, rx) and torch.equal(y, ry)
        x, y = split.batch(idx, width=40)
        rx, ry = padded_reference(rows, vocab, 40)
        assert torch.equal(x, rx) and torch.equal(y, ry)
        for w in (None, 40):  # the path other devices take, run on the CPU
            x, y = split._batch_torch(idx, w)
            rx, ry = padded_reference(rows, vocab, w or longest)
            assert torch.equal(x, rx) and torch.equal(y, ry)
    assert split.items == items and len(split) == len(items)
    assert split.n_chars == sum(len(s) + 1 for s in items)


@pytest.mark.parametrize("n_chars, dtype", [(26, torch.uint8), (255, torch.uint8), (256, torch.int16), (40_000, torch.int32)])
def test_token_storage_is_sized_to_the_vocabulary(n_chars, dtype):
    # CJK ideographs, then ideographs outside the basic plane (one code point, two UTF-16 units)
    chars = [chr(c) for c in [*range(0x4E00, 0x4E00 + 20_000), *range(0x20000, 0x20000 + 20_000)][:n_chars]]
    vocab = Vocab(tuple(chars))
    assert vocab.dtype == dtype
    items = ["".join(chars[i : i + 5]) for i in range(0, n_chars, 5)]
    split = encode_items(items, vocab, block_size=6)
    assert split.tokens.dtype == dtype
    assert int(split.tokens.max()) == n_chars  # the last character's id survives the narrow type
    x, y = split.batch(torch.arange(len(items)))
    assert torch.equal(x, padded_reference(items, vocab, x.size(1))[0])
    assert split.items == items


def test_subset_sample_and_membership():
    items = [f"{w}{i}" for i, w in enumerate(builtin_names()[:300])]
    split = encode_items(items, Vocab.from_items(items), block_size=20)
    a, b = split.sample(50, seed=3), split.sample(50, seed=3)
    assert len(a) == 50 and a.items == b.items and a.items != split.sample(50, seed=4).items
    assert set(a.items) <= set(items) and len(set(a.items)) == 50
    assert split.sample(1000, seed=3) is split  # fewer items than asked: all of them
    assert all(s in split for s in items[::7])
    assert all(s not in split for s in ["", "zzz", items[0] + "x", items[0][:-1], "é"])
    assert all(s in a for s in a.items) and sum(s in a for s in items) == 50


def test_long_lines_are_an_error_or_skipped_and_counted(tmp_path):
    p = write(tmp_path, ("\n".join(["anna", "x" * 80, "bob", "carl", "y" * 70, "dora"]) + "\n").encode())
    with pytest.raises(MakemoreError, match=r"line 2 is 80 characters long.*--skip-long"):
        load_dataset(DataConfig(input=str(p)))
    items, skipped = read_lines(p, max_len=64, skip_long=True)
    assert items == ["anna", "bob", "carl", "dora"] and skipped == 2
    ds = load_dataset(DataConfig(input=str(p), skip_long=True))
    assert ds.skipped_long == 2 and sum(map(len, ds.splits.values())) + sum(ds.dropped.values()) == 4
    assert ds.block_size <= 5


def test_encoded_input_is_cached_and_keyed_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKEMORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "CACHE_MIN_BYTES", 0)
    p = write(tmp_path, ("\n".join(builtin_names()[:2000]) + "\n").encode())
    cfg = DataConfig(input=str(p))
    first = load_dataset(cfg)
    assert len(list((tmp_path / "cache").iterdir())) == 1

    def no_reading(*a, **k):
        raise AssertionError("the cached input was read again")

    with monkeypatch.context() as m:
        m.setattr(data, "read_lines", no_reading)
        again = load_dataset(cfg)
    assert again.vocab == first.vocab and again.block_size == first.block_size and again.source == str(p)
    for name, split in first.splits.items():
        assert torch.equal(again.splits[name].tokens, split.tokens) and again.splits[name].items == split.items
    # other split settings, or other contents, make another entry
    load_dataset(DataConfig(input=str(p), seed=7))
    p.write_bytes(p.read_bytes() + b"zelda\n")
    changed = load_dataset(cfg)
    assert len(list((tmp_path / "cache").iterdir())) == 3
    assert sum(len(s) for s in changed.splits.values()) == 2001


def test_a_damaged_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKEMORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "CACHE_MIN_BYTES", 0)
    p = write(tmp_path, ("\n".join(builtin_names()[:100]) + "\n").encode())
    first = load_dataset(DataConfig(input=str(p))).splits["train"].items  # decoded before the entry is damaged
    (entry,) = (tmp_path / "cache").iterdir()
    (entry / "train.tokens.npy").write_bytes(b"garbage")
    again = load_dataset(DataConfig(input=str(p)))
    assert again.splits["train"].items == first


def test_length_buckets_draw_every_item_equally_often_in_batches_of_similar_length():
    rng = np.random.default_rng(0)
    items = ["a" * int(k) for k in rng.integers(1, 30, 199)] + ["b" * 300]  # one long line
    split = encode_items(items, Vocab.from_items(items), block_size=301)
    sampler = LengthBuckets(split, batch_size=16, n_buckets=10)
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(len(items))
    widths = []
    for _ in range(4000):
        idx = sampler.indices(gen)
        counts += torch.bincount(idx, minlength=len(items))
        lengths = split.lengths[idx]
        assert int(lengths.max()) - int(lengths.min()) <= 30 or int(lengths.max()) == 300  # one group each
        widths.append(int(lengths.max()) + 1)
    # each item's count is Binomial(64,000, 1/200): mean 320, sd ~18
    assert counts.sum() == 64_000 and float((counts - 320).abs().max()) < 5 * 18
    # uniform draws put the long line in 8% of batches (1 - (199/200)^16) and the others are as wide as
    # the longest of 16 random lengths; here only the longest group's batches are that wide
    uniform = [int(split.lengths[torch.randint(len(items), (16,), generator=gen)].max()) + 1 for _ in range(4000)]
    assert np.mean(widths) < 0.7 * np.mean(uniform)
    # a batch is a function of the generator alone: the same state gives the same batch
    state = gen.get_state()
    x1, y1 = sampler(gen)
    gen.set_state(state)
    x2, y2 = sampler(gen)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.size(1) == int((y1 != IGNORE).sum(1).max())


def test_bucketed_training_resumes_bit_exactly(names_file, tmp_path):
    from makemore.checkpoint import load_checkpoint
    from makemore.cli import main

    opts = ["--model", "mlp", "--n-hidden", "32", "--schedule", "constant", "--buckets", "4", "--eval-interval", "10",
            "--samples", "0", "--device", "cpu"]
    assert main(["train", str(names_file), "--out", str(tmp_path / "a"), "--steps", "20", *opts]) == 0
    assert main(["train", str(names_file), "--out", str(tmp_path / "b"), "--steps", "10", *opts]) == 0
    assert main(["train", "--out", str(tmp_path / "b"), "--resume", "--steps", "20", "--device", "cpu"]) == 0
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert a.step == b.step == 20 and a.train_config.buckets == 4
    assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in a.model_state)


def test_an_unusable_cache_costs_a_note_not_the_run(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MAKEMORE_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(data, "CACHE_MIN_BYTES", 0)
    p = write(tmp_path, ("\n".join(builtin_names()[:100]) + "\n").encode())
    ds = load_dataset(DataConfig(input=str(p)))
    assert sum(map(len, ds.splits.values())) + sum(ds.dropped.values()) == 100
    assert "note: could not cache the encoded input" in capsys.readouterr().err


def test_a_cached_input_is_mapped_from_the_first_run_and_linked_into_run_directories(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKEMORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "CACHE_MIN_BYTES", 0)
    p = write(tmp_path, ("\n".join(builtin_names()[:300]) + "\n").encode())
    first = load_dataset(DataConfig(input=str(p)))  # builds the entry, then maps it
    (entry,) = (tmp_path / "cache").iterdir()
    assert first.stored == entry  # read back from the entry, not the arrays built in memory
    data.save_encoded(first, tmp_path / "run")
    for name in ("train", "val", "test"):
        for suffix in ("tokens", "lengths"):
            f = f"{name}.{suffix}.npy"
            assert (tmp_path / "run" / f).stat().st_ino == (entry / f).stat().st_ino  # a link, not a copy
    back = data.load_encoded(tmp_path / "run")
    assert back.splits["val"].items == first.splits["val"].items and back.vocab == first.vocab

    def no_links(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(data.os, "link", no_links)  # another file system: the arrays are copied
    data.save_encoded(first, tmp_path / "run2")
    assert (tmp_path / "run2" / "train.tokens.npy").stat().st_nlink == 1
    assert data.load_encoded(tmp_path / "run2").splits["train"].items == first.splits["train"].items
