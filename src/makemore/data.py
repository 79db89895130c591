"""Reading and validating files of lines, the character vocabulary, and encoded splits.

Every item becomes one row of a (n, T) tensor pair, built once:

    x = [BOUNDARY, c1, c2, ..., cn, pad ...]     model input
    y = [c1, c2, ..., cn, BOUNDARY, IGNORE ...]  targets; IGNORE positions carry no loss

T (the block size) is the longest item plus one. The boundary token has id 0 and is never a
real character, so '.' (or any other character) can appear in the data.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .config import DataConfig
from .errors import MakemoreError

BOUNDARY = 0     # id of the token that starts and ends every item
IGNORE = -1      # target id of padding positions (cross_entropy's ignore_index)


def read_items(path: str | Path, max_len: int = 64, what: str = "input") -> list[str]:
    """Read UTF-8 items, one per line: strip whitespace, drop blank lines, accept LF and CRLF.

    Raises:
        MakemoreError: the path is missing, a directory, not UTF-8 text, holds no items, or
            has a line longer than `max_len` characters.
    """
    p = Path(path)
    if not p.exists():
        raise MakemoreError(f"{what} file {p} does not exist")
    if p.is_dir():
        raise MakemoreError(f"{what} file {p} is a directory, expected a text file with one item per line")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise MakemoreError(f"cannot read {what} file {p}: {e.strerror}") from None
    if b"\x00" in raw:
        raise MakemoreError(f"{what} file {p} looks binary (it holds NUL bytes), expected UTF-8 text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise MakemoreError(f"{what} file {p} is not UTF-8 text (invalid byte at offset {e.start})") from None
    items = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        item = line.strip()
        if not item:
            continue
        if len(item) > max_len:
            raise MakemoreError(
                f"{what} file {p} line {lineno} is {len(item)} characters long, more than the maximum "
                f"{max_len} (raise it with --max-len)"
            )
        items.append(item)
    if not items:
        raise MakemoreError(f"{what} file {p} holds no items (it is empty or has only blank lines)")
    return items


@dataclass(frozen=True)
class Vocab:
    """Characters seen in the training items; id 0 is the boundary token, ids 1.. the characters."""

    chars: tuple[str, ...]

    @classmethod
    def from_items(cls, items: Iterable[str]) -> Vocab:
        return cls(tuple(sorted(set("".join(items)))))

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "_stoi", {c: i + 1 for i, c in enumerate(self.chars)})

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


@dataclass
class Split:
    """Items of one split and their encoded (n, T) input and target tensors."""

    items: list[str]
    x: torch.Tensor  # (n, T) int64
    y: torch.Tensor  # (n, T) int64, IGNORE at padding

    def to(self, device: torch.device | str) -> Split:
        return Split(self.items, self.x.to(device), self.y.to(device))

    @property
    def n_chars(self) -> int:
        """Number of predicted characters, the closing boundary of each item included."""
        return sum(len(s) + 1 for s in self.items)


def encode_items(items: Sequence[str], vocab: Vocab, block_size: int) -> Split:
    """Encode items into padded (n, block_size) tensors; built once, outside the training loop."""
    n = len(items)
    x = torch.full((n, block_size), BOUNDARY, dtype=torch.long)
    y = torch.full((n, block_size), IGNORE, dtype=torch.long)
    for i, item in enumerate(items):
        ids = vocab.encode(item)
        if len(ids) + 1 > block_size:
            raise MakemoreError(f"item {item!r} is longer than the model's {block_size - 1} characters")
        x[i, 1 : len(ids) + 1] = torch.tensor(ids, dtype=torch.long)
        y[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        y[i, len(ids)] = BOUNDARY
    return Split(list(items), x, y)


@dataclass
class Dataset:
    """The vocabulary, the block size and the encoded train/val/test splits."""

    vocab: Vocab
    block_size: int
    splits: dict[str, Split]
    source: str
    dropped: dict[str, int]  # per split: items dropped for characters outside the vocabulary

    def to(self, device: torch.device | str) -> Dataset:
        return replace(self, splits={k: s.to(device) for k, s in self.splits.items()})


def split_items(items: Sequence[str], fractions: tuple[float, float, float], seed: int) -> tuple[list[str], list[str], list[str]]:
    """Shuffle with `seed` and cut into train/val/test by `fractions` (val and test get at least 1)."""
    if len(items) < 3:
        raise MakemoreError(f"need at least 3 items to make train/val/test splits, got {len(items)}")
    order = list(items)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_val = max(1, round(fractions[1] * n))
    n_test = max(1, round(fractions[2] * n))
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


def build_splits(train: list[str], val: list[str], test: list[str], source: str, block_size: int | None = None, vocab: Vocab | None = None) -> Dataset:
    """Build the vocabulary from `train` (unless given) and encode all three splits.

    Val/test items with characters outside the vocabulary are dropped and counted in
    `Dataset.dropped`; the model could not score them.
    """
    vocab = vocab or Vocab.from_items(train)
    kept: dict[str, list[str]] = {"train": list(train)}
    dropped = {}
    for name, items in (("val", val), ("test", test)):
        ok = [s for s in items if not vocab.unknown([s])]
        dropped[name] = len(items) - len(ok)
        kept[name] = ok
    if block_size is None:
        block_size = max(len(s) for split in kept.values() for s in split) + 1
    splits = {name: encode_items(items, vocab, block_size) for name, items in kept.items()}
    return Dataset(vocab, block_size, splits, source, dropped)


def load_dataset(cfg: DataConfig) -> Dataset:
    """Read the input (or the built-in corpus), split it and encode it."""
    if cfg.input is None:
        from .corpora import builtin_names

        items, source = builtin_names(), "builtin:names"
        if len(items) > 0 and max(len(s) for s in items) > cfg.max_len:
            items = [s for s in items if len(s) <= cfg.max_len]
    else:
        items, source = read_items(cfg.input, cfg.max_len), str(cfg.input)
    if cfg.val_file and cfg.test_file:
        train = items
        val = read_items(cfg.val_file, cfg.max_len, "validation")
        test = read_items(cfg.test_file, cfg.max_len, "test")
        return build_splits(train, val, test, source)
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
        train, val, test = split_items(items, cfg.split, cfg.seed)
    # an explicit file replaces the held-out part it stands for; those items go back to training
    if cfg.val_file:
        train, val = train + val, read_items(cfg.val_file, cfg.max_len, "validation")
    if cfg.test_file:
        train, test = train + test, read_items(cfg.test_file, cfg.max_len, "test")
    return build_splits(train, val, test, source)
