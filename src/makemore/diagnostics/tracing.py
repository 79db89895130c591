"""What the model computes outside its modules: activations called as functions, the loss, and
the unit axis of each tensor, seen through a `TorchFunctionMode` on recording steps only.

Module hooks see `nn.ReLU()`, not `F.relu(x)` inside a `forward`, the style of PyTorch's own
examples. On a recording step the monitor pushes `FunctionTap`, which sees every torch call made
from Python: activation functions are measured like activation modules; loss functions tell how
many classes the loss compares against (so the step-0 loss check works on any model and stays off
for regression); other calls carry the unit axis of their input forward (a convolution's channels
through pooling and additions). On other steps the mode is not on the stack and costs nothing;
after the first recording it stays off for a model that calls no activation as a function, once
the loss's classes are known (the monitor keeps each module's unit axis from that recording).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence
from torch.overrides import TorchFunctionMode

# activation callables -> (kind, role, (centre, half range) of the output for the saturation test)
_TANH = ("Tanh", "saturating", (0.0, 1.0))
_SIGMOID = ("Sigmoid", "saturating", (0.5, 0.5))
_RELU = ("ReLU", "relu", (0.0, 1.0))
_SOFTMAX = ("Softmax", "softmax", (0.5, 0.5))
_SMOOTH = (0.0, 1.0)
ACTIVATIONS: dict[Callable[..., Any], tuple[str, str, tuple[float, float]]] = {
    F.relu: _RELU, torch.relu: _RELU, F.relu_: _RELU, torch.relu_: _RELU, Tensor.relu: _RELU, Tensor.relu_: _RELU,
    F.relu6: ("ReLU6", "relu", (0.0, 1.0)), F.leaky_relu: ("LeakyReLU", "relu", (0.0, 1.0)),
    torch.tanh: _TANH, F.tanh: _TANH, Tensor.tanh: _TANH,
    torch.sigmoid: _SIGMOID, F.sigmoid: _SIGMOID, Tensor.sigmoid: _SIGMOID,
    F.hardtanh: ("Hardtanh", "saturating", (0.0, 1.0)),
    F.gelu: ("GELU", "smooth", _SMOOTH), F.silu: ("SiLU", "smooth", _SMOOTH), F.mish: ("Mish", "smooth", _SMOOTH),
    F.elu: ("ELU", "smooth", _SMOOTH), F.selu: ("SELU", "smooth", _SMOOTH), F.celu: ("CELU", "smooth", _SMOOTH),
    F.softplus: ("Softplus", "smooth", _SMOOTH),
    F.softmax: _SOFTMAX, torch.softmax: _SOFTMAX, Tensor.softmax: _SOFTMAX,
}
# loss callables -> what their input is: class scores (ce, nll), a binary score (bce), or a regression
LOSSES: dict[Callable[..., Any], str] = {
    F.cross_entropy: "ce", F.nll_loss: "nll", F.binary_cross_entropy: "bce", F.binary_cross_entropy_with_logits: "bce",
    F.mse_loss: "regression", F.l1_loss: "regression", F.smooth_l1_loss: "regression", F.huber_loss: "regression",
    F.gaussian_nll_loss: "regression", F.poisson_nll_loss: "regression",
}

# the unit axis of a module's output: channels (1) for convolutions and BatchNorm, features (-1) otherwise
_CHANNEL_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
                  nn.GroupNorm)
_FEATURE_LAST = (nn.Linear, nn.Bilinear, nn.Embedding, nn.LayerNorm, nn.RNNBase, nn.MultiheadAttention)


def module_axis(m: nn.Module) -> int | None:
    """The unit axis of `m`'s output, or None when it follows its input (activations, pooling, ...)."""
    if isinstance(m, _CHANNEL_FIRST):
        return 1
    if isinstance(m, _FEATURE_LAST) or type(m).__name__ in ("Conv1D", "RMSNorm", "LlamaRMSNorm"):  # HF's GPT-2 Conv1D is a linear layer
        return -1
    return None


def default_axis(y: Tensor) -> int:
    """Without a producing op to ask: channels for 4-d/5-d (image-like) tensors, else the last axis."""
    return 1 if y.dim() >= 4 else -1


def primary_tensor(out: Any) -> Tensor | None:
    """The tensor a module's output is about: itself, a PackedSequence's data, the first element of
    a tuple or list, the "logits" (else the first tensor) of a dict or ModelOutput, the first
    tensor field of a dataclass."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, PackedSequence):
        return out.data
    if isinstance(out, Mapping):
        if isinstance(out.get("logits"), Tensor):
            return out["logits"]
        return next((t for v in out.values() if (t := primary_tensor(v)) is not None), None)
    if isinstance(out, (tuple, list)):
        return next((t for v in out if (t := primary_tensor(v)) is not None), None)
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return next((t for f in dataclasses.fields(out) if (t := primary_tensor(getattr(out, f.name))) is not None), None)
    return None


def loss_classes(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """The number of classes a classification loss compares against (None: not a classification)."""
    if kind == "bce":
        return 2
    if kind in ("ce", "nll"):
        x = args[0] if args else kwargs.get("input")
        if isinstance(x, Tensor) and x.dim() >= 1:
            return int(x.shape[1] if x.dim() >= 2 else x.shape[0])
    return None


class FunctionTap(TorchFunctionMode):
    """Calls `on_call(func, args, kwargs, out)` after each torch function called from Python
    (not from inside another one, and not during backward)."""

    def __init__(self, on_call: Callable[[Any, tuple[Any, ...], dict[str, Any], Any], None]) -> None:
        super().__init__()
        self.on_call = on_call
        self.active = False

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if torch._C._current_autograd_node() is None:
            self.on_call(func, args, kwargs, out)
        return out

    def __enter__(self) -> FunctionTap:
        self.active = True
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.active = False
        super().__exit__(*exc)


__all__ = ["ACTIVATIONS", "LOSSES", "FunctionTap", "module_axis", "default_axis", "primary_tensor", "loss_classes"]
