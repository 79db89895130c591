"""The written-out recurrence: a one-layer tanh RNN and GRU with backpropagation through time by hand.

A fast path of the speed layer (`makemore.speed`), for the CPU: PyTorch's CPU `nn.RNN` and
`nn.GRU` record every time step's operations for autograd, and at makemore's sizes that
bookkeeping, not the arithmetic, is most of a step. `TanhRNNFunction` and `GRUFunction` run
the same equations with one autograd node for the whole sequence, on packed rows that stop at
each item's last target; equal to `nn.RNN` / `nn.GRU` in float64 (outputs, final state and
every gradient, tested). `written_out` runs a module through them where they apply and through
the module itself elsewhere. For evaluation,
`RecurrentLogits` runs the same forward equations without autograd, the input projection taken
from a table of one row per vocabulary entry.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ..data import IGNORE
from ..models.common import ModelLoss, lm_loss


def _previous(h0: torch.Tensor, out: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Each packed row's previous state, h_(t-1): step 0's from `h0`, step t's the first b_t rows
    of step t-1's outputs. (b_0, H) and packed (N, H) -> packed (N, H)."""
    parts, start = [h0[: sizes[0]]], 0
    for b_prev, b in zip(sizes, sizes[1:]):
        parts.append(out[start : start + b])
        start += b_prev
    return torch.cat(parts)


def _input_share(x: torch.Tensor, idx: torch.Tensor | None, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x W^T + b for the packed inputs (N, E), or, given ids `idx` (N,), for rows `idx` of an
    embedding table x (V, E): an embedding followed by a linear map is one row of their product,
    so the product is taken over the V table rows and gathered, instead of over N positions."""
    if idx is None:
        return torch.addmm(b, x, w.t())  # (N, gates)
    return torch.addmm(b, x, w.t())[idx]  # (V, gates) -> (N, gates)


def _input_grads(x: torch.Tensor, idx: torch.Tensor | None, w: torch.Tensor,
                 d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of x, w and b from d loss / d (x W^T + b), d (N, gates), as `_input_share` takes them."""
    if idx is not None:  # the table's rows: the positions' gradients summed per id
        d = d.new_zeros(x.size(0), d.size(1)).index_add_(0, idx, d)  # (V, gates)
    return d @ w, d.t() @ x, d.sum(0)


def _start_grad(h0: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The gradient of the start state (B, H) from that of its first b_0 rows (the others never ran)."""
    return g if g.size(0) == h0.size(0) else torch.cat([g, g.new_zeros(h0.size(0) - g.size(0), g.size(1))])


class TanhRNNFunction(torch.autograd.Function):
    """One tanh RNN layer, h_t = tanh(x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh), with its backward
    written out, on packed time-major rows: step 0's b_0 rows, then step 1's b_1 rows, and so on,
    with b_t non-increasing and the rows still running at step t the first b_t (a batch sorted by
    length stops computing an item after its last target). The input projection of every row in
    one product, then per time step one product and one tanh forward, one product and one tanh
    derivative backward; the weight gradients of all steps in one product each at the end.

    x (N, E) packed (or an embedding table (V, E) and its ids `idx` (N,) packed), h0 (B, H),
    sizes (b_0, b_1, ...) summing to N -> out (N, H) packed.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, sizes, idx=None):  # type: ignore[override]
        pre = _input_share(x, idx, w_ih, b_ih + b_hh)  # (N, H): inputs' share
        out = torch.empty_like(pre)  # (N, H)
        h, w_hh_t = h0, w_hh.t()
        for pre_t, out_t in zip(pre.split(sizes), out.split(sizes)):
            b = pre_t.size(0)
            h = torch.addmm(pre_t, h if h.size(0) == b else h[:b], w_hh_t, out=out_t).tanh_()
        ctx.sizes = sizes
        ctx.save_for_backward(x, h0, w_ih, w_hh, out, idx)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out):  # type: ignore[override]
        x, h0, w_ih, w_hh, out, idx = ctx.saved_tensors
        sizes = ctx.sizes
        g = g_out.clone()  # d loss / d h_t: the row's own, plus, added below, through later steps
        da = 1 - out * out  # tanh'(pre-activation) = 1 - h_t^2; below, d loss / d pre-activation
        gs, das = g.split(sizes), da.split(sizes)
        for t in range(len(sizes) - 1, 0, -1):
            das[t].mul_(gs[t])
            prev = gs[t - 1] if sizes[t] == sizes[t - 1] else gs[t - 1][: sizes[t]]
            prev.addmm_(das[t], w_hh)  # through W_hh into h_(t-1)
        g_h0 = das[0].mul_(gs[0]) @ w_hh
        g_x, g_w_ih, g_b = _input_grads(x, idx, w_ih, da)
        return (g_x, _start_grad(h0, g_h0), g_w_ih, da.t() @ _previous(h0, out, sizes), g_b, g_b, None, None)


