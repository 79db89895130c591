"""The written-out recurrence: a one-layer tanh RNN and GRU with backpropagation through time by hand.

A fast path of the speed layer (`makemore.speed`), for the CPU: PyTorch's CPU `nn.RNN` and
`nn.GRU` record every time step's operations for autograd, and at makemore's sizes that
bookkeeping, not the arithmetic, is most of a step. `TanhRNNFunction` and `GRUFunction` run
the same equations with one autograd node for the whole sequence; equal to `nn.RNN` / `nn.GRU`
in float64 (outputs, final state and every gradient, tested). `written_out` runs a module
through them where they apply and through the module itself elsewhere. For evaluation,
`RecurrentLogits` runs the same forward equations without autograd, the input projection taken
from a table of one row per vocabulary entry.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ..models.common import ModelLoss, lm_loss


class TanhRNNFunction(torch.autograd.Function):
    """One tanh RNN layer, h_t = tanh(x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh), with its backward
    written out: the input projection of every position in one product, then per time step one
    product and one tanh forward, one product and one tanh derivative backward; the weight
    gradients of all steps in one product each at the end.

    x (B, T, E), h0 (B, H) -> out (B, T, H), the last state (B, H).
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):  # type: ignore[override]
        B, T, _ = x.shape
        x_tm = x.transpose(0, 1).reshape(T * B, -1)  # (T*B, E), time-major
        pre = torch.addmm(b_ih + b_hh, x_tm, w_ih.t()).view(T, B, -1)  # (T, B, H): inputs' share
        out = torch.empty_like(pre)  # (T, B, H)
        h, w_hh_t = h0, w_hh.t()
        for pre_t, out_t in zip(pre.unbind(0), out.unbind(0)):
            h = torch.addmm(pre_t, h, w_hh_t, out=out_t).tanh_()
        ctx.save_for_backward(x_tm, h0, w_ih, w_hh, out)
        return out.transpose(0, 1), h

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_last):  # type: ignore[override]
        x_tm, h0, w_ih, w_hh, out = ctx.saved_tensors
        T, B, H = out.shape
        g_out = g_out.transpose(0, 1).contiguous()  # (T, B, H)
        dh = g_out[T - 1] if g_last is None else g_out[T - 1] + g_last  # d loss / d h_t, all paths
        da = 1 - out * out  # tanh'(pre-activation) = 1 - h_t^2; below, d loss / d pre-activation
        gs, das = g_out.unbind(0), da.unbind(0)
        for t in range(T - 1, -1, -1):
            das[t].mul_(dh)
            if t:
                dh = torch.addmm(gs[t - 1], das[t], w_hh)  # through W_hh, plus position t-1's own
        da_flat = da.view(T * B, H)
        h_prev = torch.cat([h0.unsqueeze(0), out[:-1]]).view(T * B, H)  # (T*B, H): h_(t-1)
        g_b = da_flat.sum(0)
        g_x = (da_flat @ w_ih).view(T, B, -1).transpose(0, 1)  # (B, T, E)
        return g_x, da[0] @ w_hh, da_flat.t() @ x_tm, da_flat.t() @ h_prev, g_b, g_b


