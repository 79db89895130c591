"""Reading and validating files of lines, the character vocabulary, and encoded splits.

A split is one stream of token ids, each item opened by the boundary token and the next
item's boundary closing it:

    tokens = [BOUNDARY, a1, a2, BOUNDARY, b1, b2, b3, BOUNDARY, ...,  BOUNDARY]
    item i:  x = tokens[start : start + n + 1]          model input
             y = tokens[start + 1 : start + n + 2]      targets (the last is the closing boundary)

The ids are stored in the smallest integer type that holds the vocabulary (uint8, int16,
int32) and widened to int64 one batch at a time; a batch is padded only to its own longest
item (BOUNDARY in x, IGNORE in y), so memory grows with the characters, not with the longest
line. The boundary token has id 0 and is never a real character, so '.' (or any other
character) can appear in the data.

Files of at least `CACHE_MIN_BYTES` are encoded once and cached on disk (see `cache_dir`),
keyed by the file's hash and the settings that shape the splits; later runs memory-map the
cached arrays instead of reading the text again.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import numpy as np
import torch

from .config import DataConfig
from .corpora import builtin_names
from .errors import MakemoreError
from .progress import TaskProgress

BOUNDARY = 0     # id of the token that starts and ends every item
IGNORE = -1      # target id of padding positions (cross_entropy's ignore_index)
ENCODED_FORMAT = 1           # version of the on-disk encoded splits (cache and run directory)
CACHE_MIN_BYTES = 1 << 20    # smaller files are read in well under a second: not worth a cache entry
_CHUNK_ITEMS = 1 << 18       # items encoded at once: bounds the encoder's temporary arrays


# ---------------------------------------------------------------------------------------------
# reading


def read_lines(path: str | Path, max_len: int = 64, what: str = "input", skip_long: bool = False,
               stream: IO[str] | None = None) -> tuple[list[str], int]:
    """Items of a UTF-8 file, one per line, and how many lines longer than `max_len` were skipped.

    Whitespace is stripped, blank lines are dropped, LF and CRLF are accepted. A line longer
    than `max_len` characters is an error unless `skip_long`, which drops and counts it.

    Raises:
        MakemoreError: the path is missing, a directory, not UTF-8 text, holds no items, or
            (without `skip_long`) has a line longer than `max_len` characters.
    """
    p = Path(path)
    if not p.exists():
        raise MakemoreError(f"{what} file {p} does not exist")
    if p.is_dir():
        raise MakemoreError(f"{what} file {p} is a directory, expected a text file with one item per line")
    try:
        raw = _read_bytes(p, stream)
    except OSError as e:
        raise MakemoreError(f"cannot read {what} file {p}: {e.strerror}") from None
    if b"\x00" in raw:
        raise MakemoreError(f"{what} file {p} looks binary (it holds NUL bytes), expected UTF-8 text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise MakemoreError(f"{what} file {p} is not UTF-8 text (invalid byte at offset {e.start})") from None
    del raw
    lines = text.splitlines()
    del text
    items = [s for s in map(str.strip, lines) if s]
    skipped = 0
    if items and max(map(len, items)) > max_len:
        if not skip_long:
            lineno, item = next((i, s) for i, s in enumerate(map(str.strip, lines), 1) if len(s) > max_len)
            raise MakemoreError(
                f"{what} file {p} line {lineno} is {len(item)} characters long, more than the maximum "
                f"{max_len} (raise it with --max-len, or drop such lines with --skip-long)"
            )
        kept = [s for s in items if len(s) <= max_len]
        skipped = len(items) - len(kept)
        items = kept
        if not items:
            raise MakemoreError(f"every line of {what} file {p} is longer than the maximum {max_len} characters")
    if not items:
        raise MakemoreError(f"{what} file {p} holds no items (it is empty or has only blank lines)")
    return items, skipped


def read_items(path: str | Path, max_len: int = 64, what: str = "input") -> list[str]:
    """Items of a UTF-8 file, one per line (see `read_lines`); a line over `max_len` is an error."""
    return read_lines(path, max_len, what)[0]


def _read_bytes(p: Path, stream: IO[str] | None) -> bytes:
    size = p.stat().st_size
    chunk = 1 << 24
    bar = TaskProgress(f"reading {p.name}", size, " byte", stream)
    parts = []
    with p.open("rb") as f:
        while block := f.read(chunk):
            parts.append(block)
            bar.update(len(block))
    bar.close()
    return b"".join(parts)


# ---------------------------------------------------------------------------------------------
# vocabulary


@dataclass(frozen=True)
class Vocab:
    """Characters seen in the training items; id 0 is the boundary token, ids 1.. the characters."""

    chars: tuple[str, ...]

    @classmethod
    def from_items(cls, items: Iterable[str]) -> Vocab:
        return cls(tuple(sorted(set("".join(items)))))

    @classmethod
    def from_many(cls, items: Sequence[str]) -> Vocab:
        """`from_items` for millions of items: the distinct code points, found chunk by chunk."""
        seen = np.zeros(0, np.uint32)
        for lo in range(0, len(items), _CHUNK_ITEMS):
            seen = np.union1d(seen, np.unique(_codepoints(items[lo : lo + _CHUNK_ITEMS])))
        return cls(tuple(chr(c) for c in seen.tolist()))  # sorted by code point, as sorted(set(str)) is

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    @property
    def dtype(self) -> torch.dtype:
        """The smallest integer type that holds every id (storage only; batches are int64)."""
        return torch.uint8 if self.size <= 256 else torch.int16 if self.size <= 32767 else torch.int32

    def __post_init__(self) -> None:
        object.__setattr__(self, "_stoi", {c: i + 1 for i, c in enumerate(self.chars)})
        object.__setattr__(self, "_codes", np.array([ord(c) for c in self.chars], dtype=np.uint32))

    def unknown(self, items: Iterable[str]) -> set[str]:
        """Characters in `items` that are not in the vocabulary."""
        seen = set("".join(items))
        return seen - set(self.chars)

    def encode(self, item: str) -> list[int]:
        stoi = self._stoi  # type: ignore[attr-defined]
        return [stoi[c] for c in item]

    def decode(self, ids: Iterable[int]) -> str:
        """Characters of `ids` up to the first boundary token."""
        out = []
        for i in ids:
            if i == BOUNDARY:
                break
            out.append(self.chars[i - 1])
        return "".join(out)


def _codepoints(items: Sequence[str]) -> np.ndarray:
    """Code points of all characters of `items`, concatenated: (total characters,) uint32."""
    return np.frombuffer("".join(items).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


# ---------------------------------------------------------------------------------------------
# encoded splits


@dataclass(eq=False)
class Split:
    """The items of one split as a token stream (see the module docstring)."""

    tokens: torch.Tensor    # (N,) ids in `vocab.dtype`; tokens[0] is a boundary
    starts: torch.Tensor    # (n,) int64: where each item's opening boundary is
    lengths: torch.Tensor   # (n,) int32: characters per item (without the boundaries)
    vocab: Vocab
    block_size: int         # positions of a full-width row: longest allowed item + 1
    _cache: dict[str, object] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return self.lengths.numel()

    @property
    def n_chars(self) -> int:
        """Number of predicted characters, the closing boundary of each item included."""
        return int(self.lengths.sum()) + len(self)

    def batch(self, idx: torch.Tensor, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded int64 (B, W) input and target rows of the items `idx` (B,).

        W is `width`, or the longest of these items + 1 when None (a host sync: the CPU's choice;
        a fixed width keeps the shapes constant, as CUDA graphs need).
        """
        if self.tokens.device.type == "cpu":
            return self._batch_numpy(idx.numpy(), width)
        return self._batch_torch(idx, width)

    def _batch_torch(self, idx: torch.Tensor, width: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        n_pos = self.lengths[idx].long() + 1                     # (B,) positions with a target
        w = int(n_pos.max()) if width is None else width
        cols = self._cols()
        pos = (self.starts[idx].unsqueeze(1) + cols[: w + 1]).clamp_(max=self.tokens.numel() - 1)  # (B, W+1)
        row = self.tokens[pos].long()                            # (B, W+1): past an item's end, other items
        pad = cols[:w] >= n_pos.unsqueeze(1)                     # (B, W)
        return row[:, :w].masked_fill(pad, BOUNDARY), row[:, 1:].masked_fill(pad, IGNORE)

    def _batch_numpy(self, idx: np.ndarray, width: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        # the same as _batch_torch (tested equal) in NumPy, whose per-call overhead on arrays
        # this small is lower than PyTorch's
        tokens, starts, lengths, cols = self._numpy()
        n_pos = lengths[idx].astype(np.int64) + 1                # (B,)
        w = int(n_pos.max()) if width is None else width
        pos = starts[idx][:, None] + cols[: w + 1]               # (B, W+1)
        np.minimum(pos, len(tokens) - 1, out=pos)
        row = tokens[pos].astype(np.int64)                       # (B, W+1)
        pad = cols[:w] >= n_pos[:, None]                         # (B, W)
        x, y = row[:, :w].copy(), row[:, 1:].copy()
        x[pad] = BOUNDARY
        y[pad] = IGNORE
        return torch.from_numpy(x), torch.from_numpy(y)

    def _cols(self) -> torch.Tensor:
        cols = self._cache.get("cols")
        if cols is None:
            cols = self._cache["cols"] = torch.arange(self.block_size + 1, device=self.tokens.device)
        return cols  # type: ignore[return-value]

    def _numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        arrays = self._cache.get("numpy")
        if arrays is None:
            arrays = self._cache["numpy"] = (self.tokens.numpy(), self.starts.numpy(), self.lengths.numpy(),
                                             np.arange(self.block_size + 1))
        return arrays  # type: ignore[return-value]

    @property
    def x(self) -> torch.Tensor:
        """All items as one padded (n, block_size) int64 input tensor (built on first use; small data only)."""
        return self._padded()[0]

    @property
    def y(self) -> torch.Tensor:
        """All items' padded (n, block_size) int64 targets, IGNORE at padding (built on first use)."""
        return self._padded()[1]

    def _padded(self) -> tuple[torch.Tensor, torch.Tensor]:
        if "padded" not in self._cache:
            idx = torch.arange(len(self), device=self.tokens.device)
            self._cache["padded"] = self.batch(idx, width=self.block_size)
        return self._cache["padded"]  # type: ignore[return-value]

    @property
    def items(self) -> list[str]:
        """The items as strings (decoded on first use)."""
        if "items" not in self._cache:
            self._cache["items"] = self._decode()
        return self._cache["items"]  # type: ignore[return-value]

    def _decode(self) -> list[str]:
        tokens = self.tokens.cpu().numpy()
        starts, lengths = self.starts.cpu().numpy(), self.lengths.cpu().numpy()
        opening = np.flatnonzero(tokens == BOUNDARY)[:-1]  # (items in the stream,)
        if 10 * len(self) < len(opening):  # a small subset of a big stream: item by item
            return [self.vocab.decode(tokens[s + 1 : s + 1 + n].tolist()) for s, n in zip(starts.tolist(), lengths.tolist())]
        # the whole stream at once: ids -> code points -> one string, cut at the boundaries
        used = set(self.vocab.chars)
        sep = next(c for c in ("\n", "\x00", "\x01", "\x02") if c not in used)
        table = np.concatenate([np.array([ord(sep)], np.uint32), self.vocab._codes])  # type: ignore[attr-defined]
        every = table[tokens].tobytes().decode("utf-32-le", "surrogatepass").split(sep)[1:-1]  # items in stream order
        return [every[k] for k in np.searchsorted(opening, starts).tolist()]

    def __contains__(self, item: object) -> bool:
        """Whether `item` (a string) is one of this split's items, found without decoding the split."""
        if not isinstance(item, str) or self.vocab.unknown([item]):
            return False
        ids = self.vocab.encode(item)
        cand = torch.nonzero(self.lengths == len(ids)).squeeze(1)  # (k,) items of the same length
        for k, i in enumerate(ids):
            if cand.numel() == 0:
                break
            cand = cand[self.tokens[self.starts[cand] + 1 + k] == i]
        return cand.numel() > 0

    def subset(self, idx: torch.Tensor) -> Split:
        """The items `idx` (a view on the same token stream)."""
        return Split(self.tokens, self.starts[idx], self.lengths[idx], self.vocab, self.block_size)

    def sample(self, k: int, seed: int = 0) -> Split:
        """A fixed, seeded sample of `k` items (all of them, in order, if there are no more than `k`)."""
        if k >= len(self):
            return self
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=gen)[:k].sort().values  # in stream order: fewer page faults
        return self.subset(idx.to(self.starts.device))

    def to(self, device: torch.device | str) -> Split:
        if self.tokens.device == torch.device(device):
            return self
        return Split(self.tokens.to(device), self.starts.to(device), self.lengths.to(device), self.vocab, self.block_size)


def _encode_stream(items: Sequence[str], vocab: Vocab, drop_unknown: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Token stream, lengths and number of dropped items (characters outside `vocab`), chunk by chunk.

    Without `drop_unknown`, an item with an unknown character is an error.
    """
    np_dtype = {torch.uint8: np.uint8, torch.int16: np.int16, torch.int32: np.int32}[vocab.dtype]
    codes = vocab._codes  # type: ignore[attr-defined]  # (V-1,) sorted code points
    table = np.zeros(0x110000, dtype=np.int32)  # code point -> id, 0 where not in the vocabulary
    table[codes] = np.arange(1, len(codes) + 1, dtype=np.int32)
    parts, all_lengths, dropped = [], [], 0
    bar = TaskProgress("encoding", len(items), " item")
    for lo in range(0, len(items), _CHUNK_ITEMS):
        chunk = items[lo : lo + _CHUNK_ITEMS]
        lengths = np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk))  # (c,)
        ids = table[_codepoints(chunk)]                                             # (chars,)
        known = ids > 0
        if not known.all():
            owner = np.repeat(np.arange(len(chunk)), lengths)                      # (chars,) item of each char
            bad = np.zeros(len(chunk), dtype=bool)
            bad[owner[~known]] = True
            if not drop_unknown:
                first = chunk[int(np.flatnonzero(bad)[0])]
                raise MakemoreError(f"item {first!r} has characters outside the vocabulary: {' '.join(sorted(vocab.unknown([first])))}")
            ids, lengths = ids[~bad[owner]], lengths[~bad]
            dropped += int(bad.sum())
        out = np.zeros(len(ids) + len(lengths), dtype=np_dtype)  # each item: [BOUNDARY, c1 .. cn]
        out[np.arange(len(ids)) + np.repeat(np.arange(1, len(lengths) + 1), lengths)] = ids
        parts.append(out)
        all_lengths.append(lengths.astype(np.int32))
        bar.update(len(chunk))
    bar.close()
    parts.append(np.zeros(1, dtype=np_dtype))  # the last item's closing boundary
    return np.concatenate(parts), np.concatenate(all_lengths) if all_lengths else np.zeros(0, np.int32), dropped


def _split_from_arrays(tokens: np.ndarray, lengths: np.ndarray, vocab: Vocab, block_size: int) -> Split:
    lengths_t = torch.from_numpy(lengths)
    starts = torch.zeros(len(lengths), dtype=torch.long)
    if len(lengths) > 1:
        torch.cumsum(lengths_t[:-1].long() + 1, 0, out=starts[1:])
    return Split(torch.from_numpy(tokens), starts, lengths_t, vocab, block_size)


def encode_items(items: Sequence[str], vocab: Vocab, block_size: int) -> Split:
    """Encode items into a split; an item longer than `block_size - 1` characters is an error."""
    tokens, lengths, _ = _encode_stream(items, vocab, drop_unknown=False)
    _check_fits(items, lengths, block_size)
    return _split_from_arrays(tokens, lengths, vocab, block_size)


def _check_fits(items: Sequence[str], lengths: np.ndarray, block_size: int) -> None:
    if len(lengths) and int(lengths.max()) + 1 > block_size:
        item = next(s for s in items if len(s) + 1 > block_size)
        raise MakemoreError(f"item {item!r} is longer than the model's {block_size - 1} characters")


class LengthBuckets:
    """Training batches of items of similar length (a `makemore.train.Sampler`).

    The split's items, sorted by length, are cut into `n_buckets` groups of equal count. A batch
    picks one group with probability proportional to its size, then `batch_size` items uniformly
    within it: every item is as likely as with uniform draws, but a batch is padded to the longest
    of similar items, so a few long lines no longer pad the batches of short ones (with `narrow`,
    on the CPU; otherwise rows keep the block size). Each batch is a function of `generator`
    alone, so a resumed run draws the same batches.
    """

    def __init__(self, split: Split, batch_size: int, n_buckets: int, narrow: bool = True) -> None:
        lengths = split.lengths.cpu().numpy()
        order = np.argsort(lengths, kind="stable")                         # (n,) items by length
        bounds = np.linspace(0, len(order), max(1, min(n_buckets, len(order))) + 1).round().astype(np.int64)
        device = split.tokens.device
        self.split, self.batch_size = split, batch_size
        self.order = torch.from_numpy(order).to(device)
        self.ends = torch.from_numpy(bounds[1:]).to(device)                 # (k,) end of each group in `order`
        self.first = torch.from_numpy(bounds[:-1]).to(device)               # (k,)
        self.size = self.ends - self.first                                  # (k,)
        # as wide as the batch's longest item where the model allows it (`RowSampler`'s `narrow`)
        self.width = None if narrow and device.type == "cpu" else split.block_size

    def indices(self, generator: torch.Generator) -> torch.Tensor:
        """(batch_size,) item indices, all from one group."""
        dev = self.order.device
        anchor = torch.randint(len(self.order), (1,), generator=generator, device=dev)  # a uniform item's rank
        group = torch.searchsorted(self.ends, anchor, right=True)                       # (1,) its group
        u = torch.rand(self.batch_size, generator=generator, device=dev, dtype=torch.float64)
        return self.order[self.first[group] + (u * self.size[group]).long()]           # (B,)

    def __call__(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split.batch(self.indices(generator), self.width)


@dataclass
class Dataset:
    """The vocabulary, the block size and the encoded train/val/test splits."""

    vocab: Vocab
    block_size: int
    splits: dict[str, Split]
    source: str
    dropped: dict[str, int]  # per split: items dropped for characters outside the vocabulary
    skipped_long: int = 0    # input lines dropped by --skip-long
    stored: Path | None = None  # the directory `load_encoded` read the splits from (None: built in memory)

    def to(self, device: torch.device | str) -> Dataset:
        if all(s.tokens.device == torch.device(device) for s in self.splits.values()):
            return self
        return replace(self, splits={k: s.to(device) for k, s in self.splits.items()})


def split_items(items: Sequence[str], fractions: tuple[float, float, float], seed: int,
                max_eval_items: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Shuffle with `seed` and cut into train/val/test by `fractions` (val and test get at least 1,
    and at most `max_eval_items` each when it is not 0; the rest train)."""
    if len(items) < 3:
        raise MakemoreError(f"need at least 3 items to make train/val/test splits, got {len(items)}")
    order = list(items)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_val = max(1, round(fractions[1] * n))
    n_test = max(1, round(fractions[2] * n))
    if max_eval_items:
        n_val, n_test = min(n_val, max_eval_items), min(n_test, max_eval_items)
    n_train = n - n_val - n_test
    if n_train < 1:
        raise MakemoreError(f"the split {fractions} leaves no training items out of {n}")
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


def lecture_split(items: Sequence[str], seed: int = 42) -> tuple[list[str], list[str], list[str]]:
    """The lectures' split: `random.seed(42); random.shuffle(words)`, then the first 80%, the next
    10% and the rest, cut at int(0.8 n) and int(0.9 n) (makemore parts 2-5's `build_dataset` cells)."""
    if len(items) < 3:
        raise MakemoreError(f"need at least 3 items to make train/val/test splits, got {len(items)}")
    order = list(items)
    random.Random(seed).shuffle(order)  # the same draws as random.seed(seed); random.shuffle(order)
    n1, n2 = int(0.8 * len(order)), int(0.9 * len(order))
    return order[:n1], order[n1:n2], order[n2:]


def build_splits(train: Sequence[str], val: Sequence[str], test: Sequence[str], source: str, block_size: int | None = None,
                 vocab: Vocab | None = None, skipped_long: int = 0) -> Dataset:
    """Build the vocabulary from `train` (unless given) and encode all three splits.

    Val/test items with characters outside the vocabulary are dropped and counted in
    `Dataset.dropped`; the model could not score them.
    """
    vocab = vocab or Vocab.from_many(train)
    encoded = {"train": _encode_stream(train, vocab, drop_unknown=False)}
    for name, items in (("val", val), ("test", test)):
        encoded[name] = _encode_stream(items, vocab, drop_unknown=True)
    longest = max((int(lengths.max()) for _, lengths, _ in encoded.values() if len(lengths)), default=0)
    if block_size is None:
        block_size = longest + 1
    elif longest + 1 > block_size:
        every = [*train, *val, *test]
        _check_fits(every, np.fromiter(map(len, every), np.int64), block_size)
    splits = {name: _split_from_arrays(tokens, lengths, vocab, block_size) for name, (tokens, lengths, _) in encoded.items()}
    dropped = {name: encoded[name][2] for name in ("val", "test")}
    return Dataset(vocab, block_size, splits, source, dropped, skipped_long)


# ---------------------------------------------------------------------------------------------
# encoded splits on disk (the cache and the run directory)


def save_encoded(ds: Dataset, path: str | Path) -> None:
    """Write `ds` as .npy arrays and meta.json into directory `path` (meta.json last: it marks a complete copy).

    Arrays that `ds` maps from files (a cache entry) are hard-linked where the file system allows:
    those files are never written again (a new entry replaces a whole directory), so the link is a
    copy that costs neither the time nor the memory of reading them.
    """
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    for name, split in ds.splits.items():
        whole = split.starts.numel() == 0 or (int(split.starts[0]) == 0 and int(split.starts[-1]) + int(split.lengths[-1]) + 2 == split.tokens.numel())
        if whole and ds.stored is not None and _link_arrays(ds.stored, p, name):
            continue
        tokens, lengths = split.tokens.cpu().numpy(), split.lengths.cpu().numpy()
        if not whole:  # a subset: write its own stream
            tokens, lengths, _ = _encode_stream(split.items, split.vocab, drop_unknown=False)
        np.save(p / f"{name}.tokens.npy", tokens)
        np.save(p / f"{name}.lengths.npy", lengths)
    meta = {"format": ENCODED_FORMAT, "vocab": list(ds.vocab.chars), "block_size": ds.block_size, "source": ds.source,
            "dropped": ds.dropped, "skipped_long": ds.skipped_long, "splits": list(ds.splits)}
    (p / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")


def _link_arrays(src: Path, dst: Path, name: str) -> bool:
    """Hard-link split `name`'s arrays from `src` into `dst`; False (nothing left behind) where that fails."""
    made = []
    try:
        for suffix in ("tokens", "lengths"):
            target = dst / f"{name}.{suffix}.npy"
            target.unlink(missing_ok=True)
            os.link(src / f"{name}.{suffix}.npy", target)
            made.append(target)
    except OSError:  # another file system, or one without hard links: the caller copies
        for target in made:
            target.unlink(missing_ok=True)
        return False
    return True


def load_encoded(path: str | Path, vocab: Vocab | None = None, block_size: int | None = None) -> Dataset:
    """Memory-map the splits `save_encoded` wrote (pages are read as batches touch them).

    Raises:
        MakemoreError: the directory is missing, incomplete or from another format version.
    """
    p = Path(path)
    try:
        meta = json.loads((p / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != ENCODED_FORMAT:
            raise MakemoreError(f"encoded data in {p} has format {meta.get('format')}, this makemore reads {ENCODED_FORMAT}")
        vocab = vocab or Vocab(tuple(meta["vocab"]))
        block_size = block_size or int(meta["block_size"])
        splits = {}
        for name in meta["splits"]:
            # copy-on-write mapping: writable for torch, never written back to the file
            tokens = np.load(p / f"{name}.tokens.npy", mmap_mode="c")
            lengths = np.load(p / f"{name}.lengths.npy", mmap_mode="c")
            splits[name] = _split_from_arrays(tokens, lengths, vocab, block_size)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MakemoreError(f"encoded data in {p} is missing or damaged ({e})") from None
    return Dataset(vocab, block_size, splits, meta["source"], dict(meta["dropped"]), int(meta.get("skipped_long", 0)), stored=p)


def cache_dir() -> Path:
    """Where encoded inputs are cached: $MAKEMORE_CACHE, else $XDG_CACHE_HOME/makemore, else ~/.cache/makemore."""
    if os.environ.get("MAKEMORE_CACHE"):
        return Path(os.environ["MAKEMORE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "makemore"


def _file_hash(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def _cache_key(cfg: DataConfig) -> str:
    """Hash of the input files' contents and of every setting that changes the encoded splits."""
    files = {k: _file_hash(v) if v else None for k, v in (("input", cfg.input), ("val", cfg.val_file), ("test", cfg.test_file))}
    settings = {"format": ENCODED_FORMAT, "files": files, "split": cfg.split if isinstance(cfg.split, str) else list(cfg.split), "max_len": cfg.max_len,
                "seed": cfg.seed, "skip_long": cfg.skip_long, "max_eval_items": cfg.max_eval_items}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]


def _cacheable(cfg: DataConfig) -> bool:
    if cfg.input is None or os.environ.get("MAKEMORE_CACHE") == "off":
        return False
    try:
        return os.path.getsize(cfg.input) >= CACHE_MIN_BYTES
    except OSError:
        return False  # read_lines says why


def load_dataset(cfg: DataConfig, stream: IO[str] | None = None) -> Dataset:
    """Read the input (or the built-in corpus), split it and encode it; big inputs through the cache."""
    if not _cacheable(cfg):
        return _read_dataset(cfg, stream)
    entry = cache_dir() / _cache_key(cfg)
    if (entry / "meta.json").is_file():
        try:
            return replace(load_encoded(entry), source=str(cfg.input))
        except MakemoreError:
            pass  # a damaged entry is rebuilt below
    ds = _read_dataset(cfg, stream)
    tmp: Path | None = None
    try:  # build beside the entry, then rename: a reader never sees half an entry
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
        save_encoded(ds, tmp)
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)
    except OSError as e:  # a full or read-only cache costs the next run its reading time, nothing else
        (stream or sys.stderr).write(f"note: could not cache the encoded input in {entry.parent} ({e.strerror}); the next run reads it again\n")
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        return ds
    try:  # the entry's memory-mapped arrays in place of the ones just built: pages the run never
        # touches stay on disk, and the run directory can link to the files
        return replace(load_encoded(entry), source=ds.source)
    except MakemoreError:
        return ds


def _read_dataset(cfg: DataConfig, stream: IO[str] | None) -> Dataset:
    skip = cfg.skip_long
    if cfg.input is None:
        items, source, skipped = builtin_names(), "builtin:names", 0
        if len(items) > 0 and max(len(s) for s in items) > cfg.max_len:
            items = [s for s in items if len(s) <= cfg.max_len]
    else:
        (items, skipped), source = read_lines(cfg.input, cfg.max_len, skip_long=skip, stream=stream), str(cfg.input)
    if cfg.val_file and cfg.test_file:
        val, s_val = read_lines(cfg.val_file, cfg.max_len, "validation", skip, stream)
        test, s_test = read_lines(cfg.test_file, cfg.max_len, "test", skip, stream)
        return build_splits(items, val, test, source, skipped_long=skipped + s_val + s_test)
    if len(items) < 3:
        raise MakemoreError(
            f"input file {source} has only {len(items)} item(s); makemore needs at least 3 "
            "to make train/val/test splits"
        )
    if cfg.split == "lecture":
        train, val, test = lecture_split(items, cfg.seed)
    elif isinstance(cfg.split, str):
        raise MakemoreError(f"unknown split {cfg.split!r}; give 'lecture' or three fractions such as 0.8,0.1,0.1")
    else:
        train, val, test = split_items(items, cfg.split, cfg.seed, cfg.max_eval_items)
    del items
    # an explicit file replaces the held-out part it stands for; those items go back to training
    if cfg.val_file:
        train, (val, s_val) = train + val, read_lines(cfg.val_file, cfg.max_len, "validation", skip, stream)
        skipped += s_val
    if cfg.test_file:
        train, (test, s_test) = train + test, read_lines(cfg.test_file, cfg.max_len, "test", skip, stream)
        skipped += s_test
    return build_splits(train, val, test, source, skipped_long=skipped)