class GRUFunction(torch.autograd.Function):
    """One GRU layer with its backward written out, PyTorch's equations and gate order (r, z, n):
    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z = sigmoid(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h = lerp(n, h, z),
    on packed time-major rows as `TanhRNNFunction`.

    Forward: the input projections of every row in one product, then per time step one product
    and five element-wise operations. Backward: the factors that do not depend on the incoming
    gradient are computed for all steps at once, leaving per step four products by them, one
    multiply-add and one matrix product; the weight gradients in one product each.

    x (N, E) packed (or an embedding table (V, E) and its ids `idx` (N,) packed), h0 (B, H),
    sizes (b_0, b_1, ...) summing to N -> out (N, H) packed.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, sizes, idx=None):  # type: ignore[override]
        H = h0.size(1)
        gi = _input_share(x, idx, w_ih, b_ih)  # (N, 3H): inputs' share of every gate
        N = gi.size(0)
        gh = x.new_empty(N, 3 * H)  # the state's share, W_h h + b_h
        rz = x.new_empty(N, 2 * H)  # reset and update gates
        n = x.new_empty(N, H)  # candidate state
        out = x.new_empty(N, H)
        h, w_hh_t = h0, w_hh.t()
        steps = zip(gh.split(sizes), gi[:, : 2 * H].split(sizes), gh[:, : 2 * H].split(sizes), rz.split(sizes),
                    gi[:, 2 * H :].split(sizes), rz[:, :H].split(sizes), gh[:, 2 * H :].split(sizes), n.split(sizes),
                    rz[:, H:].split(sizes), out.split(sizes))  # per-step views, sliced once
        for gh_t, gi_rz, gh_rz, rz_t, gi_n, r_t, gh_n, n_t, z_t, out_t in steps:
            b = gh_t.size(0)
            h = h if h.size(0) == b else h[:b]
            torch.addmm(b_hh, h, w_hh_t, out=gh_t)
            torch.add(gi_rz, gh_rz, out=rz_t).sigmoid_()
            torch.addcmul(gi_n, r_t, gh_n, out=n_t).tanh_()
            h = torch.lerp(n_t, h, z_t, out=out_t)
        ctx.sizes = sizes
        ctx.save_for_backward(x, h0, w_ih, w_hh, out, gh, rz, n, idx)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out):  # type: ignore[override]
        x, h0, w_ih, w_hh, out, gh, rz, n, idx = ctx.saved_tensors
        sizes = ctx.sizes
        H = h0.size(1)
        r, z, hn = rz[:, :H], rz[:, H:], gh[:, 2 * H :]
        h_prev = _previous(h0, out, sizes)  # (N, H): h_(t-1)
        # d h_t / d (pre-activations), the factors that do not involve the incoming gradient
        to_n = (1 - z) * (1 - n * n)  # through n, into n's pre-activation
        to_r = hn * r * (1 - r)  # from n's pre-activation, through r, into r's
        to_z = (h_prev - n) * z * (1 - z)  # through z, into z's pre-activation
        g = g_out.clone()  # d loss / d h_t: the row's own, plus, added below, through later steps
        dgh = torch.empty_like(gh)  # d loss / d (W_h h + b_h), per step: r, z, n parts
        dn = torch.empty_like(n)  # d loss / d n's pre-activation = d loss / d (W_in x + b_in)
        steps = list(zip(g.split(sizes), dgh.split(sizes), dn.split(sizes), dgh[:, :H].split(sizes),
                         dgh[:, H : 2 * H].split(sizes), dgh[:, 2 * H :].split(sizes), to_n.split(sizes),
                         to_r.split(sizes), to_z.split(sizes), r.split(sizes), z.split(sizes)))  # per-step views
        g_h0 = g_out  # replaced at step 0
        for t in range(len(steps) - 1, -1, -1):
            dh, dgh_t, dn_t, dgh_r, dgh_z, dgh_n, to_n_t, to_r_t, to_z_t, r_t, z_t = steps[t]
            torch.mul(dh, to_n_t, out=dn_t)
            torch.mul(dn_t, to_r_t, out=dgh_r)
            torch.mul(dh, to_z_t, out=dgh_z)
            torch.mul(dn_t, r_t, out=dgh_n)
            if t:  # via z * h_(t-1) and via W_hh, added to d loss / d h_(t-1)
                prev = steps[t - 1][0] if sizes[t] == sizes[t - 1] else steps[t - 1][0][: sizes[t]]
                prev.addcmul_(dh, z_t).addmm_(dgh_t, w_hh)
            else:
                g_h0 = torch.addmm(dh * z_t, dgh_t, w_hh)
        dgi = torch.cat([dgh[:, : 2 * H], dn], dim=1)  # (N, 3H): r and z as in gh; n without r
        g_x, g_w_ih, g_b_ih = _input_grads(x, idx, w_ih, dgi)
        return (g_x, _start_grad(h0, g_h0), g_w_ih, dgh.t() @ h_prev, g_b_ih, dgh.sum(0), None, None)


def applies(rnn: nn.Module) -> bool:
    """Whether `rnn` is a case the written-out functions cover: a one-layer, batch-first,
    unidirectional `nn.RNN` (tanh) or `nn.GRU` with biases."""
    return (type(rnn) in (nn.RNN, nn.GRU) and rnn.num_layers == 1 and rnn.batch_first and rnn.bias
            and not rnn.bidirectional and getattr(rnn, "nonlinearity", "tanh") == "tanh" and not rnn.proj_size)


def _packed(rnn: nn.RNN | nn.GRU, x: torch.Tensor, h0: torch.Tensor, sizes: Sequence[int],
            idx: torch.Tensor | None = None) -> torch.Tensor:
    function = GRUFunction if isinstance(rnn, nn.GRU) else TanhRNNFunction
    return function.apply(x, h0, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0, tuple(sizes), idx)


def written_out(rnn: nn.RNN | nn.GRU, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`rnn(x, h0)` through the written-out function (where `applies(rnn)`): x (B, T, E) and
    h0 (1, B, H) -> the outputs (B, T, H) and the last state (1, B, H)."""
    B, T, E = x.shape
    out = _packed(rnn, x.transpose(0, 1).reshape(T * B, E), h0[0], [B] * T).view(T, B, -1)  # (T, B, H)
    return out.transpose(0, 1), out[-1].unsqueeze(0)


