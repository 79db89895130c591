"""Self-describing, atomically written run state, and the layout of a run directory.

A checkpoint holds everything needed to rebuild and continue a run from the file alone:
the configs, the vocabulary, the step, model and optimizer state, and the RNG states.
It is written to a temporary file and renamed, so a crash never leaves half a checkpoint,
and it is read with `torch.load(weights_only=True)`, which never executes code from the
file: a run directory from someone else is safe to sample from.

Run directory:
    .lock           held (fcntl.flock) by the run writing the directory: a second one is refused
    config.json     the data, model and train configs (written when the run starts)
    data/           the encoded train/val/test items (`makemore.data.save_encoded`), for resuming,
                    exact evaluation and novelty of samples (runs made before it: splits.json)
    metrics.jsonl   one JSON object per logged step / evaluation
    last.pt         the latest checkpoint (every eval interval and at the end)
    best.pt         the checkpoint with the lowest validation loss so far
    summary.json    written last, only when the run finished: final figures
    members/        an ensemble's members (`--members K`): K/ an ordinary run each, K.log its output;
                    best.pt is then their `Ensemble`
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import DataConfig, ModelConfig, TrainConfig, from_dict, to_dict
from .data import Vocab
from .errors import MakemoreError
from .models import create_model
from .models.ensemble import Ensemble

FORMAT = "makemore-checkpoint"
VERSION = 1


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call `write(file_object)` on a temp file beside `path`, fsync, then rename over `path`.

    Raises:
        MakemoreError: the write failed (a full disk, a quota, an I/O error); the temp file is
            removed and the previous `path`, if any, is left as it was.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the file gets the mode open() would give
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as a RuntimeError
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, RuntimeError) and "write" not in str(e):
            raise
        reason = os.strerror(e.errno) if isinstance(e, OSError) and e.errno else str(e).strip().splitlines()[0][:120]
        kept = f"the previous {path.name} is unchanged" if path.exists() else f"no {path.name} was written"
        raise MakemoreError(f"could not write {path} ({reason}); {kept}") from None
    except BaseException:
        if tmp is not None:
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
    members: list[ModelConfig] | None = None  # an ensemble's member models (model_config names "ensemble")


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
    if ckpt.members is not None:
        obj["members"] = [to_dict(c) for c in ckpt.members]
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
            members=[from_dict(ModelConfig, c) for c in obj["members"]] if "members" in obj else None,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise MakemoreError(f"checkpoint {p} is incomplete or damaged ({e})") from None


class RunDir:
    """Paths of a run directory (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    data = property(lambda self: self.path / "data")
    splits = property(lambda self: self.path / "splits.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    last = property(lambda self: self.path / "last.pt")
    best = property(lambda self: self.path / "best.pt")
    summary = property(lambda self: self.path / "summary.json")
    members = property(lambda self: self.path / "members")

    def checkpoint_for_inference(self) -> Path:
        """best.pt when there is one, else last.pt."""
        if not self.path.is_dir():
            raise MakemoreError(f"run directory {self.path} does not exist")
        for p in (self.best, self.last):
            if p.is_file():
                return p
        raise MakemoreError(f"run directory {self.path} holds no checkpoint (best.pt or last.pt)")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's lock (created if needed) while the block writes to it.

        The lock is an `fcntl.flock` on `.lock`: the kernel releases it when the process ends,
        however it ends, so a crashed run never leaves the directory locked.

        Raises:
            MakemoreError: another process holds the lock.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        f = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise MakemoreError(f"cannot lock run directory {self.path} ({os.strerror(e.errno or 0)})") from None
            who = f" (process {holder})" if holder.isdigit() else ""
            raise MakemoreError(f"run directory {self.path} is in use by another makemore run{who}; "
                                "wait for it to finish or choose another --out") from None
        try:
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()

    def read_splits(self) -> dict[str, list[str]]:
        if not self.splits.is_file():
            raise MakemoreError(f"run directory {self.path} has no splits.json")
        try:
            d = json.loads(self.splits.read_text(encoding="utf-8"))
            return {k: list(d[k]) for k in ("train", "val", "test")}
        except (ValueError, KeyError, TypeError):
            raise MakemoreError(f"{self.splits} is damaged") from None


def load_model(ckpt: Checkpoint, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model a checkpoint describes (an `Ensemble` of its members when it has some)
    and load its weights (eval mode)."""
    model = Ensemble([create_model(c) for c in ckpt.members]) if ckpt.members else create_model(ckpt.model_config)
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as e:
        raise MakemoreError(f"checkpoint weights do not fit model {ckpt.model_config.name!r}: {str(e).splitlines()[0]}") from None
    return model.to(device).eval()
