"""Every statistic the monitor takes, against hand-computed values on small known tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from makemore.diagnostics.stats import (
    HIST_SAMPLE, activation_summary, batchnorm_mismatch, finite_summary, histogram, inactive_mask, param_summary,
    unit_view, update_ratio,
)


def test_finite_summary_by_hand() -> None:
    s = finite_summary(torch.tensor([1.0, 2.0, 3.0, 4.0]), bins=3)
    assert s["mean"].item() == pytest.approx(2.5)
    assert s["std"].item() == pytest.approx(math.sqrt(5 / 3))  # unbiased: (2.25+0.25+0.25+2.25)/3
    assert (s["lo"].item(), s["hi"].item()) == (1.0, 4.0)
    assert s["counts"].tolist() == [1, 1, 2]  # [1,2) [2,3) [3,4]: the last bin holds its right edge
    assert s["nonfinite"].item() == 0.0


def test_finite_summary_flags_nan_and_inf() -> None:
    assert finite_summary(torch.tensor([1.0, float("nan"), 3.0]), 4)["nonfinite"].item() == 1.0
    assert finite_summary(torch.tensor([1.0, float("inf")]), 4)["nonfinite"].item() == 1.0


def test_std_is_exact_when_the_mean_dwarfs_the_spread() -> None:
    x = torch.tensor([1000.0, 1000.001, 1000.002], dtype=torch.float32)
    ref = np.std(x.double().numpy(), ddof=1)
    assert finite_summary(x, 4)["std"].item() == pytest.approx(ref, rel=1e-2)


def test_histogram_matches_numpy() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, generator=g)
    lo, hi = x.min(), x.max()
    counts = histogram(x, lo, hi, 20)
    ref, _ = np.histogram(x.double().numpy(), bins=20, range=(lo.item(), hi.item()))
    assert counts.tolist() == ref.tolist()


def test_large_tensors_histogram_a_strided_sample() -> None:
    x = torch.arange(4 * HIST_SAMPLE, dtype=torch.float32)
    s = finite_summary(x, 8)
    assert s["counts"].sum().item() == len(x[:: len(x) // HIST_SAMPLE])
    assert s["counts"].tolist() == [HIST_SAMPLE / 8] * 8  # evenly spread data stays evenly spread
    assert s["mean"].item() == pytest.approx(x.double().mean().item())  # moments use every element


def test_tanh_saturation_and_unit_activity_by_hand() -> None:
    y = torch.tensor([[0.99, 0.5], [-0.98, 0.0], [0.1, 0.975]])  # (rows, units)
    s = activation_summary(y, "saturating", bins=4, map_rows=2, map_units=2)
    assert s["inactive"].item() == pytest.approx(3 / 6)
    assert s["unit_active"].tolist() == [1, 2]  # unit 0 passes gradient on one row, unit 1 on two
    assert s["map"].tolist() == [[1, 0], [1, 0]]


def test_relu_zero_fraction_by_hand() -> None:
    y = torch.tensor([[0.0, 1.0], [0.0, 2.0], [0.0, -0.0]])
    s = activation_summary(y, "relu", bins=4)
    assert s["inactive"].item() == pytest.approx(4 / 6)
    assert s["unit_active"].tolist() == [0, 2]  # unit 0 is dead on this batch
    assert "map" not in s


def test_sigmoid_saturation_uses_its_own_range() -> None:
    y = torch.tensor([[0.99, 0.9, 0.01, 0.5]])
    mask = inactive_mask(y, "saturating", scale=(0.5, 0.5))  # |2y - 1| > 0.97
    assert mask.tolist() == [[True, False, True, False]]


def test_other_layers_get_no_unit_statistics() -> None:
    assert "inactive" not in activation_summary(torch.randn(4, 3), "linear", bins=4)


def test_unit_view_puts_channels_last_for_conv_outputs() -> None:
    y = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)  # (N, C, H, W)
    v = unit_view(y)
    assert v.shape == (2 * 2 * 2, 3)
    assert set(v[:, 1].tolist()) == set(y[:, 1].flatten().tolist())
    # a Conv1d output (N, C, L): the producing op says the channels are the units (axis 1)
    z = torch.arange(5 * 7 * 4, dtype=torch.float32).view(5, 7, 4)
    v1 = unit_view(z, axis=1)
    assert v1.shape == (5 * 4, 7) and set(v1[:, 2].tolist()) == set(z[:, 2].flatten().tolist())
    assert unit_view(z, axis=-1).shape == (35, 4)  # a sequence of features (B, T, C): the last axis


def test_param_summary_by_hand() -> None:
    p = nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    p.grad = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    s = param_summary(p, bins=4)
    assert s["data_std"].item() == pytest.approx(math.sqrt(5 / 3))
    assert s["grad_mean"].item() == pytest.approx(0.25)
    assert s["grad_std"].item() == pytest.approx(math.sqrt(5 / 3) / 10)
    assert s["grad_rms"].item() == pytest.approx(math.sqrt(0.075))
    assert s["counts"].sum().item() == 4
    b = nn.Parameter(torch.ones(3))
    b.grad = torch.zeros(3)
    assert "counts" not in param_summary(b, 4)  # histograms for matrices only


def test_update_ratio_by_hand() -> None:
    before = torch.tensor([1.0, 2.0, 3.0, 4.0])
    after = torch.tensor([1.1, 2.0, 3.0, 4.1])
    # std([0.1, 0, 0, 0.1]) / std([1, 2, 3, 4])
    assert update_ratio(before, after).item() == pytest.approx(math.sqrt(0.01 / 3) / math.sqrt(5 / 3), rel=1e-5)


@pytest.mark.parametrize("shape", [(64, 5), (16, 5, 7)])
def test_batchnorm_mismatch_is_the_rms_gap_between_train_and_eval_outputs(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(0)
    bn = nn.BatchNorm1d(5)
    bn.running_mean = torch.randn(5, generator=g)
    bn.running_var = torch.rand(5, generator=g) + 0.5
    x = torch.randn(*shape, generator=g) * 2 + 1
    gap = batchnorm_mismatch(x, bn).item()
    # reference: the two outputs in float64, before the affine part
    xd = x.double()
    dims = [d for d in range(x.dim()) if d != 1]
    y_train = F.batch_norm(xd, None, None, training=True, eps=bn.eps)
    y_eval = F.batch_norm(xd, bn.running_mean.double(), bn.running_var.double(), training=False, eps=bn.eps)
    ref = (y_train - y_eval).square().mean(dims).mean().sqrt().item()
    assert gap == pytest.approx(ref, rel=1e-4)
    # calibrated running statistics: no gap
    bn.running_mean = x.double().mean(dims).float()
    bn.running_var = x.double().var(dims, unbiased=False).float()
    assert batchnorm_mismatch(x, bn).item() < 1e-3
