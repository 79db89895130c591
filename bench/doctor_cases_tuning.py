"""Tuning cases of the doctor's evaluation: the thresholds may be set on these.

They include the runs that showed where "any model" did not hold (a Hugging Face model whose
output is a ModelOutput, a CNN whose ReLUs are F.relu calls, a two-layer tanh RNN saturated in
its first layer, the MNIST CNN with its own Adadelta recipe) and one case for each thing the
monitor must see: Conv1d channels, GELU, BatchNorm at batch 16, gradients through time,
GradScaler's skipped steps, frozen parameters and several losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from doctor_cases_common import (
    LR_HIGH, VOCAB, Case, context_batches, digit_batches, memory_batches, monitor, sequence_batches, signal_batches,
    stream_batches,
)
from makemore.diagnostics import Records

# moved here from the held-out set after its first, second, third and fourth runs (the checks changed for them)
from doctor_cases_heldout import (  # noqa: E402  (isort: the bench directory is on sys.path)
    cnn1d_forgot_zero_grad, cnn2d_adadelta, cnn2d_adadelta_lr_too_high, deep_sigmoid_mlp, gpt_lr_100x_too_low,
    hf_gpt2_lr_too_high, lenet_sgd, lenet_sgd_lr_too_high, regression_mse, regression_tanh_init_std_1,
    relu_mlp_init_std_by_hand, resnet_lr_too_high, t5_reverse_names, tabular_inputs_not_standardized,
)

# ---------------------------------------------------------------------------------------------
# pytorch/examples mnist/main.py, as written there (sizes for 16 x 16 digits)


class MnistNet(nn.Module):
    def __init__(self, fc1_bias: float | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(64 * 6 * 6, 128)
        self.fc2 = nn.Linear(128, 10)
        if fc1_bias is not None:
            nn.init.constant_(self.fc1.bias, fc1_bias)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def _mnist(steps: int, seed: int, fc1_bias: float | None = None) -> Records:
    torch.manual_seed(seed)
    model = MnistNet(fc1_bias)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    draw = digit_batches(64, seed + 1)
    mon = monitor(model, optimizer, steps)
    for step in range(steps):
        data, target = draw()
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
        mon.step(loss)
        if (step + 1) % 50 == 0:
            scheduler.step()
    return mon.close()


def mnist_adadelta(steps: int, seed: int) -> Records:
    return _mnist(steps, seed)


def mnist_fc1_bias_dead(steps: int, seed: int) -> Records:
    return _mnist(steps, seed, fc1_bias=-4.0)


# ---------------------------------------------------------------------------------------------
# Conv1d with 12 of its 16 channels forced dead (their bias far below any input)


class Conv1dNet(nn.Module):
    def __init__(self, dead: int = 0) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv1d(16, 16, 5, padding=2)
        self.head = nn.Linear(16, 4)
        with torch.no_grad():
            self.conv1.bias[:dead] = -10.0

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.conv1(x))          # (B, 16, L)
        x = F.relu(self.conv2(x))
        return self.head(x.amax(dim=2))


def _conv1d(steps: int, seed: int, dead: int = 0) -> Records:
    torch.manual_seed(seed)
    model = Conv1dNet(dead)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    draw = signal_batches(32, seed + 1)
    mon = monitor(model, opt, steps)
    for _ in range(steps):
        x, y = draw()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(loss)
    return mon.close()


def conv1d_adam(steps: int, seed: int) -> Records:
    return _conv1d(steps, seed)


def conv1d_12_of_16_dead(steps: int, seed: int) -> Records:
    return _conv1d(steps, seed, dead=12)


# ---------------------------------------------------------------------------------------------
# recurrent nets: a two-layer tanh nn.RNN language model; a tanh RNN classifier of whole sequences


class RNNLM(nn.Module):
    def __init__(self, emb_scale: float = 1.0, cell: str = "rnn") -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 24)
        rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(24, 64, num_layers=2, batch_first=True)
        self.head = nn.Linear(64, VOCAB)
        with torch.no_grad():
            self.emb.weight.mul_(emb_scale)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(self.emb(x))     # (B, T, H)
        return self.head(out)              # (B, T, V)


def _rnn_lm(steps: int, seed: int, emb_scale: float = 1.0, cell: str = "rnn") -> Records:
    torch.manual_seed(seed)
    model = RNNLM(emb_scale, cell)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    draw = stream_batches(16, 32, seed + 1)
    mon = monitor(model, opt, steps)
    for _ in range(steps):
        x, y = draw()
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, VOCAB), y.view(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        mon.step(loss)
    return mon.close()


def rnn_tanh_lm(steps: int, seed: int) -> Records:
    return _rnn_lm(steps, seed)


def rnn_tanh_first_layer_saturated(steps: int, seed: int) -> Records:
    return _rnn_lm(steps, seed, emb_scale=20.0)


def gru_lm(steps: int, seed: int) -> Records:
    return _rnn_lm(steps, seed, cell="gru")


class SeqClassifier(nn.Module):
    """Reads a sequence one sample at a time and classifies it from the last hidden state."""

    def __init__(self, nonlinearity: str = "tanh", hh_gain: float | None = None, identity: bool = False) -> None:
        super().__init__()
        self.rnn = nn.RNN(1, 48, nonlinearity=nonlinearity, batch_first=True)
        self.head = nn.Linear(48, 4)
        with torch.no_grad():
            if identity:  # the IRNN of Le et al. (2015): identity recurrence, zero biases
                self.rnn.weight_hh_l0.copy_(torch.eye(48))
                self.rnn.bias_ih_l0.zero_()
                self.rnn.bias_hh_l0.zero_()
            if hh_gain is not None:
                self.rnn.weight_hh_l0.mul_(hh_gain)

    def forward(self, x: Tensor) -> Tensor:
        out, h = self.rnn(x.transpose(1, 2))   # x (B, 1, L) -> (B, L, 1)
        return self.head(h[-1])


def _seq(steps: int, seed: int, clip: float | None = 1.0, **kw: object) -> Records:
    torch.manual_seed(seed)
    model = SeqClassifier(**kw)  # type: ignore[arg-type]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    draw = memory_batches(32, seed + 1, length=12)
    mon = monitor(model, opt, steps)
    for _ in range(steps):
        x, y = draw()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        mon.step(loss)
    return mon.close()


def rnn_seq_classifier(steps: int, seed: int) -> Records:
    return _seq(steps, seed)


def rnn_seq_small_recurrent_gain(steps: int, seed: int) -> Records:
    return _seq(steps, seed, hh_gain=0.05)


def irnn_identity_times_1_3(steps: int, seed: int) -> Records:
    return _seq(steps, seed, nonlinearity="relu", identity=True, hh_gain=1.3)


# ---------------------------------------------------------------------------------------------
# MLPs: GELU as a module, BatchNorm at batch 16, GradScaler's skipped steps, frozen embedding with
# two losses, a learning rate far too high


class GeluMLP(nn.Module):
    def __init__(self, norm: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 12)
        layers: list[nn.Module] = [nn.Linear(36, 128, bias=not norm)]
        layers += [nn.BatchNorm1d(128), nn.Tanh()] if norm else [nn.GELU()]
        layers += [nn.Linear(128, 128, bias=not norm)] + ([nn.BatchNorm1d(128), nn.Tanh()] if norm else [nn.GELU()])
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(128, VOCAB)
        self.aux = nn.Linear(128, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(self.emb(x).flatten(1))
        return self.out(h), self.aux(h).squeeze(1)


def _mlp(steps: int, seed: int, batch: int = 64, norm: bool = False, lr: float = 3e-3, scaler_init: float | None = None,
         frozen_emb: bool = False, two_losses: bool = False) -> Records:
    torch.manual_seed(seed)
    model = GeluMLP(norm)
    if frozen_emb:
        model.emb.weight.requires_grad_(False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    scaler = torch.amp.GradScaler("cpu", init_scale=scaler_init) if scaler_init else None
    draw = context_batches(3, batch, seed + 1)
    mon = monitor(model, opt, steps)
    for _ in range(steps):
        x, y = draw()
        with torch.autocast("cpu", dtype=torch.float16, enabled=scaler is not None):
            logits, aux = model(x)
            logits, aux = logits.float(), aux.float()
        loss = F.cross_entropy(logits, y)
        if two_losses:  # an auxiliary regression head: is the next character a vowel?
            loss = loss + 0.5 * F.mse_loss(aux, torch.isin(y, torch.tensor([1, 5, 9, 15, 21])).float())
        opt.zero_grad()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        mon.step(loss)
    return mon.close()


def gelu_mlp(steps: int, seed: int) -> Records:
    return _mlp(steps, seed)


def batchnorm_mlp_batch16(steps: int, seed: int) -> Records:
    return _mlp(steps, seed, batch=16, norm=True, lr=1e-3)


def gradscaler_skipped_steps(steps: int, seed: int) -> Records:
    return _mlp(steps, seed, scaler_init=2.0**24)  # float16: the first steps overflow and are skipped


def frozen_embedding_two_losses(steps: int, seed: int) -> Records:
    return _mlp(steps, seed, frozen_emb=True, two_losses=True)


def gelu_mlp_lr_far_too_high(steps: int, seed: int) -> Records:
    return _mlp(steps, seed, lr=1.0)


# ---------------------------------------------------------------------------------------------
# Hugging Face GPT-2 from a tiny config; initializer_range=1.0 makes the first logits huge


def _hf(steps: int, seed: int, initializer_range: float = 0.02) -> Records:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=32, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0,
                        initializer_range=initializer_range)
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    draw = sequence_batches(32, seed + 1)
    mon = monitor(model, opt, steps)
    for _ in range(steps):
        x, y, lengths = draw()
        mask = (torch.arange(x.size(1))[None, :] < lengths[:, None]).long()
        out = model(input_ids=x, attention_mask=mask, labels=torch.where(mask.bool(), x, -100))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        mon.step(out.loss)
    return mon.close()


def hf_gpt2(steps: int, seed: int) -> Records:
    return _hf(steps, seed)


def hf_gpt2_initializer_range_1(steps: int, seed: int) -> Records:
    return _hf(steps, seed, initializer_range=1.0)


CASES = [
    # healthy
    Case("mnist cnn (pytorch-examples), Adadelta lr 1.0", mnist_adadelta, steps=150),
    Case("conv1d F.relu, Adam", conv1d_adam),
    Case("rnn tanh 2-layer language model, Adam", rnn_tanh_lm),
    Case("gru 2-layer language model, Adam", gru_lm),
    Case("rnn tanh remembers its first input for 12 steps, Adam", rnn_seq_classifier),
    Case("mlp nn.GELU with an auxiliary output, Adam", gelu_mlp),
    Case("mlp BatchNorm + tanh at batch 16", batchnorm_mlp_batch16),
    Case("mlp GradScaler with skipped steps", gradscaler_skipped_steps),
    Case("mlp frozen embedding, two losses", frozen_embedding_two_losses),
    Case("hf transformers GPT-2, 1 layer", hf_gpt2),
    # faulty
    Case("mnist cnn fc1 bias -4: every F.relu unit dead", mnist_fc1_bias_dead, expect=("act.dead_units",), steps=150),
    Case("conv1d 12 of 16 channels dead", conv1d_12_of_16_dead, expect=("act.dead_units",)),
    Case("rnn tanh 2-layer, first layer saturated by a large embedding", rnn_tanh_first_layer_saturated, expect=("act.saturated",)),
    Case("rnn tanh memory task, recurrent weights x0.05", rnn_seq_small_recurrent_gain, expect=("grad.vanishing",)),
    Case("relu rnn (IRNN), recurrent weights 1.3 x identity", irnn_identity_times_1_3, expect=("grad.exploding",)),
    Case("mlp GELU, Adam lr 1.0", gelu_mlp_lr_far_too_high, expect_any=LR_HIGH),
    Case("hf transformers GPT-2, initializer_range 1.0", hf_gpt2_initializer_range_1, expect=("init.loss_too_high",)),
    # from the held-out set's first run
    Case("cnn2d pytorch-examples, Adadelta + StepLR", cnn2d_adadelta),
    Case("regression mlp torch.tanh, MSE", regression_mse),
    Case("cnn2d pytorch-examples, Adadelta lr 200", cnn2d_adadelta_lr_too_high, expect_any=LR_HIGH),
    Case("cnn1d forgot optimizer.zero_grad()", cnn1d_forgot_zero_grad, expect_any=LR_HIGH),
    Case("resnet SGD lr 8", resnet_lr_too_high, expect_any=LR_HIGH, steps=150),
    Case("regression mlp torch.tanh, weights N(0, 1)", regression_tanh_init_std_1, expect=("act.saturated",)),
    # from the held-out set's second run
    Case("lenet-5, SGD momentum", lenet_sgd),
    Case("lenet-5, SGD lr 2.0", lenet_sgd_lr_too_high, expect_any=LR_HIGH),
    Case("hf transformers GPT-2, AdamW lr 0.3", hf_gpt2_lr_too_high, expect_any=LR_HIGH),
    Case("gpt AdamW lr 100x too low", gpt_lr_100x_too_low, expect=("update.too_small",)),
    # from the held-out set's third run
    Case("tabular mlp on raw inputs in the thousands (not standardized)", tabular_inputs_not_standardized,
         expect=("init.loss_too_high",)),
    Case("deep sigmoid mlp, 8 layers, default init, SGD momentum", deep_sigmoid_mlp, expect=("grad.vanishing",)),
    # from the held-out set's fourth run
    Case("hf transformers T5 (tiny random config) reversing names, AdamW + warm-up", t5_reverse_names),
    Case("relu mlp 8 x 512, weights N(0, 0.1) by hand (ReLU's gain asks for 0.0625)", relu_mlp_init_std_by_hand,
         expect=("grad.exploding",)),
]
