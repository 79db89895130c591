"""BatchNorm after training: exact calibration, folding for inference, and batch coupling.

Follows Ioffe & Szegedy 2015, "Batch Normalization", and Karpathy's makemore part 3
("Activations & Gradients, BatchNorm", 2022), which calibrates the statistics after training
and notes that BatchNorm can be folded into the preceding linear layer at inference.

* `calibrate`: replace the running mean and variance (an exponential average of recent
  batches) by the exact statistics over the whole training split. Layer by layer, because a
  later BatchNorm's input depends on the (new) statistics of the earlier ones in eval mode: after
  calibration each BatchNorm's running statistics are exactly the mean and unbiased variance
  of what the eval-mode network feeds it on the training split. The rows are the ones the
  BatchNorm normalized in training: given the targets, the MLP family runs its layers on the
  positions that have one (`models.common.target_rows`), so padding does not count.
* `fold_batchnorm`: in eval mode BatchNorm is an affine map per feature, so
  `bn(W x + b) = (s * W) x + s * (b - mean) + beta` with `s = gamma / sqrt(var + eps)`; the
  Linear takes the new weight and bias and the BatchNorm becomes `nn.Identity`.
* `coupling`: how much one example's output moves when another example of the batch changes
  (non-zero for BatchNorm in train mode; zero in eval mode and for LayerNorm / GroupNorm).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from .checkpoint import save_checkpoint
from .evaluate import evaluate_split

_BN = (nn.BatchNorm1d,)


def batchnorm_layers(model: nn.Module) -> list[tuple[str, nn.BatchNorm1d]]:
    """The BatchNorm1d modules that keep running statistics, by qualified name."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _BN) and m.track_running_stats]


def has_batchnorm(model: nn.Module) -> bool:
    return bool(batchnorm_layers(model))


# ---------------------------------------------------------------------------------------------
# calibration


class _Captured(Exception):
    """Raised by the capture hook to stop a forward pass once the wanted input is seen."""


def _execution_order(model: nn.Module, x: torch.Tensor) -> list[nn.BatchNorm1d]:
    """BatchNorm layers in the order a forward pass reaches them."""
    order: list[nn.BatchNorm1d] = []
    handles = [m.register_forward_pre_hook(lambda m, inp: order.append(m)) for _, m in batchnorm_layers(model)]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return list(dict.fromkeys(order))  # a module used twice counts once, at its first use


