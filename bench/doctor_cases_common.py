"""What the doctor's evaluation cases share: the case record, small real and synthetic data, a monitor.

The cases themselves live in `doctor_cases_tuning.py` (the thresholds may be set on these) and
`doctor_cases_heldout.py` (never tuned on: they measure how well the doctor judges models it has
not seen). Each case is a function `(steps, seed) -> Records` that builds a model in the style of
some other codebase, trains it with that codebase's usual loop and optimizer, and watches it with a
`Monitor` the way a user would. Nothing is downloaded: text comes from names.txt, images and
signals are generated here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from makemore.diagnostics import Monitor, Records


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[int, int], Records]      # (steps, seed) -> the monitor's records
    expect: tuple[str, ...] = ()            # codes it must show, every one (empty and no expect_any: healthy)
    expect_any: tuple[str, ...] = ()        # it must show at least one of these (one diagnosis, several symptoms)
    steps: int = 200
    note: str = ""

    @property
    def healthy(self) -> bool:
        return not self.expect and not self.expect_any

    @property
    def expected(self) -> set[str]:
        """Every code that is a correct finding for this case; any other warning is a false alarm."""
        return set(self.expect) | set(self.expect_any)


# a too-large learning rate shows as any of these; each one's fix says to lower it
LR_HIGH = ("update.too_large", "loss.diverging", "grad.exploding")


def monitor(model: nn.Module, optimizer: torch.optim.Optimizer | None, steps: int, **kw: object) -> Monitor:
    """The monitor as a user would attach it for a short run: about 40 recordings."""
    return Monitor(model, optimizer, every=max(1, steps // 40), **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# names.txt: characters, the makemore vocabulary ('.' ends a name)


def names_path() -> Path | None:
    """names.txt beside the repository (../shared/data), or $MAKEMORE_NAMES."""
    env = os.environ.get("MAKEMORE_NAMES")
    here = Path(__file__).resolve().parents[1]
    for p in ([Path(env)] if env else []) + [here.parent / "shared" / "data" / "names.txt", Path("/work/shared/data/names.txt")]:
        if p.is_file():
            return p
    return None


@lru_cache(maxsize=1)
def names() -> tuple[str, ...]:
    p = names_path()
    if p is None:
        from makemore.corpora import builtin_names

        return tuple(builtin_names())
    return tuple(w.strip() for w in p.read_text(encoding="utf-8").splitlines() if w.strip())


VOCAB = 27  # '.' and a-z


def encode(word: str) -> list[int]:
    return [ord(c) - 96 if "a" <= c <= "z" else 0 for c in word.lower()]


def context_batches(block: int, batch: int, seed: int) -> Callable[[], tuple[Tensor, Tensor]]:
    """makemore's MLP data: (B, block) previous characters -> (B,) next character."""
    xs, ys = [], []
    for w in names()[:8000]:
        ctx = [0] * block
        for i in encode(w) + [0]:
            xs.append(ctx)
            ys.append(i)
            ctx = ctx[1:] + [i]
    X, Y = torch.tensor(xs), torch.tensor(ys)
    g = torch.Generator().manual_seed(seed)

    def draw() -> tuple[Tensor, Tensor]:
        ix = torch.randint(0, len(X), (batch,), generator=g)
        return X[ix], Y[ix]

    return draw


def stream_batches(block: int, batch: int, seed: int) -> Callable[[], tuple[Tensor, Tensor]]:
    """nanoGPT's data: random windows of the names joined by '.' -> (B, T) inputs, (B, T) targets."""
    data = torch.tensor([i for w in names()[:8000] for i in encode(w) + [0]])
    g = torch.Generator().manual_seed(seed)

    def draw() -> tuple[Tensor, Tensor]:
        ix = torch.randint(0, len(data) - block - 1, (batch,), generator=g)
        x = torch.stack([data[i : i + block] for i in ix.tolist()])
        y = torch.stack([data[i + 1 : i + 1 + block] for i in ix.tolist()])
        return x, y

    return draw


def sequence_batches(batch: int, seed: int, max_len: int = 12) -> Callable[[], tuple[Tensor, Tensor, Tensor]]:
    """Names as variable-length sequences: (B, T) inputs padded with 0, (B, T) next-character
    targets padded with -100, (B,) lengths (the start token '.' counts)."""
    seqs = [encode(w)[: max_len - 1] for w in names()[:8000]]
    g = torch.Generator().manual_seed(seed)

    def draw() -> tuple[Tensor, Tensor, Tensor]:
        ix = torch.randint(0, len(seqs), (batch,), generator=g).tolist()
        lens = torch.tensor([len(seqs[i]) + 1 for i in ix])
        T = int(lens.max())
        x = torch.zeros(batch, T, dtype=torch.long)
        y = torch.full((batch, T), -100, dtype=torch.long)
        for r, i in enumerate(ix):
            s = seqs[i]
            x[r, : len(s) + 1] = torch.tensor([0] + s)
            y[r, : len(s) + 1] = torch.tensor(s + [0])
        return x, y, lens

    return draw


# ---------------------------------------------------------------------------------------------
# synthetic images and signals (procedural; no downloads)

# seven-segment digits on a 16 x 16 canvas: segment -> (row0, row1, col0, col1)
_SEGMENTS = {"a": (2, 4, 4, 12), "b": (3, 8, 10, 12), "c": (8, 13, 10, 12), "d": (12, 14, 4, 12),
             "e": (8, 13, 4, 6), "f": (3, 8, 4, 6), "g": (7, 9, 4, 12)}
