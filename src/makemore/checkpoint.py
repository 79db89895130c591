"""Self-describing, atomically written run state, and the layout of a run directory.

A checkpoint holds everything needed to rebuild and continue a run from the file alone:
the configs, the vocabulary, the step, model and optimizer state, and the RNG states.
It is written to a temporary file and renamed, so a crash never leaves half a checkpoint,
and it is read with `torch.load(weights_only=True)`, which never executes code from the
file: a run directory from someone else is safe to sample from.

Run directory:
    config.json     the data, model and train configs (written when the run starts)
    splits.json     the train/val/test items (for exact evaluation and novelty of samples)
    metrics.jsonl   one JSON object per logged step / evaluation
    last.pt         the latest checkpoint (every eval interval and at the end)
    best.pt         the checkpoint with the lowest validation loss so far
    summary.json    written last, only when the run finished: final figures
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import DataConfig, ModelConfig, TrainConfig, from_dict, to_dict
from .data import Vocab
from .errors import MakemoreError

FORMAT = "makemore-checkpoint"
VERSION = 1


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call `write(file_object)` on a temp file beside `path`, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the file gets the mode open() would give
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, lambda f: f.write(json.dumps(obj, indent=2, ensure_ascii=False).encode("utf-8")))


@dataclass
class Checkpoint:
    model_config: ModelConfig
    train_config: TrainConfig
    data_config: DataConfig
    vocab: Vocab
    step: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None = None
    rng_state: dict[str, torch.Tensor] | None = None
    best_val: float | None = None
    elapsed: float = 0.0            # seconds of training so far
    extra: dict[str, Any] | None = None  # JSON-like extras (e.g. "calibrated", "folded")


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": to_dict(ckpt.model_config),
        "train_config": to_dict(ckpt.train_config),
        "data_config": to_dict(ckpt.data_config),
        "vocab": list(ckpt.vocab.chars),
        "step": ckpt.step,
        "best_val": ckpt.best_val,
        "elapsed": ckpt.elapsed,
        "model": {k: v.detach().cpu() for k, v in ckpt.model_state.items()},
        "optimizer": ckpt.optimizer_state,
        "rng": ckpt.rng_state,
        "extra": ckpt.extra or {},
    }
    atomic_write_bytes(Path(path), lambda f: torch.save(obj, f))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint without executing code from it.

    Raises:
        MakemoreError: the file is missing, corrupt, or not a makemore checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise MakemoreError(f"checkpoint {p} does not exist")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle with code in it, random bytes ...
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise MakemoreError(f"checkpoint {p} is corrupt or not a safe makemore checkpoint ({reason})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise MakemoreError(f"{p} is not a makemore checkpoint")
    if obj.get("version") != VERSION:
        raise MakemoreError(f"checkpoint {p} has format version {obj.get('version')}, this makemore reads {VERSION}")
    try:
        return Checkpoint(
            model_config=from_dict(ModelConfig, obj["model_config"]),
            train_config=from_dict(TrainConfig, obj["train_config"]),
            data_config=from_dict(DataConfig, obj["data_config"]),
            vocab=Vocab(tuple(obj["vocab"])),
            step=int(obj["step"]),
            model_state=obj["model"],
            optimizer_state=obj.get("optimizer"),
            rng_state=obj.get("rng"),
            best_val=obj.get("best_val"),
            elapsed=float(obj.get("elapsed", 0.0)),
            extra=obj.get("extra") or {},
        )
    except (KeyError, TypeError, ValueError) as e:
        raise MakemoreError(f"checkpoint {p} is incomplete or damaged ({e})") from None


class RunDir:
    """Paths of a run directory (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    splits = property(lambda self: self.path / "splits.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    last = property(lambda self: self.path / "last.pt")
    best = property(lambda self: self.path / "best.pt")
    summary = property(lambda self: self.path / "summary.json")

    def checkpoint_for_inference(self) -> Path:
        """best.pt when there is one, else last.pt."""
        if not self.path.is_dir():
            raise MakemoreError(f"run directory {self.path} does not exist")
        for p in (self.best, self.last):
            if p.is_file():
                return p
        raise MakemoreError(f"run directory {self.path} holds no checkpoint (best.pt or last.pt)")

    def read_splits(self) -> dict[str, list[str]]:
        if not self.splits.is_file():
            raise MakemoreError(f"run directory {self.path} has no splits.json")
        try:
            d = json.loads(self.splits.read_text(encoding="utf-8"))
            return {k: list(d[k]) for k in ("train", "val", "test")}
        except (ValueError, KeyError, TypeError):
            raise MakemoreError(f"{self.splits} is damaged") from None


def load_model(ckpt: Checkpoint, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    from .models import create_model

    model = create_model(ckpt.model_config)
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as e:
        raise MakemoreError(f"checkpoint weights do not fit model {ckpt.model_config.name!r}: {str(e).splitlines()[0]}") from None
    return model.to(device).eval()
