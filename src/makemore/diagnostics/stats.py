"""The statistics the monitor takes, as pure tensor functions that stay on the tensor's device.

Each function returns 0-d or 1-d tensors on the input's device and never reads a value back
to the host: the monitor collects them all and copies them over in one transfer per recording
step. They follow the quantities of Karpathy's "Building makemore Part 3: Activations &
Gradients, BatchNorm": output mean/std and histograms, the saturated fraction of tanh
(|t| > 0.97), dead units, gradient histograms, grad:data and update:data ratios.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

# |tanh(x)| > 0.97 means |x| > 2.09, where tanh's slope 1 - t^2 is below 0.06: the unit passes
# less than 6% of the gradient it receives (the lecture's "saturated" cut).
SATURATION = 0.97


# Histograms of larger tensors count an evenly strided sample of about this many elements: the
# shape of a distribution needs thousands of points, not millions, and this keeps the cost flat.
HIST_SAMPLE = 16384


def finite_summary(x: Tensor, bins: int, batch: Histograms | None = None) -> dict[str, Tensor]:
    """Mean, unbiased std, a non-finite flag and an equal-width histogram of the elements of x.

    Returns tensors: mean, std, nonfinite, lo, hi (0-d) and counts (bins,). The histogram spans
    [lo, hi], the minimum and maximum (the last bin includes hi), and counts every element, or
    an evenly strided sample of at least HIST_SAMPLE of them for larger tensors. `nonfinite` is 1.0 when some
    element is NaN or Inf (read off the sum, which any of them poisons: no extra pass over x);
    then the other statistics are not meaningful.

    With `batch`, the histogram is left to it (counted with the others of the step in one pass)
    and so is the flag (`nonfinite(mean)` on the host): the dict holds mean, std, lo and hi only.
    """
    x = x.detach().reshape(-1).float()
    n = x.numel()
    mean = x.mean() if n else x.new_zeros(())
    centered = x - mean
    std = (torch.dot(centered, centered) / max(n - 1, 1)).sqrt()  # two passes: exact when mean >> std
    lo, hi, sample = _range_sample(x, mean)
    if batch is not None:
        batch.add(sample, lo, hi)
        return {"mean": mean, "std": std, "lo": lo, "hi": hi}
    return {"mean": mean, "std": std, "nonfinite": (~torch.isfinite(mean)).float(), "lo": lo, "hi": hi,
            "counts": histogram(sample, lo, hi, bins)}


def _range_sample(x: Tensor, empty: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(min, max, the histogram's sample) of a flat x; an empty x spans [empty, empty]."""
    n = x.numel()
    lo, hi = torch.aminmax(x) if n else (empty, empty)
    sample = x[:: n // HIST_SAMPLE] if n >= 2 * HIST_SAMPLE else x
    return lo, hi, sample


def nonfinite(mean: float) -> float:
    """The non-finite flag of `finite_summary`, from its mean read on the host (the same value)."""
    return 0.0 if math.isfinite(mean) else 1.0


def histogram(x: Tensor, lo: Tensor, hi: Tensor, bins: int) -> Tensor:
    """Counts of x (1-d) in `bins` equal-width bins over [lo, hi] (device tensors, no host sync).

    Built with scatter_add_ rather than torch.histc/bincount, which need the range or the output
    size on the host; non-finite values land in an end bin (NaN's index is clamped).
    """
    width = (hi - lo).clamp_min(1e-30) / bins
    # x >= lo, so (x - lo) / width >= 0 and truncation is the floor
    idx = torch.nan_to_num((x - lo) / width).clamp_(0, bins - 1).long()
    return torch.zeros(bins, device=x.device).scatter_add_(0, idx, torch.ones((), device=x.device).expand_as(x))


class Histograms:
    """The histograms of a recording step counted together: `add` each tensor's sample and range
    as it is measured, then `counts` gives the same counts as `histogram` on each, from one pass
    over all the samples (one bincount) rather than eight small ops per tensor."""

    def __init__(self, bins: int) -> None:
        self.bins = bins
        self.samples: list[Tensor] = []
        self.lo: list[Tensor] = []
        self.hi: list[Tensor] = []
        self._segments: tuple[Any, Tensor | None, Tensor | None] = (None, None, None)

    def __len__(self) -> int:
        return len(self.samples)

    def add(self, sample: Tensor, lo: Tensor, hi: Tensor) -> None:
        # a copy: the sample may be a view of an output that the model changes in place later
        self.samples.append(sample.clone())
        self.lo.append(lo)
        self.hi.append(hi)

    def counts(self) -> Tensor:
        """(tensors added, bins) float counts, in the order added; then the batch is empty."""
        bins, k = self.bins, len(self.samples)
        sizes = [s.numel() for s in self.samples]
        try:
            x, lo, hi = torch.cat(self.samples), torch.stack(self.lo), torch.stack(self.hi)  # (N,), (k,), (k,)
        except RuntimeError:  # a model spread over devices
            dev = self.lo[0].device
            x = torch.cat([s.to(dev) for s in self.samples])
            lo, hi = torch.stack([t.to(dev) for t in self.lo]), torch.stack([t.to(dev) for t in self.hi])
        width = (hi - lo).clamp_min(1e-30) / bins  # elementwise: the same values as histogram's
        key = (x.device, tuple(sizes))
        if self._segments[0] != key:  # which tensor each element is from (the same for the same sizes)
            seg = torch.repeat_interleave(torch.arange(k, device=x.device), torch.tensor(sizes, device=x.device),
                                          output_size=x.numel())
            self._segments = (key, seg, (seg * bins).int())
        _, seg, first_bin = self._segments
        assert seg is not None and first_bin is not None
        # each element against its own tensor's lo and width (x is the concatenation's own copy: in place);
        # int32 bin numbers count faster than int64
        x.sub_(lo.index_select(0, seg)).div_(width.index_select(0, seg))
        idx = x.nan_to_num_().clamp_(0, bins - 1).int()  # truncated: the floor, as in `histogram`
        counts = torch.bincount(idx.add_(first_bin), minlength=k * bins).reshape(k, bins).float()
        self.samples, self.lo, self.hi = [], [], []
        return counts


# A smooth activation (GELU, SiLU, ELU, Mish) is inactive where its local slope |f'(x)| is below
# this: the same cut as tanh's |t| > 0.97, where the slope 1 - t^2 is below 0.06.
SLOPE_MIN = 0.06

NONLINEAR_ROLES = ("saturating", "relu", "smooth")


def unit_view(y: Tensor, axis: int | None = None) -> Tensor:
    """(rows, units): the unit axis moved last and every other axis flattened into rows. `axis`
    comes from the op that produced y (channels, 1, for convolutions; features, -1, for linear
    and recurrent layers); without it, channels for 4-d/5-d tensors, else the last axis."""
    if y.dim() == 0:
        return y.reshape(1, 1)
    if axis is None:
        axis = 1 if y.dim() >= 4 else -1
    if axis % y.dim() != y.dim() - 1:
        y = y.movedim(axis, -1)
    return y.reshape(-1, y.shape[-1])


def inactive_mask(y2d: Tensor, role: str, scale: tuple[float, float] = (0.0, 1.0), slope2d: Tensor | None = None) -> Tensor:
    """Boolean (rows, units): where a unit passes (almost) no gradient.

    role "saturating": in the flat tails, |(y - centre) / half_range| > SATURATION, where `scale`
    = (centre, half_range) maps the nonlinearity's range onto [-1, 1] (tanh: (0, 1); sigmoid:
    (0.5, 0.5)). role "relu": y <= 0 (ReLU's zero region). role "smooth": the local slope
    `slope2d` = f'(x) is below SLOPE_MIN in size (GELU, SiLU, ... pass gradient below zero too).
    """
    if role == "saturating":
        centre, half = scale
        return (y2d.abs() if scale == (0.0, 1.0) else ((y2d - centre) / half).abs()) > SATURATION
    if role == "smooth":
        assert slope2d is not None, "a smooth activation is judged by its local slope"
        return slope2d.abs() < SLOPE_MIN
    return y2d <= 0


def activation_summary(
    y: Tensor, role: str, bins: int, scale: tuple[float, float] = (0.0, 1.0), map_rows: int = 0, map_units: int = 0,
    axis: int | None = None, slope: Tensor | None = None, batch: Histograms | None = None,
) -> dict[str, Tensor]:
    """`finite_summary` plus, for nonlinearities, the inactive fraction, per-unit active counts
    (rows where the unit passed gradient) and a (map_rows, map_units) 0/1 map of inactive cells.
    `axis` is the unit axis (see `unit_view`); `slope` is f'(x) elementwise, for role "smooth";
    `batch` as in `finite_summary`."""
    y = y.detach()
    out = finite_summary(y, bins, batch)
    if role in NONLINEAR_ROLES:
        y2d = unit_view(y, axis)  # NaN compares False: counted as active
        slope2d = unit_view(slope.detach(), axis) if slope is not None else None
        dead = inactive_mask(y2d, role, scale, slope2d)  # (rows, units)
        out["inactive"] = dead.float().mean()
        out["unit_active"] = (~dead).sum(0).float()  # (units,)
        if map_rows and map_units:
            out["map"] = dead[:map_rows, :map_units].float()
    return out


def param_summary(p: Tensor, bins: int, batch: Histograms | None = None) -> dict[str, Tensor]:
    """Raw gradient of a parameter: mean, std, rms, non-finite fraction; a histogram for matrices;
    and the data std the grad:data ratio divides by. With `batch`, as in `finite_summary`: the
    histogram and the flag (grad_nonfinite) are left to it and to the host."""
    assert p.grad is not None
    g = p.grad.detach().reshape(-1).float()
    n = g.numel()
    mean = g.mean()
    centered = g - mean
    data = p.detach().float()
    out = {"data_std": data.std() if data.numel() > 1 else data.new_zeros(()), "grad_mean": mean,
           "grad_std": (torch.dot(centered, centered) / max(n - 1, 1)).sqrt(),
           "grad_rms": (torch.dot(g, g) / n).sqrt()}
    if batch is None:
        out["grad_nonfinite"] = (~torch.isfinite(mean)).float()
    if p.dim() >= 2:  # histograms for weight matrices only (the lecture's view)
        if batch is None:
            s = finite_summary(g, bins)
            out |= {"lo": s["lo"], "hi": s["hi"], "counts": s["counts"]}
        else:  # finite_summary's range and sample of g, without its mean and std again
            lo, hi, sample = _range_sample(g, mean)
            batch.add(sample, lo, hi)
            out |= {"lo": lo, "hi": hi}
    return out


def update_ratio(before: Tensor, after: Tensor, before_std: Tensor | None = None) -> Tensor:
    """std(W_after - W_before) / std(W_before): the lectures' update:data ratio (log10 of it ~ -3).
    `before_std`: std(W_before) when already taken (`param_summary`'s data_std of the same weights)."""
    if before_std is None:
        before_std = before.float().std()
    return (after.detach().float() - before.float()).std() / before_std


def batchnorm_mismatch(x: Tensor, bn: nn.modules.batchnorm._BatchNorm) -> Tensor:
    """RMS gap between the train-mode (batch statistics) and eval-mode (running statistics) outputs
    of `bn` on input x, in units of the train-mode output std, before the affine transform.

    Per channel c: sqrt((1 - s_b/s_r)^2 + ((mu_b - mu_r)/s_r)^2) with s = sqrt(var + eps) (the
    batch variance biased, as BatchNorm normalizes with it); the result is the root mean square
    over channels. Call it before the layer updates its running statistics (a forward pre-hook).
    """
    x = x.detach().float()
    dims = [d for d in range(x.dim()) if d != 1]
    mu_b = x.mean(dims, keepdim=True)
    var_b = (x - mu_b).square().mean(dims)  # written out: var() over the batch axis is a slow strided reduction
    mu_b = mu_b.reshape(-1)
    assert bn.running_mean is not None and bn.running_var is not None
    s_b = (var_b + bn.eps).sqrt()
    s_r = (bn.running_var.float() + bn.eps).sqrt()
    gap2 = (1 - s_b / s_r).square() + ((mu_b - bn.running_mean.float()) / s_r).square()
    return gap2.mean().sqrt()


def batchnorm_noise(x: Tensor) -> Tensor:
    """The mismatch that sampling alone gives: the standard error of the batch's per-channel mean
    and std, in units of the std, root mean square over channels.

    Computed from the batch itself, per example (over the positions of an image or sequence, which
    are correlated): with m_i and q_i example i's mean of x and x^2 in a channel, SE(mean)^2 =
    var_i(m_i) / B and SE(var)^2 = var_i(q_i - 2 mean m_i) / B (the delta method), SE(std) =
    SE(var) / (2 std). For B rows of a Gaussian this is sqrt(1.5 / B).
    """
    x = x.detach().float()
    B = x.shape[0]
    if x.dim() > 2:
        xe = x.reshape(B, x.shape[1], -1)  # (B, C, positions)
        m, q = xe.mean(-1), xe.square().mean(-1)  # (B, C)
    else:  # one position per example
        m, q = x, x.square()
    mu = m.mean(0)
    var = (q.mean(0) - mu.square()).clamp_min(1e-12)
    d = q - 2 * mu * m
    se_mu2 = (m - mu).square().sum(0) / ((B - 1) * B)  # unbiased variances over the batch, written out as above
    se_var2 = (d - d.mean(0)).square().sum(0) / ((B - 1) * B)
    rel2 = se_mu2 / var + se_var2 / (4 * var.square())
    return rel2.mean().sqrt()


__all__ = [
    "SATURATION", "finite_summary", "histogram", "Histograms", "nonfinite", "unit_view", "inactive_mask", "activation_summary", "param_summary",
    "update_ratio", "batchnorm_mismatch", "batchnorm_noise", "SLOPE_MIN", "NONLINEAR_ROLES",
]