_DIGITS = ["abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg", "abcdfg"]


@lru_cache(maxsize=1)
def _digit_templates() -> Tensor:
    t = torch.zeros(10, 16, 16)
    for k, segs in enumerate(_DIGITS):
        for s in segs:
            r0, r1, c0, c1 = _SEGMENTS[s]
            t[k, r0:r1, c0:c1] = 1.0
    return t


def _draw_digits(g: torch.Generator, batch: int, noise: float) -> tuple[Tensor, Tensor, Tensor]:
    """(B, 1, 16, 16) noisy digits normalized like MNIST, (B,) labels, (B, 16, 16) the clean shapes."""
    tmpl = _digit_templates()
    y = torch.randint(0, 10, (batch,), generator=g)
    shifts = torch.randint(-2, 3, (batch, 2), generator=g).tolist()
    clean = torch.stack([torch.roll(tmpl[k], (dy, dx), (0, 1)) for k, (dy, dx) in zip(y.tolist(), shifts)])
    img = clean * (0.6 + 0.4 * torch.rand(batch, 1, 1, generator=g)) + noise * torch.randn(clean.shape, generator=g)
    return ((img - 0.13) / 0.31).unsqueeze(1), y, clean


def digit_batches(batch: int, seed: int, noise: float = 0.35) -> Callable[[], tuple[Tensor, Tensor]]:
    """MNIST-like: (B, 1, 16, 16) seven-segment digits, shifted by up to 2 pixels, random
    brightness, Gaussian noise, normalized like MNIST; (B,) labels 0-9."""
    g = torch.Generator().manual_seed(seed)

    def draw() -> tuple[Tensor, Tensor]:
        x, y, _ = _draw_digits(g, batch, noise)
        return x, y

    return draw


def segmentation_batches(batch: int, seed: int, noise: float = 0.35) -> Callable[[], tuple[Tensor, Tensor]]:
    """The digits of `digit_batches` for semantic segmentation: (B, 1, 16, 16) images, (B, 16, 16)
    per-pixel classes (0 background, 1 + the digit on its segments)."""
    g = torch.Generator().manual_seed(seed)

    def draw() -> tuple[Tensor, Tensor]:
        x, y, clean = _draw_digits(g, batch, noise)
        return x, torch.where(clean > 0, y[:, None, None] + 1, torch.zeros_like(y)[:, None, None])  # (B, 16, 16)

    return draw


def signal_batches(batch: int, seed: int, length: int = 64) -> Callable[[], tuple[Tensor, Tensor]]:
    """(B, 1, L) noisy periodic signals of four shapes (sine, square, sawtooth, triangle) with a
    random frequency and phase; (B,) the shape."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length).float()

    def draw() -> tuple[Tensor, Tensor]:
        y = torch.randint(0, 4, (batch,), generator=g)
        freq = 2 + 4 * torch.rand(batch, 1, generator=g)
        phase = torch.rand(batch, 1, generator=g)
        u = (t * freq / length + phase) % 1.0  # (B, L) position within the period
        shapes = torch.stack([torch.sin(2 * math.pi * u), torch.sign(u - 0.5), 2 * u - 1, 1 - 4 * (u - 0.5).abs()])
        x = shapes[y, torch.arange(batch)] + 0.3 * torch.randn(batch, length, generator=g)
        return x.unsqueeze(1), y

    return draw


def memory_batches(batch: int, seed: int, length: int = 12) -> Callable[[], tuple[Tensor, Tensor]]:
    """The classic test of memory through time: (B, 1, L) noise whose first sample carries the
    class (one of four levels); the label must be carried to the last step. (B,) classes."""
    g = torch.Generator().manual_seed(seed)
    levels = torch.tensor([-1.5, -0.5, 0.5, 1.5])

    def draw() -> tuple[Tensor, Tensor]:
        y = torch.randint(0, 4, (batch,), generator=g)
        x = 0.2 * torch.randn(batch, length, generator=g)
        x[:, 0] = levels[y]
        return x.unsqueeze(1), y

    return draw


def regression_batches(batch: int, seed: int, d_in: int = 8, d_out: int = 3) -> Callable[[], tuple[Tensor, Tensor]]:
    """A smooth nonlinear target: (B, d_in) -> (B, d_out), noise 0.05."""
    g = torch.Generator().manual_seed(seed + 10_000)
    W = torch.randn(d_in, d_out, generator=g) / math.sqrt(d_in)
    g2 = torch.Generator().manual_seed(seed)

    def draw() -> tuple[Tensor, Tensor]:
        x = torch.randn(batch, d_in, generator=g2)
        return x, torch.sin(2 * x @ W) + 0.5 * (x @ W) ** 2 + 0.05 * torch.randn(batch, d_out, generator=g2)

    return draw


def cross_entropy_seq(logits: Tensor, targets: Tensor) -> Tensor:
    """(B, T, V) logits against (B, T) targets, -100 ignored."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)


__all__ = ["Case", "LR_HIGH", "monitor", "names", "VOCAB", "encode", "context_batches", "stream_batches",
           "sequence_batches", "digit_batches", "segmentation_batches", "signal_batches", "memory_batches",
           "regression_batches", "cross_entropy_seq"]