@torch.no_grad()
def calibrate(model: nn.Module, x: torch.Tensor, batch_size: int = 1024, y: torch.Tensor | None = None) -> int:
    """Set every BatchNorm's running statistics to the exact ones over inputs `x` (e.g. (n, T) ids).

    `y`: the targets of `x`, passed to the model as in training (models that select the
    positions with a target for BatchNorm see the same rows here).

    One pass over `x` per BatchNorm layer, each stopped as soon as that layer's input is
    seen; sums in float64 (Chan et al.'s pairwise merge of batch means and squared deviations).
    Returns the number of layers calibrated. The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()  # dropout off, earlier BatchNorms use their (already calibrated) statistics
    try:
        layers = _execution_order(model, x[:1])
        for bn in layers:
            count, mean, m2 = 0, None, None

            def capture(module: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
                nonlocal count, mean, m2
                h = inp[0].double()
                h = h.transpose(0, 1).reshape(h.size(1), -1)  # (C, rows): every dim but the features
                n_b = h.size(1)
                mean_b = h.mean(1)
                m2_b = ((h - mean_b.unsqueeze(1)) ** 2).sum(1)
                if mean is None:
                    count, mean, m2 = n_b, mean_b, m2_b
                else:
                    delta, total = mean_b - mean, count + n_b
                    mean = mean + delta * (n_b / total)
                    m2 = m2 + m2_b + delta**2 * (count * n_b / total)
                    count = total
                raise _Captured

            handle = bn.register_forward_pre_hook(capture)
            try:
                for i in range(0, x.size(0), batch_size):
                    try:
                        model(x[i : i + batch_size], None if y is None else y[i : i + batch_size])
                    except _Captured:
                        pass
            finally:
                handle.remove()
            if mean is None or count < 2:
                continue
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(m2 / (count - 1))  # unbiased, as nn.BatchNorm1d stores it
        return len(layers)
    finally:
        model.train(was_training)


def calibrate_loaded(path: Path, ckpt: Any, model: nn.Module, dataset: Any, stream: IO[str] | None = None) -> dict[str, Any] | None:
    """Calibrate a run already loaded (`run.load_run`): `model` is calibrated in place and
    saved back to `path`. None when the model has no BatchNorm."""
    if not has_batchnorm(model):
        return None
    val = dataset.splits["val"]

    def val_loss() -> float | None:
        return evaluate_split(model, val)["nll"] if val.items else None

    before = val_loss()
    n_layers = calibrate(model, dataset.splits["train"].x, y=dataset.splits["train"].y)
    after = val_loss()
    report = {"checkpoint": path.name, "layers": n_layers, "train_positions": dataset.splits["train"].n_chars,
              "val_loss_before": before, "val_loss_after": after}
    ckpt.model_state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt.extra = {**(ckpt.extra or {}), "calibration": report}
    save_checkpoint(path, ckpt)
    if stream is not None:
        stream.write(format_calibration(report) + "\n")
    return report


def format_calibration(report: dict[str, Any]) -> str:
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    change = ""
    if report["val_loss_before"] is not None and report["val_loss_after"] is not None:
        change = f" ({report['val_loss_after'] - report['val_loss_before']:+.4f})"
    return (f"BatchNorm calibrated over the training split ({report['layers']} layer(s), {report['checkpoint']}): "
            f"val loss {f(report['val_loss_before'])} -> {f(report['val_loss_after'])}{change}")


# ---------------------------------------------------------------------------------------------
# folding


def _linear_batchnorm_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[nn.Linear, str]]:
    """(Linear, qualified name of the BatchNorm it feeds directly) for every such pair, found by
    running `example` and matching each BatchNorm's input tensor to a Linear's output tensor."""
    produced: dict[int, tuple[torch.Tensor, nn.Linear]] = {}
    pairs: list[tuple[nn.Linear, str]] = []
    names = {m: n for n, m in batchnorm_layers(model)}

    def on_linear(m: nn.Module, inp: Any, out: torch.Tensor) -> None:
        produced[id(out)] = (out, m)  # keep the tensor alive so its id cannot be reused

    def on_bn(m: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
        hit = produced.get(id(inp[0]))
        if hit is not None and hit[0] is inp[0] and inp[0].dim() == 2 and hit[1].out_features == m.num_features:
            pairs.append((hit[1], names[m]))

    handles = [m.register_forward_hook(on_linear) for m in model.modules() if isinstance(m, nn.Linear)]
    handles += [m.register_forward_pre_hook(on_bn) for m in names]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return list({name: (lin, name) for lin, name in pairs}.values())


@torch.no_grad()
def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> int:
    """Fold every BatchNorm that directly follows a Linear into it, in place (eval mode only).

    `example` is any valid input (e.g. a (1, T) row of ids); it is run once to see which
    Linear feeds which BatchNorm. Each folded BatchNorm becomes `nn.Identity`; a Linear
    without a bias gets one. Returns the number of layers folded.
    """
    model.eval()
    pairs = _linear_batchnorm_pairs(model, example)
    for lin, name in pairs:
        bn = model.get_submodule(name)
        # in float64, then back: s = gamma / sqrt(var + eps); W' = s W; b' = s (b - mean) + beta
        s = (bn.running_var.double() + bn.eps).rsqrt()
        if bn.affine:
            s = s * bn.weight.double()
        b = lin.bias.double() if lin.bias is not None else torch.zeros_like(s)
        new_b = s * (b - bn.running_mean.double())
        if bn.affine:
            new_b = new_b + bn.bias.double()
        lin.weight.copy_((lin.weight.double() * s.unsqueeze(1)).to(lin.weight.dtype))
        if lin.bias is None:
            lin.bias = nn.Parameter(torch.empty(lin.out_features, dtype=lin.weight.dtype, device=lin.weight.device))
        lin.bias.copy_(new_b.to(lin.bias.dtype))
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, nn.Identity())
    return len(pairs)


def folded_copy(model: nn.Module, example: torch.Tensor, atol: float = 1e-4) -> tuple[nn.Module, int]:
    """An eval-mode copy of `model` with its BatchNorms folded, checked against the original.

    Returns (copy, layers folded); (model itself, 0) when nothing can be folded. Raises
    RuntimeError if the folded copy's output on `example` differs from the original's
    (a Linear whose output is also used elsewhere would make folding wrong).
    """
    model.eval()
    if not has_batchnorm(model):
        return model, 0
    folded = copy.deepcopy(model)
    n = fold_batchnorm(folded, example)
    if n == 0:
        return model, 0
    with torch.no_grad():
        a, b = _first(model(example)), _first(folded(example))
    if not torch.allclose(a, b, rtol=1e-4, atol=atol):
        raise RuntimeError(f"folding BatchNorm changed the output by {float((a - b).abs().max()):.3g}")
    return folded, n


def fold_for_inference(model: nn.Module, block_size: int, stream: IO[str] | None = None) -> nn.Module:
    """What `eval` and `sample` run: the folded copy of a BatchNorm model (saying so on `stream`)."""
    if not has_batchnorm(model):
        return model
    device = next(iter(model.buffers())).device
    try:
        folded, n = folded_copy(model, torch.zeros(1, block_size, dtype=torch.long, device=device))
    except RuntimeError as e:  # a pattern folding cannot handle: run the model as it is
        if stream is not None:
            stream.write(f"note: BatchNorm not folded ({e})\n")
        return model
    if n and stream is not None:
        stream.write(f"using BatchNorm folded into the preceding linear layers ({n} layer(s); --no-fold to keep it)\n")
    return folded


# ---------------------------------------------------------------------------------------------
# coupling between the examples of a batch


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def coupling(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, x_changed: torch.Tensor, i: int = 0) -> float:
    """Largest change of example `i`'s output when other examples of the batch change.

    `x_changed` must equal `x` in row `i`. `fn` is a module or function of the batch (a
    model's (logits, loss) output counts by its logits). Zero means no coupling.
    """
    if not torch.equal(x[i], x_changed[i]):
        raise ValueError("x_changed must leave example i unchanged")
    a, b = _first(fn(x)), _first(fn(x_changed))
    return float((a[i] - b[i]).abs().max())


__all__ = [
    "batchnorm_layers", "has_batchnorm", "calibrate", "calibrate_loaded", "format_calibration",
    "fold_batchnorm", "folded_copy", "fold_for_inference", "coupling",
]
