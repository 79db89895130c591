"""Pieces shared by the model families: the loss, deliberate initialization, normalization."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..data import IGNORE
from ..functional import cross_entropy

# torch.nn.init's name for the gain of each activation (GELU is close to ReLU's sqrt(2))
_INIT_NONLINEARITY = {"tanh": "tanh", "relu": "relu", "gelu": "relu", "linear": "linear"}


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, impl: str = "torch") -> torch.Tensor:
    """Mean cross-entropy of (..., V) logits against (...) targets, ignoring padding (IGNORE)."""
    flat_logits = logits.reshape(-1, logits.size(-1))  # (N, V)
    flat_targets = targets.reshape(-1)  # (N,)
    if impl == "makemore":
        return cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE)
    return F.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE)


class ModelLoss(nn.Module):
    """A model's own training loss as a module, `model(x, y)[1]`: the reference every speed-layer
    loss (`makemore.speed`) equals, and what the Trainer's step calls without them."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, loss = self.model(x, y)
        return loss


def activation(name: str) -> nn.Module:
    try:
        return {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose tanh, relu or gelu") from None


@torch.no_grad()
def init_hidden_(layer: nn.Linear, act: str, gain: float | None = None, bias: float = 0.0) -> None:
    """Kaiming-normal weights with the gain of `act` (5/3 for tanh): std = gain / sqrt(fan_in).

    `gain` overrides the nonlinearity's gain (to reproduce too-small or too-large inits).
    """
    nonlin = _INIT_NONLINEARITY[act]
    nn.init.kaiming_normal_(layer.weight, nonlinearity=nonlin)
    if gain is not None:
        layer.weight.mul_(gain / nn.init.calculate_gain(nonlin))
    if layer.bias is not None:
        nn.init.constant_(layer.bias, bias)


@torch.no_grad()
def init_output_(layer: nn.Linear, scale: float) -> None:
    """Output layer: std = scale / sqrt(fan_in), zero bias.

    A small scale makes the logits near-uniform at step 0, so the initial loss is close to
    ln(vocab_size) instead of a confidently wrong softmax.
    """
    nn.init.kaiming_normal_(layer.weight, nonlinearity="linear")
    layer.weight.mul_(scale)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def make_norm(kind: str, width: int, momentum: float = 0.1) -> nn.Module | None:
    """A normalization over the last dimension of (N, width) features, or None."""
    if kind == "batch":
        return nn.BatchNorm1d(width, momentum=momentum)
    if kind == "layer":
        return nn.LayerNorm(width)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if width % g == 0)
        return nn.GroupNorm(groups, width)
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}; choose batch, layer, group or none")


def hidden_block(n_in: int, n_out: int, cfg: ModelConfig) -> list[nn.Module]:
    """Linear -> norm -> activation (-> dropout) on (N, features), initialized on purpose.

    A linear layer followed by a norm gets no bias unless the config asks for one: the norm
    subtracts the mean and cancels it (the lectures' "bias before BatchNorm" lesson).
    """
    norm = make_norm(cfg.norm, n_out, cfg.bn_momentum)
    bias = cfg.hidden_bias if norm is not None else True
    lin = nn.Linear(n_in, n_out, bias=bias)
    init_hidden_(lin, cfg.activation, cfg.init_gain, cfg.bias_init)
    layers: list[nn.Module] = [lin]
    if norm is not None:
        layers.append(norm)
    layers.append(activation(cfg.activation))
    if cfg.dropout > 0:
        layers.append(nn.Dropout(cfg.dropout))
    return layers


def target_rows(targets: torch.Tensor) -> torch.Tensor:
    """Flat indices (N,) of the positions of (B, T) `targets` that have a target (are not IGNORE)."""
    return (targets.reshape(-1) != IGNORE).nonzero().squeeze(1)  # (N,)


def positionwise_forward(model: nn.Module, idx: torch.Tensor, targets: torch.Tensor | None,
                         on_targets: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`forward` of a model whose prediction at each position is `model.predict(model.features(idx))`:
    `features` (B, T) ids -> (B, T, ...) is the only part that looks across positions, and `predict`
    maps (N, ...) of them to (N, V) logits, position by position.

    `on_targets`: given targets, `predict` sees only the positions that have one, as the lectures'
    batches hold only real (context, next character) examples; a BatchNorm in `predict` then takes
    its statistics over real characters, not padding. The logits at padding positions are 0 then.
    """
    B, T = idx.shape
    h = model.features(idx)  # (B, T, ...)
    h = h.reshape(B * T, *h.shape[2:])  # (B*T, ...)
    loss_impl = model.config.loss
    if targets is not None and on_targets:
        rows = target_rows(targets)
        out = model.predict(h[rows])  # (N, V)
        logits = out.new_zeros(B * T, out.size(-1)).index_copy(0, rows, out).view(B, T, -1)  # (B, T, V)
        return logits, lm_loss(out, targets.reshape(-1)[rows], loss_impl)
    logits = model.predict(h).view(B, T, -1)  # (B, T, V)
    return logits, (lm_loss(logits, targets, loss_impl) if targets is not None else None)


def context_windows(idx: torch.Tensor, context: int, pad: int = 0) -> torch.Tensor:
    """(B, T) ids -> (B, T, context) ids: the `context` characters ending at each position.

    Positions before the start read the boundary token, as in the lectures' '...' context.
    Built with unfold, a view of the padded ids.
    """
    padded = F.pad(idx, (context - 1, 0), value=pad)  # (B, T + context - 1)
    return padded.unfold(1, context, 1)  # (B, T, context)
