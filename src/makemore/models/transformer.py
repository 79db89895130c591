"""GPT-style decoder-only Transformer (Vaswani et al. 2017; Radford et al. 2019), pre-LayerNorm.

Attention runs through `F.scaled_dot_product_attention` with a causal mask, which picks a
fused kernel where one exists; `attention="manual"` writes it out instead (the scores, the
causal mask, the softmax and the weighted sum as separate operations, as in Karpathy's
makemore), which is equal to float rounding (`bench/gpu_check.sh` compares their speed on a GPU).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .common import init_output_, lm_loss


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.n_embd % cfg.n_head:
            raise ValueError(f"n_embd {cfg.n_embd} is not divisible by n_head {cfg.n_head}")
        if cfg.attention not in ("sdpa", "manual"):
            raise ValueError(f"unknown attention {cfg.attention!r}; choose sdpa or manual")
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout
        self.manual = cfg.attention == "manual"
        if self.manual:  # True where a position may look: itself and the positions before it
            causal = torch.tril(torch.ones(cfg.block_size, cfg.block_size, dtype=torch.bool))
            self.register_buffer("causal", causal, persistent=False)  # (block, block)
            self.attn_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        return self.c_proj(self.attend(self.c_attn(x)))

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """(B, T, 3C) queries, keys and values -> (B, T, C): each position's weighted sum of the
        values of itself and the positions before it, per head."""
        B, T, C3 = qkv.shape
        C = C3 // 3
        q, k, v = qkv.split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if self.manual:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, T)
            att = att.masked_fill(~self.causal[:T, :T], float("-inf")).softmax(dim=-1)
            y = self.attn_drop(att) @ v  # (B, nh, T, hs)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)

    def forward_step(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, t: int) -> torch.Tensor:
        """Attention of one new position `t`: x (B, 1, C); its key and value are written into
        the caches (B, nh, block_size, hs) and it attends to positions 0..t."""
        B, _, C = x.shape
        q, k, v = (u.view(B, 1, self.n_head, C // self.n_head).transpose(1, 2) for u in self.c_attn(x).split(C, dim=2))
        keys[:, :, t : t + 1] = k  # (B, nh, 1, hs)
        values[:, :, t : t + 1] = v
        y = F.scaled_dot_product_attention(q, keys[:, :, : t + 1], values[:, :, : t + 1])  # (B, nh, 1, hs): all seen
        return self.c_proj(y.transpose(1, 2).reshape(B, 1, C))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd), nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        return x + self.mlp(self.ln_2(x))

    def forward_step(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, t: int) -> torch.Tensor:
        x = x + self.attn.forward_step(self.ln_1(x), keys, values, t)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self._init_weights(cfg)

    @torch.no_grad()
    def _init_weights(self, cfg: ModelConfig) -> None:
        # GPT-2's scheme: N(0, 0.02) everywhere, residual projections scaled by 1/sqrt(2 n_layer)
        # so the residual stream does not grow with depth; the output layer scaled down.
        gain = 1.0 if cfg.init_gain is None else cfg.init_gain
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.constant_(p, cfg.bias_init)
            elif p.dim() == 2 and "ln" not in name:
                std = 0.02 * gain
                if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight"):
                    std /= math.sqrt(2 * cfg.n_layer)
                nn.init.normal_(p, 0.0, std)
        init_output_(self.lm_head, cfg.init_output_scale)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        loss = lm_loss(logits, targets, self.config.loss) if targets is not None else None
        return logits, loss

    # -- cached generation: a key/value cache, so each new character costs one position ----------

    def init_cache(self, batch: int) -> dict[str, Any]:
        """Empty key/value caches for `batch` sequences: per block (B, nh, block_size, hs) each."""
        cfg, p = self.config, self.lm_head.weight
        shape = (batch, cfg.n_head, cfg.block_size, cfg.n_embd // cfg.n_head)
        return {"t": 0, "kv": [(p.new_zeros(shape), p.new_zeros(shape)) for _ in self.blocks]}

    def forward_step(self, idx_t: torch.Tensor, cache: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """Logits (B, V) of the next character after feeding `idx_t` (B,) at the cache's position."""
        t = cache["t"]
        if t >= self.config.block_size:
            raise ValueError(f"the cache holds {self.config.block_size} positions; position {t} does not fit")
        x = self.wte(idx_t.unsqueeze(1)) + self.wpe.weight[t]  # (B, 1, C)
        for block, (keys, values) in zip(self.blocks, cache["kv"]):
            x = block.forward_step(x, keys, values, t)
        cache["t"] = t + 1
        return self.lm_head(self.ln_f(x))[:, 0], cache  # (B, V)
