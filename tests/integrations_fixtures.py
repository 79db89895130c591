"""Small models and data for the integration tests: a healthy tanh MLP, and the same MLP with its
first layer's weights scaled up so that its tanh units saturate (the checks' `act.saturated`); the
same as a LightningModule; a tiny GPT-2 from a config (random weights, nothing downloaded)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

N_IN, N_CLASSES = 10, 5


def tanh_mlp(saturated: bool, seed: int = 0) -> nn.Sequential:
    """Linear-Tanh-Linear-Tanh-Linear; `saturated`: first-layer weights x8 (pre-activations of std ~4)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(N_IN, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, N_CLASSES))
    with torch.no_grad():
        model[4].weight.mul_(0.1)  # near-uniform softmax at step 0: only the saturation is wrong
        if saturated:
            model[0].weight.mul_(8.0)
    return model


def data(n: int = 512, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of unit variance and labels that depend on them (something to learn)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N_IN, generator=g)
    y = (x[:, :N_CLASSES] + 0.5 * torch.randn(n, N_CLASSES, generator=g)).argmax(1)
    return x, y


def train_steps(model: nn.Module, opt: torch.optim.Optimizer, steps: int, after_step=None, batch: int = 64) -> None:
    """A plain loop; `after_step(loss)` runs after each optimizer step."""
    x, y = data()
    for step in range(steps):
        i = (step * batch) % len(x)
        loss = F.cross_entropy(model(x[i : i + batch]), y[i : i + batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step(loss)


def fast_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report without its pictures: they are tested with the report (and take seconds)."""
    from makemore.diagnostics import report

    monkeypatch.setattr(report, "pictures", lambda *a, **k: [])


def lightning_module(saturated: bool, lr: float = 3e-3):  # -> lightning.pytorch.LightningModule
    """tanh_mlp as a LightningModule (cross-entropy, Adam)."""
    import lightning.pytorch as pl

    class Classifier(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = tanh_mlp(saturated)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            x, y = batch
            return F.cross_entropy(self(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=lr)

    return Classifier()


VOCAB, T = 27, 16


class Tokens(torch.utils.data.Dataset):
    """Random token sequences, the labels the inputs themselves (a causal LM shifts them)."""

    def __len__(self) -> int:
        return 512

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = torch.randint(0, VOCAB, (T,), generator=torch.Generator().manual_seed(i))
        return {"input_ids": x, "labels": x}


def tiny_gpt2(init_range: float):  # -> transformers.GPT2LMHeadModel
    """One layer, 32 wide; `init_range` 1.0 (50x GPT-2's 0.02) makes the step-0 loss far too high."""
    import transformers

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=VOCAB, n_positions=T,
                                  initializer_range=init_range, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg)