class GRUFunction(torch.autograd.Function):
    """One GRU layer with its backward written out, PyTorch's equations and gate order (r, z, n):
    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z = sigmoid(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h = n + z * (h - n).

    Forward: the input projections of every position in one product, then per time step one
    product and six element-wise operations. Backward: the factors that do not depend on the
    incoming gradient are computed for all steps at once, leaving per step four products by
    them, one multiply-add and one matrix product; the weight gradients in one product each.

    x (B, T, E), h0 (B, H) -> out (B, T, H), the last state (B, H).
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):  # type: ignore[override]
        B, T, _ = x.shape
        H = h0.size(1)
        x_tm = x.transpose(0, 1).reshape(T * B, -1)  # (T*B, E), time-major
        gi = torch.addmm(b_ih, x_tm, w_ih.t()).view(T, B, 3 * H)  # inputs' share of every gate
        gh = x.new_empty(T, B, 3 * H)  # the state's share, W_h h + b_h, per step
        rz = x.new_empty(T, B, 2 * H)  # reset and update gates
        n = x.new_empty(T, B, H)  # candidate state
        out = x.new_empty(T, B, H)
        diff = x.new_empty(B, H)
        h, w_hh_t = h0, w_hh.t()
        steps = zip(gh.unbind(0), gi[..., : 2 * H].unbind(0), gh[..., : 2 * H].unbind(0), rz.unbind(0),
                    gi[..., 2 * H :].unbind(0), rz[..., :H].unbind(0), gh[..., 2 * H :].unbind(0), n.unbind(0),
                    rz[..., H:].unbind(0), out.unbind(0))  # per-step views, sliced once
        for gh_t, gi_rz, gh_rz, rz_t, gi_n, r_t, gh_n, n_t, z_t, out_t in steps:
            torch.addmm(b_hh, h, w_hh_t, out=gh_t)
            torch.add(gi_rz, gh_rz, out=rz_t).sigmoid_()
            torch.addcmul(gi_n, r_t, gh_n, out=n_t).tanh_()
            torch.sub(h, n_t, out=diff)
            h = torch.addcmul(n_t, z_t, diff, out=out_t)
        ctx.save_for_backward(x_tm, h0, w_ih, w_hh, out, gh, rz, n)
        return out.transpose(0, 1), h

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_last):  # type: ignore[override]
        x_tm, h0, w_ih, w_hh, out, gh, rz, n = ctx.saved_tensors
        T, B, H = out.shape
        r, z, hn = rz[..., :H], rz[..., H:], gh[..., 2 * H :]
        h_prev = torch.cat([h0.unsqueeze(0), out[:-1]])  # (T, B, H): h_(t-1)
        # d h_t / d (pre-activations), the factors that do not involve the incoming gradient
        to_n = (1 - z) * (1 - n * n)  # through n, into n's pre-activation
        to_r = hn * r * (1 - r)  # from n's pre-activation, through r, into r's
        to_z = (h_prev - n) * z * (1 - z)  # through z, into z's pre-activation
        g_out = g_out.transpose(0, 1).contiguous()  # (T, B, H)
        dgh = torch.empty_like(gh)  # d loss / d (W_h h + b_h), per step: r, z, n parts
        dn = torch.empty_like(n)  # d loss / d n's pre-activation = d loss / d (W_in x + b_in)
        dh = g_out[T - 1] if g_last is None else g_out[T - 1] + g_last  # d loss / d h_t, all paths
        steps = list(zip(dgh.unbind(0), dn.unbind(0), dgh[..., :H].unbind(0), dgh[..., H : 2 * H].unbind(0),
                         dgh[..., 2 * H :].unbind(0), to_n.unbind(0), to_r.unbind(0), to_z.unbind(0),
                         r.unbind(0), z.unbind(0), [None, *g_out[:-1].unbind(0)]))  # per-step views
        for dgh_t, dn_t, dgh_r, dgh_z, dgh_n, to_n_t, to_r_t, to_z_t, r_t, z_t, g_prev in reversed(steps):
            torch.mul(dh, to_n_t, out=dn_t)
            torch.mul(dn_t, to_r_t, out=dgh_r)
            torch.mul(dh, to_z_t, out=dgh_z)
            torch.mul(dn_t, r_t, out=dgh_n)
            via_z = dh * z_t if g_prev is None else torch.addcmul(g_prev, dh, z_t)  # plus h_(t-1)'s own
            dh = torch.addmm(via_z, dgh_t, w_hh)  # via z * h_(t-1) and via W_hh: d loss / d h_(t-1)
        dgi = torch.cat([dgh[..., : 2 * H], dn], dim=2).view(T * B, 3 * H)  # r and z as in gh; n without r
        dgh_flat = dgh.view(T * B, 3 * H)
        g_x = (dgi @ w_ih).view(T, B, -1).transpose(0, 1)  # (B, T, E)
        return (g_x, dh, dgi.t() @ x_tm, dgh_flat.t() @ h_prev.view(T * B, H), dgi.sum(0), dgh_flat.sum(0))


def applies(rnn: nn.Module) -> bool:
    """Whether `rnn` is a case the written-out functions cover: a one-layer, batch-first,
    unidirectional `nn.RNN` (tanh) or `nn.GRU` with biases."""
    return (type(rnn) in (nn.RNN, nn.GRU) and rnn.num_layers == 1 and rnn.batch_first and rnn.bias
            and not rnn.bidirectional and getattr(rnn, "nonlinearity", "tanh") == "tanh" and not rnn.proj_size)


def written_out(rnn: nn.RNN | nn.GRU, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`rnn(x, h0)` through the written-out function (where `applies(rnn)`): x (B, T, E) and
    h0 (1, B, H) -> the outputs (B, T, H) and the last state (1, B, H)."""
    function = GRUFunction if isinstance(rnn, nn.GRU) else TanhRNNFunction
    out, last = function.apply(x, h0[0], rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
    return out, last.unsqueeze(0)


class RecurrentLoss(ModelLoss):
    """The loss of a `models.rnn.Recurrent` model with its one-layer RNN or GRU run through the
    written-out recurrence (anything else through the model's own code)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = self.model
        if not applies(m.rnn):
            return m(x, y)[1]
        out, _ = written_out(m.rnn, m.embed(x), m.initial_state(x.size(0)))  # (B, T, H)
        return lm_loss(m.head(out), y, m.config.loss)


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
