"""Every model in the registry: shapes, gradients, initial loss, causality; plus reference checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from makemore.data import IGNORE
from makemore.models import create_model, model_config, model_names

V, T, B = 27, 16, 8


def make(name: str, **kw):
    torch.manual_seed(0)
    return create_model(model_config(name, vocab_size=V, block_size=T, **kw))


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V, (B, T), generator=g)
    y = torch.randint(0, V, (B, T), generator=g)
    y[:, -3:] = IGNORE  # padding carries no loss
    return x, y


@pytest.mark.parametrize("name", model_names())
def test_forward_shapes_and_finite(name):
    model = make(name)
    x, y = batch()
    logits, loss = model(x, y)
    assert logits.shape == (B, T, V)
    assert loss.dim() == 0 and torch.isfinite(loss) and torch.isfinite(logits).all()
    logits2, loss2 = model(x)
    assert loss2 is None
    if model.config.norm == "batch":
        # with targets, BatchNorm models compute the positions that have one (the batch
        # statistics describe real characters); those logits equal the full batch's
        keep = y != IGNORE
        model.eval()  # running statistics: the rows chosen no longer matter
        full, rows_only = model(x)[0], model(x, y)[0]
        assert torch.allclose(rows_only[keep], full[keep], atol=1e-6)
        if hasattr(model, "features"):  # positionwise_forward leaves padding positions at 0
            assert (rows_only[~keep] == 0).all()
    else:
        assert torch.equal(logits, logits2)


@pytest.mark.parametrize("name", model_names())
def test_loss_ignores_padding(name):
    model = make(name).eval()
    x, y = batch()
    logits, loss = model(x, y)
    keep = y != IGNORE
    expected = F.cross_entropy(logits[keep].double(), y[keep])
    assert abs(loss.item() - expected.item()) < 1e-5


@pytest.mark.parametrize("name", [n for n in model_names() if n != "counts"])
def test_every_parameter_gets_a_gradient(name):
    model = make(name)
    x, y = batch()
    _, loss = model(x, y)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} got an all-zero gradient"


@pytest.mark.parametrize("name", model_names())
def test_step0_loss_near_ln_vocab(name):
    # the output layer is scaled down on purpose: a near-uniform softmax at initialization
    model = make(name)
    x, y = batch()
    _, loss = model(x, y)
    assert abs(loss.item() - math.log(V)) / math.log(V) < 0.15


@pytest.mark.parametrize("name", model_names())
def test_causality(name):
    """Logits at position t do not change when inputs after t change (eval mode: no batch coupling)."""
    model = make(name).eval()
    if name in ("bigram", "counts"):  # their initial tables are uniform; give them something to see
        with torch.no_grad():
            (model.logits if name == "bigram" else model.counts).uniform_(0, 5)
    x, _ = batch()
    t = 6
    x2 = x.clone()
    x2[:, t + 1 :] = torch.randint(0, V, (B, T - t - 1), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(x2)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])  # later positions do see the change


def test_counts_probabilities_match_hand_computation():
    # corpus "ab", "b": pairs (., a) (a, b) (b, .) and (., b) (b, .) over vocabulary {., a, b}
    model = create_model(model_config("counts", vocab_size=3, block_size=3, smoothing=1.0))
    x = torch.tensor([[0, 1, 2], [0, 2, 0]])
    y = torch.tensor([[1, 2, 0], [2, 0, IGNORE]])
    model.fit_closed_form(x, y)
    counts = torch.tensor([[0, 1, 1], [0, 0, 1], [2, 0, 0]], dtype=torch.float)
    assert torch.equal(model.counts, counts)
    probs = model.log_probs().exp()
    expected = (counts + 1) / (counts + 1).sum(1, keepdim=True)  # add-one smoothing by hand
    torch.testing.assert_close(probs, expected)
    assert abs(probs[2, 0].item() - 3 / 5) < 1e-7  # after 'b': '.' seen twice, (2+1)/(2+3)
    # broadcasting: (V, V) / (V, 1) divides each row by its own sum; without keepdim the (V,) sums
    # broadcast as a row and divide each column instead, the lectures' classic silent bug
    smoothed = counts + 1
    assert torch.allclose((smoothed / smoothed.sum(1, keepdim=True)).sum(1), torch.ones(3))
    assert not torch.allclose((smoothed / smoothed.sum(1)).sum(1), torch.ones(3))


def test_embedding_lookup_equals_one_hot_matmul():
    """The embedding lookup is a linear layer on one-hot inputs: same value, same gradient."""
    torch.manual_seed(0)
    table = torch.randn(V, 10, dtype=torch.float64, requires_grad=True)
    idx = torch.randint(0, V, (32, 3))
    upstream = torch.randn(32, 3, 10, dtype=torch.float64)
    emb = F.embedding(idx, table)
    (g_lookup,) = torch.autograd.grad((emb * upstream).sum(), table)
    one_hot = F.one_hot(idx, V).double()  # (32, 3, V)
    emb2 = one_hot @ table
    (g_matmul,) = torch.autograd.grad((emb2 * upstream).sum(), table)
    torch.testing.assert_close(emb, emb2, rtol=0, atol=1e-12)
    torch.testing.assert_close(g_lookup, g_matmul, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["mlp", "wavenet"])
def test_batchnorm_statistics_ignore_padding(name):
    """In training, BatchNorm normalizes over the positions that have a target, not the padding."""
    model = make(name, norm="batch")
    x, y = batch()
    keep = (y != IGNORE).reshape(-1)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    seen = {}
    bn.register_forward_pre_hook(lambda m, inp: seen.setdefault("rows", inp[0].shape[0]) and None)
    logits, loss = model(x, y)
    rows_per_position = seen["rows"] // int(keep.sum())
    assert seen["rows"] == rows_per_position * int(keep.sum())  # only real positions (x levels for wavenet)
    assert torch.equal(logits.reshape(-1, V)[~keep], torch.zeros_like(logits.reshape(-1, V)[~keep]))
    # padding content cannot move the real positions' logits any more
    x2 = x.clone()
    x2[:, -2:] = (x2[:, -2:] + 1) % V  # the last positions carry no target (IGNORE)
    torch.testing.assert_close(model(x2, y)[0].reshape(-1, V)[keep], logits.reshape(-1, V)[keep])


def test_mlp_concatenation_is_a_view():
    model = make("mlp")
    x, _ = batch()
    from makemore.models.common import context_windows

    emb = model.wte(context_windows(x, model.config.context))
    flat = emb.view(B * T, -1)
    assert flat.data_ptr() == emb.data_ptr()  # no copy


def test_unknown_model_is_a_clear_error():
    from makemore.errors import MakemoreError

    with pytest.raises(MakemoreError, match="unknown model 'nope'"):
        model_config("nope")


def test_written_out_attention_equals_the_fused_kernel_in_float64():
    torch.manual_seed(0)
    idx = torch.randint(0, 27, (5, 12))
    targets = torch.randint(0, 27, (5, 12))
    targets[:, 9:] = IGNORE
    out = []
    for attention in ("sdpa", "manual"):
        torch.manual_seed(1)
        m = create_model(model_config("transformer", vocab_size=27, block_size=16, n_embd=32, n_head=4, n_layer=2,
                                      attention=attention)).double()
        with torch.no_grad():  # away from the small init, so attention is far from uniform
            for p in m.parameters():
                p.add_(0.2 * torch.randn_like(p))
        logits, loss = m(idx, targets)
        loss.backward()
        out.append((logits, [p.grad for p in m.parameters()], m.state_dict().keys()))
    (la, ga, ka), (lb, gb, kb) = out
    assert ka == kb  # the mask is not saved: checkpoints of either kind load into the other
    torch.testing.assert_close(la, lb, rtol=0, atol=1e-12)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="unknown attention 'flash'; choose sdpa or manual"):
        create_model(model_config("transformer", attention="flash"))
