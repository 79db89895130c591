"""nn.RNN / nn.GRU / nn.LSTM written out step by step, for the monitor's recording steps.

A recurrent layer is one module whose fused kernel hides what the checks need: the output of
every layer (not only the last), the gates, and the gradient that reaches the hidden state at
each time step. On a recording step the monitor replaces the module's output with the output of
`unroll`, the same equations (PyTorch's documented ones) on the same parameters, one time step at
a time, so autograd sees every step. Inputs may be padded tensors or a `PackedSequence`.
Bidirectional layers and LSTM projections are left to the fused kernel (`supported` says so).

Gradient through time: at each step t the state that enters step t+1 is a view of h_t used only
by the recurrence, so a hook on it sees the gradient that flowed back through time alone, and a
hook on h_{t+1} sees the total gradient there. Their ratio is how much one step of recurrence
scales a gradient (the per-step gain); a gain far below 1 means what the loss says about late
steps never reaches early ones (Bengio et al. 1994; Pascanu et al. 2013).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence


@dataclass
class LayerTaps:
    """What one layer of an unrolled step produced, as device tensors (filled during forward and backward)."""

    candidate: list[Tensor] = field(default_factory=list)  # tanh (or relu) outputs per step: RNN h, GRU n, LSTM g
    gates: list[Tensor] = field(default_factory=list)      # sigmoid gates per step (GRU r, z; LSTM i, f, o)
    output: list[Tensor] = field(default_factory=list)     # h_t per step, (rows_t, H)
    rec_sq: dict[int, Tensor] = field(default_factory=dict)    # t -> |grad reaching h_t through step t+1|^2
    total_sq: dict[int, Tensor] = field(default_factory=dict)  # t -> |total grad at h_t|^2
    rows: list[int] = field(default_factory=list)          # sequences still running at each step


def supported(module: nn.Module) -> bool:
    return (isinstance(module, (nn.RNN, nn.GRU, nn.LSTM)) and not module.bidirectional
            and getattr(module, "proj_size", 0) == 0)


def _weights(m: nn.RNNBase, layer: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    w_ih, w_hh = getattr(m, f"weight_ih_l{layer}"), getattr(m, f"weight_hh_l{layer}")
    b_ih = getattr(m, f"bias_ih_l{layer}") if m.bias else None
    b_hh = getattr(m, f"bias_hh_l{layer}") if m.bias else None
    return w_ih, w_hh, b_ih, b_hh


def _sq_hook(store: dict[int, Tensor], t: int, rows: int | None = None) -> Callable[[Tensor], None]:
    def hook(g: Tensor) -> None:
        g = g.detach()[:rows] if rows is not None else g.detach()
        sq = g.float().square().sum()
        store[t] = store[t] + sq if t in store else sq  # an LSTM state has two parts: h and c

    return hook


def unroll(m: nn.RNNBase, args: tuple[Any, ...], kwargs: dict[str, Any], taps: list[LayerTaps]) -> Any:
    """m(*args, **kwargs) computed step by step; `taps` gets one LayerTaps per layer."""
    x = args[0] if args else kwargs["input"]
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    lstm, gru = isinstance(m, nn.LSTM), isinstance(m, nn.GRU)
    H, L = m.hidden_size, m.num_layers
    packed = isinstance(x, PackedSequence)
    if packed:
        data, batch_sizes = x.data, x.batch_sizes.tolist()
        B = batch_sizes[0]
    else:
        unbatched = x.dim() == 2  # (T, I): batch_first does not apply
        if unbatched:
            x = x.unsqueeze(1)
        elif m.batch_first:
            x = x.transpose(0, 1)
        T, B = x.shape[0], x.shape[1]
        data, batch_sizes = x.reshape(T * B, -1), [B] * T
        if unbatched and hx is not None:
            hx = tuple(h.unsqueeze(1) for h in hx) if lstm else hx.unsqueeze(1)
    zeros = data.new_zeros(L, B, H)
    h0, c0 = (hx if hx is not None else (zeros, zeros)) if lstm else (hx if hx is not None else zeros, None)
    if packed and x.sorted_indices is not None:  # the states follow the packed (sorted) row order
        h0 = h0.index_select(1, x.sorted_indices)
        c0 = c0.index_select(1, x.sorted_indices) if c0 is not None else None
    act = torch.relu if getattr(m, "nonlinearity", "tanh") == "relu" else torch.tanh
    h_n, c_n = [], []
    layer_in = data  # (N, I): time-major rows, batch_sizes[t] of them at step t
    for layer in range(L):
        w_ih, w_hh, b_ih, b_hh = _weights(m, layer)
        tap = LayerTaps(rows=list(batch_sizes))
        taps.append(tap)
        xw = F.linear(layer_in, w_ih, b_ih)  # (N, G): the input part of every step at once
        h, c = h0[layer], (c0[layer] if c0 is not None else None)
        outs, start = [], 0
        for t, bs in enumerate(batch_sizes):
            h_in = h[:bs]  # a view used only by the recurrence: its gradient came back through time
            c_in = c[:bs] if c is not None else None
            if t > 0 and h_in.requires_grad:
                h_in.register_hook(_sq_hook(tap.rec_sq, t - 1))
                if c_in is not None:
                    c_in.register_hook(_sq_hook(tap.rec_sq, t - 1))
            gi = xw[start : start + bs]
            gh = F.linear(h_in, w_hh, b_hh)
            if lstm:
                i, f, g, o = (gi + gh).chunk(4, dim=1)
                i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
                c_new = f * c_in + i * g
                h_new = o * torch.tanh(c_new)
                tap.candidate.append(g)
                tap.gates.append(torch.cat([i, f, o], dim=1))
            elif gru:
                ir, iz, in_ = gi.chunk(3, dim=1)
                hr, hz, hn = gh.chunk(3, dim=1)
                r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
                n = torch.tanh(in_ + r * hn)
                h_new = (1 - z) * n + z * h_in
                tap.candidate.append(n)
                tap.gates.append(torch.cat([r, z], dim=1))
            else:
                h_new = act(gi + gh)
                tap.candidate.append(h_new)
            if h_new.requires_grad:
                h_new.register_hook(_sq_hook(tap.total_sq, t))
                if lstm and c_new.requires_grad:
                    c_new.register_hook(_sq_hook(tap.total_sq, t))
            outs.append(h_new)
            tap.output.append(h_new)
            # sequences that ended keep their last state (packed input: the batch shrinks)
            h = torch.cat([h_new, h[bs:]]) if bs < h.shape[0] else h_new
            if lstm:
                c = torch.cat([c_new, c[bs:]]) if bs < c.shape[0] else c_new
            start += bs
        h_n.append(h)
        if lstm:
            c_n.append(c)
        layer_in = torch.cat(outs)  # (N, H)
        if layer < L - 1 and m.dropout > 0 and m.training:
            layer_in = F.dropout(layer_in, m.dropout, training=True)
    hn = torch.stack(h_n)  # (L, B, H), in the packed row order
    cn = torch.stack(c_n) if lstm else None
    if packed:
        if x.unsorted_indices is not None:
            hn = hn.index_select(1, x.unsorted_indices)
            cn = cn.index_select(1, x.unsorted_indices) if cn is not None else None
        out: Any = PackedSequence(layer_in, x.batch_sizes, x.sorted_indices, x.unsorted_indices)
    else:
        out = layer_in.view(T, B, H)
        if unbatched:
            out = out.squeeze(1)
            hn = hn.squeeze(1)
            cn = cn.squeeze(1) if cn is not None else None
        elif m.batch_first:
            out = out.transpose(0, 1)
    return (out, (hn, cn)) if lstm else (out, hn)


__all__ = ["LayerTaps", "supported", "unroll"]
