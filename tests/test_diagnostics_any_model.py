"""The monitor on models and loops this project did not write: functional activations, outputs of
any type, channel axes, recurrent layers, smooth activations, BatchNorm at small batches, and the
training loops people write (accumulation, GradScaler, warm-up, frozen and tied weights, several
parameter groups and losses, no optimizer)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from makemore.diagnostics import Monitor, run_checks
from makemore.diagnostics.recurrent import unroll
from makemore.diagnostics.stats import batchnorm_noise


def fit(model: nn.Module, opt: torch.optim.Optimizer | None, draw, steps: int, every: int = 5, loss_fn=F.cross_entropy,
        **kw: object) -> Monitor:
    mon = Monitor(model, opt, every=every, **kw)  # type: ignore[arg-type]
    for _ in range(steps):
        x, y = draw()
        loss = loss_fn(model(x), y)
        if opt is not None:
            opt.zero_grad()
        loss.backward()
        if opt is not None:
            opt.step()
        mon.step(loss)
    mon.close()
    return mon


def gaussian(n_in: int, classes: int, batch: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_in, classes, generator=g)

    def draw() -> tuple[Tensor, Tensor]:
        x = torch.randn(batch, n_in, generator=g)
        return x, (x @ w).argmax(1)

    return draw


def codes(mon: Monitor) -> dict[str, str]:
    return {f.code: f.where for f in run_checks(mon.records) if f.severity != "info"}


# -- functional activations -------------------------------------------------------------------------


class FunctionalNet(nn.Module):
    def __init__(self, bias: float = 0.0) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(10, 32), nn.Linear(32, 4)
        nn.init.constant_(self.fc1.bias, bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(x)))  # the activation is a function call, not a module


def test_a_dead_functional_relu_layer_is_found() -> None:
    torch.manual_seed(0)
    model = FunctionalNet(bias=-4.0)  # fc1's pre-activations are about -4 +- 0.6: every unit dead
    mon = fit(model, torch.optim.Adam(model.parameters(), 1e-3), gaussian(10, 4), 30)
    info = mon.records.module("fc1.relu")
    assert info is not None and info.kind == "ReLU" and info.units == 32
    assert codes(mon).get("act.dead_units") == "fc1.relu"
    # the recorded fraction against the reference: every output of F.relu was zero
    assert mon.records.steps[0].acts["fc1.relu"].zero == 1.0


def test_a_healthy_functional_relu_net_records_its_activation_and_stays_quiet() -> None:
    torch.manual_seed(0)
    model = FunctionalNet()
    mon = fit(model, torch.optim.Adam(model.parameters(), 3e-3), gaussian(10, 4), 60)
    x, _ = gaussian(10, 4, seed=99)()
    assert "fc1.relu" in mon.records.steps[0].acts and codes(mon) == {}
    assert mon.records.n_classes == 4  # read from F.cross_entropy's input


def test_the_function_mode_is_on_only_during_recording_steps() -> None:
    model = FunctionalNet()
    mon = Monitor(model, None, every=3)
    stack = torch.overrides._get_current_function_mode_stack
    seen = []
    for step in range(4):
        out = model(torch.randn(8, 10))
        seen.append(len(stack()))
        F.cross_entropy(out, torch.zeros(8, dtype=torch.long)).backward()
        mon.step(0.0)
    assert seen == [1, 0, 0, 1] and len(stack()) == 0
    mon.close()


# -- outputs of any type; classes from the loss -------------------------------------------------------


def test_init_loss_too_high_on_a_hugging_face_model_output() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=27, n_positions=8, n_embd=16, n_layer=1, n_head=2, bos_token_id=0,
                                  eos_token_id=0, initializer_range=1.0)
    model = transformers.GPT2LMHeadModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    mon = Monitor(model, opt, every=5)
    for _ in range(3):
        ids = torch.randint(0, 27, (4, 8))
        out = model(input_ids=ids, labels=ids)  # a CausalLMOutputWithCrossAttentions, not a tensor
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        mon.step(out.loss)
    r = mon.close()
    assert r.n_classes == 27 and r.init_loss == pytest.approx(r.losses[0], rel=1e-5)
    assert "init.loss_too_high" in codes(mon) and r.losses[0] > 2 * math.log(27)


def test_regression_turns_the_step0_loss_check_off() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))
    g = torch.Generator().manual_seed(0)
    draw = lambda: (lambda x: (x, 10 * x[:, :3]))(torch.randn(32, 5, generator=g))  # noqa: E731
    mon = fit(model, torch.optim.Adam(model.parameters(), 1e-3), draw, 5, loss_fn=F.mse_loss)
    assert mon.records.n_classes == 0 and mon.records.losses[0] > 10 and "init.loss_too_high" not in codes(mon)


def test_dict_and_dataclass_outputs_are_recorded() -> None:
    class Heads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Linear(6, 8)
            self.pair = nn.Linear(8, 8)

        def forward(self, x: Tensor) -> dict[str, Tensor]:
            h = torch.tanh(self.body(x))
            return {"logits": self.pair(h), "aux": h.mean(1)}

    model = Heads()
    mon = Monitor(model, None, every=1)
    out = model(torch.randn(4, 6))
    F.cross_entropy(out["logits"], torch.zeros(4, dtype=torch.long)).backward()
    mon.step(0.0)
    r = mon.close()
    assert {"body", "body.tanh", "pair"} <= set(r.steps[0].acts) and r.n_classes == 8


# -- the unit axis comes from the op that produced the tensor ------------------------------------------


class Conv1dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 16, 3, padding=1)
        self.head = nn.Linear(16, 3)
        with torch.no_grad():
            self.conv.bias[:12] = -10.0  # 12 of 16 channels can never be positive

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.conv(x))       # (B, 16, L): channels on axis 1, not the last
        return self.head(h.amax(2))


def test_conv1d_channels_are_the_units() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    draw = lambda: (torch.randn(16, 2, 20, generator=g), torch.randint(0, 3, (16,), generator=g))  # noqa: E731
    model = Conv1dNet()
    mon = fit(model, torch.optim.SGD(model.parameters(), 0.01), draw, 10)
    info = mon.records.module("conv.relu")
    assert info is not None and info.units == 16
    dead = [f for f in run_checks(mon.records) if f.code == "act.dead_units"]
    assert dead and "12 of 16 units" in dead[0].evidence


# -- recurrent networks --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [nn.RNN, nn.GRU, nn.LSTM])
def test_the_step_by_step_layer_equals_the_fused_one_in_float64(cls: type[nn.RNNBase]) -> None:
    torch.manual_seed(0)
    m = cls(3, 5, num_layers=2, batch_first=True).double()
    x = torch.randn(4, 6, 3, dtype=torch.double)
    packed = pack_padded_sequence(x, torch.tensor([6, 2, 4, 1]), batch_first=True, enforce_sorted=False)
    for args in ((x,), (packed,)):
        ref, got = m(*args), unroll(m, args, {}, [])
        ref_out, got_out = (ref[0].data, got[0].data) if args[0] is packed else (ref[0], got[0])
        torch.testing.assert_close(got_out, ref_out, rtol=0, atol=1e-12)
        ref_h, got_h = (ref[1][0], got[1][0]) if cls is nn.LSTM else (ref[1], got[1])
        torch.testing.assert_close(got_h, ref_h, rtol=0, atol=1e-12)


class PackedLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.lstm = nn.LSTM(8, 12, num_layers=2)
        self.out = nn.Linear(12, 10)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(self.emb(x), lengths, enforce_sorted=False)
        return self.out(self.lstm(packed)[0].data)


def test_a_packed_lstm_is_recorded_layer_by_layer() -> None:
    torch.manual_seed(0)
    model = PackedLSTM()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    mon = Monitor(model, opt, every=1)
    lengths = torch.tensor([5, 3, 4, 2])
    x = torch.randint(0, 10, (5, 4))
    target = pack_padded_sequence(torch.randint(0, 10, (5, 4)), lengths, enforce_sorted=False).data
    loss = F.cross_entropy(model(x, lengths), target)
    loss.backward()
    opt.step()
    mon.step(loss)
    rec = mon.close().steps[0]
    assert {"lstm", "lstm.layer0", "lstm.layer1", "lstm.layer0.gates"} <= set(rec.acts)
    assert rec.acts["lstm.layer0"].rows == int(lengths.sum())  # every time step of every sequence
    assert set(rec.time) == {"lstm.layer0", "lstm.layer1"} and len(rec.time["lstm.layer1"].grad_rms) == 5
    assert rec.params["lstm.weight_hh_l0"].update_ratio is not None


class MemoryRNN(nn.Module):
    def __init__(self, gain: float) -> None:
        super().__init__()
        self.rnn = nn.RNN(1, 32, batch_first=True)
        self.head = nn.Linear(32, 4)
        with torch.no_grad():
            self.rnn.weight_hh_l0.mul_(gain)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x)[1][-1])  # the class from the last hidden state


def memory_task(seed: int = 0):
    g = torch.Generator().manual_seed(seed)

    def draw() -> tuple[Tensor, Tensor]:
        y = torch.randint(0, 4, (32,), generator=g)
        x = 0.2 * torch.randn(32, 12, 1, generator=g)
        x[:, 0, 0] = y.float() - 1.5  # the class is in the first input only
        return x, y

    return draw


def test_vanishing_through_time_in_a_tanh_rnn_with_a_small_recurrent_gain() -> None:
    torch.manual_seed(0)
    small = MemoryRNN(gain=0.05)
    mon = fit(small, torch.optim.Adam(small.parameters(), 1e-3), memory_task(), 11)
    found = [f for f in run_checks(mon.records) if f.code == "grad.vanishing"]
    assert found and found[0].where == "rnn.layer0" and "through time" in found[0].evidence
    torch.manual_seed(0)
    default = MemoryRNN(gain=1.0)
    mon = fit(default, torch.optim.Adam(default.parameters(), 1e-3), memory_task(), 11)
    assert not [f for f in run_checks(mon.records) if f.code.startswith("grad.")]


# -- smooth activations --------------------------------------------------------------------------------


@pytest.mark.parametrize("functional", [False, True])
def test_gelu_below_zero_is_inactive_not_dead(functional: bool) -> None:
    class Net(nn.Module):
        def __init__(self, bias: float) -> None:
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(10, 32), nn.GELU(), nn.Linear(32, 4)
            nn.init.constant_(self.fc1.bias, bias)

        def forward(self, x: Tensor) -> Tensor:
            h = self.fc1(x)
            return self.fc2(F.gelu(h) if functional else self.act(h))

    name = "fc1.gelu" if functional else "act"
    torch.manual_seed(0)
    negative = Net(bias=-1.5)  # every output below zero, yet GELU's slope there is about -0.1: it learns
    mon = fit(negative, torch.optim.Adam(negative.parameters(), 1e-3), gaussian(10, 4), 10)
    a = mon.records.steps[0].acts[name]
    assert mon.records.module(name).role == "smooth" and a.inactive is not None and a.inactive < 0.5
    assert "act.dead_units" not in codes(mon)
    torch.manual_seed(0)
    sunk = Net(bias=-12.0)  # slope below 1e-20: dead
    mon = fit(sunk, torch.optim.Adam(sunk.parameters(), 1e-3), gaussian(10, 4), 10)
    assert codes(mon).get("act.dead_units") == name


# -- BatchNorm at a small batch --------------------------------------------------------------------------


def test_batchnorm_noise_of_a_gaussian_batch_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 64, generator=g)  # 64 channels of 4096 rows: sqrt(1.5 / 4096)
    assert batchnorm_noise(x).item() == pytest.approx(math.sqrt(1.5 / 4096), rel=0.05)
    img = torch.randn(16, 8, 1, 1, generator=g).expand(16, 8, 5, 5)  # 25 identical positions: 16 rows, not 400
    assert batchnorm_noise(img).item() == pytest.approx(batchnorm_noise(img[:, :, 0, 0]).item(), rel=1e-4)


def test_a_healthy_batchnorm_mlp_at_batch_16_is_quiet() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 64, bias=False), nn.BatchNorm1d(64), nn.Tanh(), nn.Linear(64, 4))
    mon = fit(model, torch.optim.Adam(model.parameters(), 1e-3), gaussian(10, 4, batch=16), 160, every=20)
    last = mon.records.steps[-1].norms["1"]
    assert last.noise == pytest.approx(math.sqrt(1.5 / 16), rel=0.5)  # the batch's own sampling noise
    assert codes(mon) == {}


# -- training loops as people write them ---------------------------------------------------------------


def test_gradient_accumulation_records_one_step_per_optimizer_step() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    draw = gaussian(10, 4)
    mon = Monitor(model, opt, every=2)
    ref = {}
    for step in range(4):
        w0 = model[0].weight.detach().clone()
        for _ in range(3):  # three backward passes per optimizer step
            x, y = draw()
            (F.cross_entropy(model(x), y) / 3).backward()
        grad_rms = model[0].weight.grad.square().mean().sqrt().item()
        opt.step()
        opt.zero_grad()
        mon.step(0.0)
        ref[step] = ((model[0].weight.detach() - w0).std() / w0.std()).item(), grad_rms  # by hand
    r = mon.close()
    assert [s.step for s in r.steps] == [0, 2]
    for s in r.steps:  # the accumulated gradient and the update the optimizer made from it
        assert s.params["0.weight"].update_ratio == pytest.approx(ref[s.step][0], rel=1e-4)
        assert s.params["0.weight"].grad_rms == pytest.approx(ref[s.step][1], rel=1e-4)


def test_gradscaler_skipped_steps_are_not_exploding() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    # float16 overflows past 65504: with the scale at 2^24 the first backward passes make Inf, the
    # scaler skips those steps and halves its scale until the gradients fit
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24)
    draw = gaussian(10, 32)
    mon = Monitor(model, opt, every=1)
    for _ in range(12):
        x, y = draw()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        mon.step(loss)
    r = mon.close()
    assert r.steps[0].skipped and not r.steps[-1].skipped
    assert any(g.nonfinite for g in r.steps[0].grads.values())  # Inf reached the layers on the skipped step
    assert "grad.exploding" not in codes(mon)


def test_warm_up_frozen_tied_param_groups_and_two_losses() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(27, 16)
            self.frozen = nn.Linear(16, 16)
            self.hidden = nn.Linear(16, 16)
            self.out = nn.Linear(16, 27, bias=False)
            self.out.weight = self.emb.weight  # tied
            self.aux = nn.Linear(16, 1)
            self.frozen.requires_grad_(False)
            nn.init.normal_(self.emb.weight, std=0.02)

        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
            h = F.silu(self.hidden(self.frozen(self.emb(x))))
            return self.out(h), self.aux(h).squeeze(1)

    torch.manual_seed(0)
    model = Tied()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in trainable if p.dim() >= 2], "weight_decay": 0.1},
                             {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0}], lr=3e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20))  # warm-up over 20 steps
    mon = Monitor(model, opt, every=5)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        x = torch.randint(0, 27, (64,), generator=g)
        y = (x + 1) % 27
        logits, aux = model(x)
        ce = F.cross_entropy(logits, y)
        loss = ce + 3.0 * F.mse_loss(aux, torch.ones_like(aux))  # two losses: the sum is not ~ln 27
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        mon.step(loss)
    r = mon.close()
    assert r.init_loss == pytest.approx(math.log(27), abs=0.05) and r.losses[0] > r.init_loss + 1
    assert r.steps[0].lr == pytest.approx(3e-3 / 20) and r.steps[-1].lr == pytest.approx(3e-3)
    assert "emb.weight" in r.matrices and "frozen.weight" not in r.matrices  # tied counted once, frozen not at all
    assert "frozen.weight" not in r.steps[0].params
    assert codes(mon) == {}


def test_manual_sgd_without_an_optimizer_measures_the_true_update() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 4))
    mon = Monitor(model, None, every=1)
    x, y = gaussian(10, 4)()
    loss = F.cross_entropy(model(x), y)
    for p in model.parameters():
        p.grad = None
    loss.backward()
    w0 = model[0].weight.detach().clone()
    for p in model.parameters():
        p.data += -0.1 * p.grad
    mon.step(loss)
    r = mon.close()
    ref = ((model[0].weight.detach() - w0).std() / w0.std()).item()
    assert r.steps[0].params["0.weight"].update_ratio == pytest.approx(ref, rel=1e-5)
