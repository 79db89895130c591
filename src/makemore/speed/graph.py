"""A training step captured once in a CUDA graph and replayed.

PyTorch's "whole network capture" recipe (CUDA-graph notes): the step (gather the batch,
forward, backward, gradient clipping, the optimizer update) is recorded once and then replayed
as one launch. It needs static shapes, a capturable optimizer whose learning rate is a device
tensor, and batch indices drawn on the device into a fixed tensor before each replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class GraphedStep:
    """`step` captured in a CUDA graph; calling this replays it and returns its loss.

    Args:
        step: the Trainer's training step, reading its batch from fixed device tensors.
        model, optimizer: restored after the warm-up steps, which must not count as training.

    The returned loss is a device tensor that the next replay overwrites.
    """

    def __init__(self, step: Callable[[], torch.Tensor], model: nn.Module, optimizer: torch.optim.Optimizer,
                 device: torch.device, warmup: int = 3) -> None:
        self.model, self.optimizer, self.device = model, optimizer, device
        saved = self._snapshot()
        try:
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):  # warm-up: lazy state, cuDNN/compile choices, allocator
                for _ in range(warmup):
                    step()
            torch.cuda.current_stream(device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.loss = step()
        finally:
            self._restore(saved)

    def __call__(self) -> torch.Tensor:
        self.graph.replay()
        return self.loss

    def _snapshot(self) -> dict[str, Any]:
        return {
            "model": [v.detach().clone() for v in self.model.state_dict().values()],
            "opt": {id(v): v.detach().clone() for st in self.optimizer.state.values() for v in st.values() if torch.is_tensor(v)},
            "rng": torch.cuda.get_rng_state(self.device),
        }

    @torch.no_grad()
    def _restore(self, saved: dict[str, Any]) -> None:
        # in place: the captured graph reads and writes these very tensors
        for v, old in zip(self.model.state_dict().values(), saved["model"]):
            v.copy_(old)
        for st in self.optimizer.state.values():
            for v in st.values():
                if torch.is_tensor(v):
                    old = saved["opt"].get(id(v))
                    v.copy_(old) if old is not None else v.zero_()  # new state starts at zero (AdamW)
        torch.cuda.set_rng_state(saved["rng"], self.device)
