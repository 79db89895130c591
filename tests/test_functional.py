"""makemore.functional.cross_entropy against torch.nn.functional.cross_entropy in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from makemore.data import IGNORE
from makemore.functional import cross_entropy, cross_entropy_naive
from makemore.models import create_model, model_config


def _inputs(n: int, v: int, seed: int, scale: float = 3.0, ignore_every: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, v, generator=g, dtype=torch.float64) * scale).requires_grad_()
    targets = torch.randint(0, v, (n,), generator=g)
    targets[::ignore_every] = IGNORE
    return logits, targets


def _value_and_grad(fn, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    loss = fn(logits, targets)
    (grad,) = torch.autograd.grad(loss, logits)
    return loss.detach(), grad


@pytest.mark.parametrize("n,v,seed", [(1, 2, 0), (37, 27, 1), (256, 5, 2), (64, 300, 3)])
def test_matches_torch_value_and_gradient(n: int, v: int, seed: int) -> None:
    logits, targets = _inputs(n, v, seed)
    ours = _value_and_grad(lambda x, t: cross_entropy(x, t, ignore_index=IGNORE), logits, targets)
    ref = _value_and_grad(lambda x, t: F.cross_entropy(x, t, ignore_index=IGNORE), logits, targets)
    if n == 1:  # the only row is ignored: mean over nothing is nan in both, gradient zero in both
        assert torch.isnan(ours[0]) and torch.isnan(ref[0])
    else:
        torch.testing.assert_close(ours[0], ref[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(ours[1], ref[1], rtol=0, atol=1e-6)


def test_upstream_gradient_is_applied() -> None:
    logits, targets = _inputs(40, 11, 5)
    ours = torch.autograd.grad(3.5 * cross_entropy(logits, targets, IGNORE), logits)[0]
    ref = torch.autograd.grad(3.5 * F.cross_entropy(logits, targets, ignore_index=IGNORE), logits)[0]
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-9)


def test_other_ignore_index_including_a_real_class() -> None:
    logits, _ = _inputs(30, 6, 7)
    targets = torch.arange(30) % 6  # class 0 is a real class here, and is the one ignored
    for ignore in (0, -100):
        ours = _value_and_grad(lambda x, t: cross_entropy(x, t, ignore_index=ignore), logits, targets)
        ref = _value_and_grad(lambda x, t: F.cross_entropy(x, t, ignore_index=ignore), logits, targets)
        torch.testing.assert_close(ours[0], ref[0], rtol=0, atol=1e-9)
        torch.testing.assert_close(ours[1], ref[1], rtol=0, atol=1e-9)


def test_gradcheck() -> None:
    logits, targets = _inputs(12, 5, 11)
    assert torch.autograd.gradcheck(lambda x: cross_entropy(x, targets, IGNORE), (logits,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_large_logits_stay_finite_where_the_naive_chain_fails(dtype: torch.dtype) -> None:
    logits, targets = _inputs(64, 27, 13, scale=1e4)
    logits = logits.detach().to(dtype).requires_grad_()
    naive = cross_entropy_naive(logits, targets, IGNORE)
    assert not torch.isfinite(naive)  # exp(1e4) = inf, inf / inf = nan
    loss, grad = _value_and_grad(lambda x, t: cross_entropy(x, t, IGNORE), logits, targets)
    ref_loss, ref_grad = _value_and_grad(lambda x, t: F.cross_entropy(x, t, ignore_index=IGNORE), logits, targets)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-6)


def test_naive_version_is_right_for_small_logits() -> None:
    """The teaching version is a correct formula; only its arithmetic is fragile."""
    logits, targets = _inputs(50, 9, 17)
    ours = _value_and_grad(lambda x, t: cross_entropy_naive(x, t, IGNORE), logits, targets)
    ref = _value_and_grad(lambda x, t: F.cross_entropy(x, t, ignore_index=IGNORE), logits, targets)
    torch.testing.assert_close(ours[0], ref[0], rtol=0, atol=1e-9)
    torch.testing.assert_close(ours[1], ref[1], rtol=0, atol=1e-9)


def test_bfloat16_logits_close_to_float32_reference() -> None:
    logits, targets = _inputs(128, 27, 19)
    lp = logits.detach().to(torch.bfloat16).requires_grad_()
    loss, grad = _value_and_grad(lambda x, t: cross_entropy(x, t, IGNORE), lp, targets)
    assert loss.dtype == grad.dtype == torch.bfloat16
    ref_loss, ref_grad = _value_and_grad(lambda x, t: F.cross_entropy(x, t, ignore_index=IGNORE), lp.detach().float().requires_grad_(), targets)
    torch.testing.assert_close(loss.float(), ref_loss, rtol=1e-2, atol=0)
    torch.testing.assert_close(grad.float(), ref_grad, rtol=0, atol=1e-3)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long))


def test_models_train_the_same_with_either_loss() -> None:
    """`--loss makemore` is a drop-in: same loss and same parameter gradients as `--loss torch`."""
    cfgs = [model_config("mlp", loss=impl, vocab_size=7, block_size=6, n_hidden=16, n_embd=4) for impl in ("torch", "makemore")]
    torch.manual_seed(0)
    a = create_model(cfgs[0]).double()
    b = create_model(cfgs[1]).double()
    b.load_state_dict(a.state_dict())
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 7, (5, 6), generator=g)
    y = torch.randint(0, 7, (5, 6), generator=g)
    y[:, 4:] = IGNORE
    la, lb = a(x, y)[1], b(x, y)[1]
    la.backward()
    lb.backward()
    torch.testing.assert_close(la, lb, rtol=0, atol=1e-12)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=0, atol=1e-12, msg=name)
