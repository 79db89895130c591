"""Pieces shared by the model families: the loss, deliberate initialization, normalization."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..data import IGNORE

# torch.nn.init's name for the gain of each activation (GELU is close to ReLU's sqrt(2))
_INIT_NONLINEARITY = {"tanh": "tanh", "relu": "relu", "gelu": "relu", "linear": "linear"}


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, impl: str = "torch") -> torch.Tensor:
    """Mean cross-entropy of (B, T, V) logits against (B, T) targets, ignoring padding."""
    flat_logits = logits.reshape(-1, logits.size(-1))  # (B*T, V)
    flat_targets = targets.reshape(-1)  # (B*T,)
    if impl == "makemore":
        from ..functional import cross_entropy

        return cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE)
    return F.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE)


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


def target_rows(needed: bool, targets: torch.Tensor | None) -> torch.Tensor | None:
    """Flat indices of the (B*T) positions that have a target, or None to compute every position.

    A batch of whole items padded to T positions is mostly padding on short items (about half on
    names). Given targets, a position-wise model runs its layers on these rows only and leaves
    the logits at padding positions 0 (the loss never reads them) when `needed`: with BatchNorm,
    whose batch statistics should describe real characters, not padding, and on the CPU
    (`rows_only_here`), where it saves the work on padding. Elsewhere every row is computed: no
    data-dependent shapes, so the step can be captured in a CUDA graph and never waits for the GPU.
    """
    if targets is None or not needed:
        return None
    return (targets.reshape(-1) != IGNORE).nonzero().squeeze(1)  # (N_valid,)


def rows_only_here(idx: torch.Tensor) -> bool:
    """Whether computing the rows with a target only pays on `idx`'s device: on the CPU, eagerly
    (the row count is known at once there; under torch.compile it would split the graph)."""
    return idx.device.type == "cpu" and not torch.compiler.is_compiling()


def scatter_rows(values: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """(N_valid, V) values placed at `rows` of an (n_rows, V) zero tensor (differentiable)."""
    return values.new_zeros(n_rows, values.size(-1)).index_copy(0, rows, values)


def output_and_loss(out: torch.Tensor, rows: torch.Tensor | None, targets: torch.Tensor | None, B: int, T: int,
                    impl: str = "torch") -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, T, V) logits and the loss from the output layer's values `out`: (B, T, V) or (B*T, V),
    or with `rows` (N, V) at those flat positions. With rows the loss is taken on them directly
    (the same mean as over the padded batch with its padding ignored) and the logits returned
    have 0 at padding; the loss does not depend on them, so backward skips the scatter."""
    if rows is None:
        logits = out.view(B, T, -1)
        return logits, (lm_loss(logits, targets, impl) if targets is not None else None)
    assert targets is not None
    return scatter_rows(out, rows, B * T).view(B, T, -1), lm_loss(out, targets.reshape(-1)[rows], impl)


def context_windows(idx: torch.Tensor, context: int, pad: int = 0) -> torch.Tensor:
    """(B, T) ids -> (B, T, context) ids: the `context` characters ending at each position.

    Positions before the start read the boundary token, as in the lectures' '...' context.
    Built with unfold, a view of the padded ids.
    """
    padded = F.pad(idx, (context - 1, 0), value=pad)  # (B, T + context - 1)
    return padded.unfold(1, context, 1)  # (B, T, context)