def pack_rows(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The positions of a (B, T) batch that a causal recurrence must run to reach every target:
    each row up to its last target, rows ordered by that length (longest first), packed time-major.
    Returns the packed inputs and targets (N,) and the number of rows running at each step."""
    T = x.size(1)
    steps = np.arange(T)
    ends = ((y.numpy() != IGNORE) * (steps + 1)).max(1)  # (B,): positions up to the last target
    order = np.argsort(-ends, kind="stable")
    ends = ends[order]
    running = steps[:, None] < ends[None, :]  # (T, B): the sorted rows still running at each step
    flat = torch.from_numpy((order[None, :] * T + steps[:, None])[running])  # (N,) into the (B*T,) batch
    sizes = running.sum(1)
    return x.reshape(-1)[flat], y.reshape(-1)[flat], sizes[sizes > 0].tolist()


class RecurrentLoss(ModelLoss):
    """The loss of a `models.rnn.Recurrent` model with its one-layer RNN or GRU run through the
    written-out recurrence (anything else through the model's own code). Without dropout the
    recurrence runs each item only up to its last target (`pack_rows`), and the output layer sees
    those positions only; with dropout it runs the whole batch, so that the masks are drawn as
    the model's own forward draws them."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = self.model
        if not applies(m.rnn):
            return m(x, y)[1]
        h0 = m.initial_state(x.size(0))  # (1, B, H)
        dropout = m.training and m.config.dropout > 0
        xp, yp, sizes = pack_rows(x, y) if x.device.type == "cpu" and not dropout else (x, y, [])  # (N,) each
        if not sizes:
            out, _ = written_out(m.rnn, m.embed(x), h0)  # (B, T, H)
            return lm_loss(m.head(out), y, m.config.loss)
        out = _packed(m.rnn, m.wte.weight, h0[0], sizes, idx=xp)  # (N, H); no dropout: the embedding is wte's rows
        return lm_loss(m.head(out), yp, m.config.loss)


class RecurrentLogits(nn.Module):
    """The logits of a `models.rnn.Recurrent` model for evaluation (no gradients): its one-layer
    RNN or GRU run step by step with the input projection of each character looked up in a
    (V, gates) table, `wte.weight @ W_ih^T + b_ih`: an embedding followed by a linear map is one
    row of their product, so a product per position becomes a gather. The table is made on the
    first call, so a module serves one evaluation (the weights must not change meanwhile).
    The model is in eval mode (its dropout off); anything else, and anything `applies` does not
    cover, goes through the model's own forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._table: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        rnn = m.rnn
        if not applies(rnn) or m.training or torch.is_grad_enabled():
            return m(x)[0]
        B, T = x.shape
        H = rnn.hidden_size
        gru = isinstance(rnn, nn.GRU)
        if self._table is None:
            bias = rnn.bias_ih_l0 if gru else rnn.bias_ih_l0 + rnn.bias_hh_l0  # the RNN adds both biases to the input's share
            self._table = torch.addmm(bias, m.wte.weight, rnn.weight_ih_l0.t())  # (V, gates * H)
        gi = self._table[x.t()]  # (T, B, gates * H), time-major
        h = m.initial_state(B)[0]  # (B, H)
        out = gi.new_empty(T, B, H)
        w_hh_t = rnn.weight_hh_l0.t()
        for gi_t, out_t in zip(gi.unbind(0), out.unbind(0)):
            if gru:  # PyTorch's gate order (r, z, n), as in GRUFunction
                gh = torch.addmm(rnn.bias_hh_l0, h, w_hh_t)  # (B, 3H)
                rz = torch.add(gi_t[:, : 2 * H], gh[:, : 2 * H]).sigmoid_()
                n = torch.addcmul(gi_t[:, 2 * H :], rz[:, :H], gh[:, 2 * H :]).tanh_()
                h = torch.addcmul(n, rz[:, H:], h - n, out=out_t)
            else:
                h = torch.addmm(gi_t, h, w_hh_t, out=out_t).tanh_()
        return m.head(out.transpose(0, 1))  # (B, T, V)
