"""The speed layer: everything that makes training faster without changing what it computes.

The models (`makemore.models`) are the reference code, written as the lectures write them. What
makes them fast is applied from outside, by the Trainer, when it builds its training step:

- CPU fast paths for the model families registered in `FAST_PATHS` (training) and
  `EVAL_PATHS` (exact evaluation, `makemore.evaluate`), each equal to the
  reference (tested) and switched off together with `SpeedOptions(fast_paths=False)`: batches
  that stop at their longest item (the Trainer's `RowSampler(narrow=True)`), the
  positions-with-a-target losses (`speed.rows`), the written-out RNN / GRU recurrence
  (`speed.recurrent`) and the lean fused AdamW (`speed.optim`);
- `torch.compile` of the step's module and bf16 autocast (`speed.compile`);
- a CUDA graph of the whole step (`speed.graph`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import MakemoreError
from ..models.common import ModelLoss
from ..models.bigram import Bigram
from ..models.bow import BoW
from ..models.ensemble import Ensemble
from ..models.mlp import MLP
from ..models.rnn import Recurrent
from ..models.transformer import Transformer
from ..models.wavenet import WaveNet
from .recurrent import RecurrentLogits, RecurrentLoss
from .rows import PositionwiseLoss, TransformerLoss


@dataclass(frozen=True)
class SpeedOptions:
    compile: bool = False          # torch.compile the model and its loss
    cuda_graph: str = "auto"       # auto | on | off: capture the whole step in a CUDA graph
    dtype: str = "float32"         # float32 | bf16 (autocast on CUDA)
    tf32: bool = True              # TF32 matrix products for float32 work on CUDA
    fast_paths: bool = True        # the CPU fast paths; off: the models' reference code and PyTorch's AdamW

    def check(self, device: torch.device) -> None:
        """Reject options that cannot apply, with one sentence each."""
        if self.cuda_graph not in ("auto", "on", "off"):
            raise MakemoreError(f"--cuda-graph must be auto, on or off, got {self.cuda_graph!r}")
        if self.dtype not in ("float32", "bf16"):
            raise MakemoreError(f"--dtype must be float32 or bf16, got {self.dtype!r}")
        if self.dtype == "bf16" and device.type != "cuda":
            raise MakemoreError("--dtype bf16 is for CUDA devices; on the CPU train in float32")


# model family -> the module whose forward(x, y) is its training loss on the CPU. Every family
# here is causal: its loss does not depend on the padding after an item, so its batches may stop
# at their longest item.
FAST_PATHS: dict[type[nn.Module], Callable[[nn.Module], nn.Module]] = {
    Bigram: ModelLoss,
    MLP: PositionwiseLoss,
    WaveNet: PositionwiseLoss,
    Recurrent: RecurrentLoss,
    BoW: PositionwiseLoss,
    Transformer: TransformerLoss,
}


class EnsembleLogits(nn.Module):
    """An `Ensemble`'s logits from its members' evaluation paths (a member without one: its own forward)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.paths = [fast_logits(m) or _OwnLogits(m) for m in model.members]  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return Ensemble.average([path(x) for path in self.paths])  # (B, T, V)


class _OwnLogits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


# model family -> the module whose forward(x) is its logits for evaluation on the CPU, without gradients
EVAL_PATHS: dict[type[nn.Module], Callable[[nn.Module], nn.Module]] = {
    Recurrent: RecurrentLogits,
    Ensemble: EnsembleLogits,
}


def fast_logits(model: nn.Module) -> nn.Module | None:
    """The registered CPU evaluation path of `model`'s family (a module sharing its parameters,
    forward(x) -> logits), or None for a family without one."""
    for cls in type(model).__mro__:
        if cls in EVAL_PATHS:
            return EVAL_PATHS[cls](model)
    return None


def fast_loss(model: nn.Module) -> nn.Module | None:
    """The registered CPU training loss of `model`'s family (a module sharing its parameters), or
    None for a family without fast paths."""
    for cls in type(model).__mro__:
        if cls in FAST_PATHS:
            return FAST_PATHS[cls](model)
    return None


__all__ = ["SpeedOptions", "FAST_PATHS", "EVAL_PATHS", "fast_loss", "fast_logits"]
