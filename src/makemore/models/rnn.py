"""Recurrent models: vanilla RNN (Mikolov et al. 2010), GRU (Cho et al. 2014), LSTM (Hochreiter & Schmidhuber 1997).

PyTorch's `nn.RNN` / `nn.GRU` / `nn.LSTM` over the embedded characters, with a learned start
state, and an output layer on every hidden state. (On the CPU the speed layer,
`makemore.speed`, runs the one-layer RNN and GRU through a written-out recurrence.)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import ModelConfig
from .common import init_output_, lm_loss

_CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class Recurrent(nn.Module):
    kind = "rnn"

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.rnn = _CELLS[self.kind](
            cfg.n_embd, cfg.n_hidden, num_layers=cfg.n_layer, batch_first=True,
            dropout=cfg.dropout if cfg.n_layer > 1 else 0.0,
        )
        # dropout on the connections that are not recurrent (Zaremba et al. 2014): the embedded
        # input, between layers (nn.GRU's own) and the output before the head
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        n_state = 2 if self.kind == "lstm" else 1  # the LSTM carries (h, c)
        self.start = nn.Parameter(torch.zeros(n_state, cfg.n_layer, 1, cfg.n_hidden))
        self.lm_head = nn.Linear(cfg.n_hidden, cfg.vocab_size)
        init_output_(self.lm_head, cfg.init_output_scale)

    def initial_state(self, batch: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s = self.start.expand(-1, -1, batch, -1).contiguous()  # (n_state, n_layer, B, H)
        return (s[0], s[1]) if self.kind == "lstm" else s[0]

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return self.drop(self.wte(idx))  # (B, T, n_embd)

    def head(self, out: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.drop(out))  # (B, T, V)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, _ = self.rnn(self.embed(idx), self.initial_state(idx.size(0)))  # (B, T, n_hidden)
        logits = self.head(out)  # (B, T, V)
        loss = lm_loss(logits, targets, self.config.loss) if targets is not None else None
        return logits, loss

    # cached generation: the recurrent state is the cache, so each new character costs one step
    def init_cache(self, batch: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.initial_state(batch)

    def forward_step(self, idx_t: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Logits (B, V) of the next character after feeding `idx_t` (B,); returns the new state."""
        out, state = self.rnn(self.wte(idx_t.unsqueeze(1)), cache)  # (B, 1, H)
        return self.lm_head(out[:, 0]), state


class RNN(Recurrent):
    kind = "rnn"


class GRU(Recurrent):
    kind = "gru"


class LSTM(Recurrent):
    kind = "lstm"
