"""The monitor's and the integrations' cheap paths record exactly what the slow ways record: the
monitor's own measurements outside the function mode against the same run with the mode left on;
the function mode off after the first recording (a model with no activation called as a function)
against the mode on at every recording;
a step's histograms counted in one batch, and the non-finite flags read on the host, against each
summary taken on its own; the losses against a host read of every step's loss; one TensorBoard
event per step against one event per value; TensorBoard's record checksums computed in C against
its own; a single micro-batch's loss against the stacked sum or mean."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from makemore.diagnostics import Monitor, run_checks
from makemore.diagnostics.integrations.common import Budget, Watch, step_loss

# -- models in several styles: modules, functional activations, convolutions, recurrence, attention


class ConvNet(nn.Module):
    """1-d convolutions with F.relu and F.gelu called in forward, BatchNorm, a pooled head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn = nn.Conv1d(3, 8, 3, padding=1), nn.BatchNorm1d(8)
        self.conv2, self.fc = nn.Conv1d(8, 8, 3, padding=1), nn.Linear(8, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn(self.conv1(x)))  # (B, 8, L)
        h = F.gelu(self.conv2(h))
        return self.fc(h.mean(-1))  # (B, 4)


class TinyGPT(nn.Module):
    """One attention block (softmax in forward), a GELU MLP and an output tied to the embedding."""

    def __init__(self, vocab: int = 11, d: int = 16) -> None:
        super().__init__()
        self.emb, self.ln = nn.Embedding(vocab, d), nn.LayerNorm(d)
        self.qkv, self.fc, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.act = nn.GELU()

    def forward(self, idx: Tensor) -> Tensor:
        x = self.emb(idx)  # (B, T, d)
        q, k, v = self.qkv(self.ln(x)).chunk(3, -1)
        T = idx.shape[1]
        att = (q @ k.transpose(1, 2)) / q.shape[-1] ** 0.5 + torch.full((T, T), float("-inf")).triu(1)
        x = x + F.softmax(att, -1) @ v
        x = x + self.proj(self.act(self.fc(x)))
        return (x @ self.emb.weight.T).reshape(-1, self.emb.num_embeddings)  # (B*T, vocab)


class GRUModel(nn.Module):
    def __init__(self, vocab: int = 11) -> None:
        super().__init__()
        self.emb, self.rnn, self.out = nn.Embedding(vocab, 8), nn.GRU(8, 12, num_layers=2, batch_first=True), nn.Linear(12, vocab)

    def forward(self, idx: Tensor) -> Tensor:
        return self.out(self.rnn(self.emb(idx))[0]).reshape(-1, self.out.out_features)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Linear(16, 5))


def draws(name: str) -> Callable[[int], tuple[Tensor, Tensor]]:
    def draw(step: int) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(step)
        if name == "conv":
            return torch.randn(16, 3, 10, generator=g), torch.randint(0, 4, (16,), generator=g)
        if name in ("gpt", "gru"):
            idx = torch.randint(0, 11, (8, 7), generator=g)
            return idx, idx.roll(-1, 1).reshape(-1)
        return torch.randn(32, 6, generator=g) * 2, torch.randint(0, 5, (32,), generator=g)

    return draw


MODELS: dict[str, Callable[[], nn.Module]] = {"mlp": mlp, "conv": ConvNet, "gpt": TinyGPT, "gru": GRUModel}


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> Tensor:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def monitored_run(name: str, steps: int = 10, every: int = 3, poison: int | None = None,
                  optimizer: type[torch.optim.Optimizer] = torch.optim.Adam) -> tuple[str, list[str], list[float]]:
    """(the records as JSON, the findings, each step's loss read on the host); `poison`: the step
    whose first input is Inf, for the models of real-valued inputs (non-finite outputs, gradients
    and weights from there on)."""
    torch.manual_seed(0)
    model = MODELS[name]()
    opt = optimizer(model.parameters(), lr=3e-3)
    mon, draw, losses = Monitor(model, opt, every=every), draws(name), []
    for step in range(steps):
        x, y = draw(step)
        if step == poison:
            x = x.clone()
            x.view(-1)[0] = math.inf
        loss = train_step(model, opt, x, y)
        mon.step(loss)
        losses.append(loss.item())
    records = mon.close()
    findings = [json.dumps(f.to_dict(), sort_keys=True) for f in run_checks(records)]
    return json.dumps(records.to_dict(), sort_keys=True), findings, losses


@contextlib.contextmanager
def mode_left_on(self: Monitor) -> Iterator[None]:
    """The slow way: the monitor's own torch calls go through the function mode, which ignores them."""
    busy, self._busy = self._busy, True
    try:
        yield
    finally:
        self._busy = busy


@pytest.mark.parametrize("name", list(MODELS))
def test_own_measurements_outside_the_function_mode_record_the_same(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = monitored_run(name)
    monkeypatch.setattr(Monitor, "_own_work", mode_left_on)
    slow = monitored_run(name)
    assert fast[0] == slow[0]  # every recorded number, to the bit
    assert fast[1] == slow[1]
    records = json.loads(fast[0])
    assert [s["step"] for s in records["steps"]] == [0, 3, 6, 9]
    assert any(s["acts"] for s in records["steps"]) and any(s["grads"] for s in records["steps"])
    if name == "conv":  # the functional activations were seen (the mode was on for the model's calls)
        assert {"bn.relu", "conv2.gelu"} <= set(records["steps"][0]["acts"])
    if name == "gpt":
        assert any(k.endswith("softmax") for k in records["steps"][0]["acts"])


@pytest.mark.parametrize("name", list(MODELS))
def test_function_mode_off_after_the_first_recording_records_the_same(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = monitored_run(name, steps=13)
    monkeypatch.setattr(Monitor, "_tap_always", True)
    slow = monitored_run(name, steps=13)
    assert fast == slow  # every recorded number, to the bit, the findings and the losses


@pytest.mark.parametrize("name, stays_on", [("mlp", False), ("gru", False), ("conv", True), ("gpt", True)])
def test_function_mode_stays_on_only_for_activations_called_as_functions(name: str, stays_on: bool) -> None:
    torch.manual_seed(0)
    model = MODELS[name]()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    mon, draw = Monitor(model, opt, every=2), draws(name)
    seen = []
    for step in range(5):
        train_step(model, opt, *draw(step))
        seen.append(mon._tap_needed)  # before the step's Monitor.step: what this recording step had
        mon.step(torch.tensor(1.0))
    assert seen[0] is True and seen[2:] == [stays_on] * 3
    assert mon.records.n_classes == (4 if name == "conv" else 5 if name == "mlp" else 11)


@pytest.mark.parametrize("name", list(MODELS))
def test_histograms_counted_in_one_batch_record_the_same(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = {}
    for batched in (True, False):
        monkeypatch.setattr(Monitor, "_batched", batched)
        # the records and findings (NaN losses compare unequal in a list, not in JSON text)
        poison = 3 if name in ("mlp", "conv") else None
        runs[batched] = [monitored_run(name)[:2], monitored_run(name, steps=7, poison=poison, optimizer=torch.optim.SGD)[:2]]
    assert runs[True] == runs[False]  # every recorded number, to the bit, and the findings
    records = json.loads(runs[True][0][0])
    assert all(sum(a["hist"]["counts"]) > 0 for s in records["steps"] for a in s["acts"].values())
    if name in ("mlp", "conv"):  # the Inf input reached the outputs and gradients that the flags mark
        poisoned = json.loads(runs[True][1][0])["steps"][1]
        assert poisoned["step"] == 3 and any(a["nonfinite"] for a in poisoned["acts"].values())


@pytest.mark.parametrize("name", ["mlp", "gpt"])
def test_recorded_losses_are_each_steps_loss_read_on_the_host(name: str) -> None:
    records, _, losses = monitored_run(name, steps=11, every=4)
    assert json.loads(records)["losses"] == losses  # exactly: float32 values, read once per recording


def test_losses_of_other_dtypes_and_plain_numbers() -> None:
    mon = Monitor(nn.Linear(2, 2), every=100)
    third = torch.tensor(1 / 3, dtype=torch.float64)
    for v in (torch.tensor(2.5, dtype=torch.bfloat16), torch.tensor(-0.125, dtype=torch.bfloat16)):
        mon.step(v)
    assert mon.flush().losses == [2.5, -0.125]
    mon.step(third)
    assert mon.flush().losses[2:] == [third.float().item()]
    for v in (torch.tensor(0.75), 0.5, None, torch.tensor([1.25]), third):  # mixed: each converted on its own
        mon.step(v)  # type: ignore[arg-type]
    got = mon.close().losses[3:]
    assert got[:2] == [0.75, 0.5] and got[2] != got[2] and got[3:] == [1.25, third.float().item()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_step_loss_equals_the_stacked_sum_and_mean(dtype: torch.dtype) -> None:
    one = [torch.tensor(2.123456789, dtype=dtype)]
    many = [torch.tensor(x, dtype=dtype) for x in (0.1, 0.2, 0.3)]
    for losses in (one, many):
        stacked = torch.stack(losses).float()
        assert torch.equal(step_loss(losses, "sum"), stacked.sum())
        assert torch.equal(step_loss(losses, "mean"), stacked.mean())
    assert step_loss([], "sum") is None


def test_tensorboard_one_event_per_step_holds_what_one_event_per_value_holds(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from makemore.diagnostics.integrations.common import finding_scalars, findings_text
    from makemore.diagnostics.integrations.tensorboard import PREFIX, TensorBoardWriter

    monkeypatch.setattr(Budget, "due", lambda self: True)  # both watches check at every recording
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 5))
    with torch.no_grad():
        model[0].weight.mul_(8)  # saturated: a finding, as text and as a scalar
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    mon, draw = Monitor(model, opt, every=4), draws("mlp")
    fast = TensorBoardWriter(tmp_path / "fast", loss_every=3)
    ref, watch, loss_upto = SummaryWriter(str(tmp_path / "slow")), None, 0
    # the reference: the same content through add_scalar / add_histogram_raw / add_text, one event each
    for step in range(10):
        mon.step(train_step(model, opt, *draw(step)))
        final = step == 9
        up = fast.update(mon, final=final)
        watch = watch or Watch(mon)
        up_ref = watch.poll(final=final)
        assert (up is None) == (up_ref is None)
        if up_ref is None:
            continue
        r = mon.records
        end = len(r.losses) if final else len(r.losses) - len(r.losses) % 3
        for i in range(loss_upto, end, 3):
            block = r.losses[i : min(i + 3, end)]
            ref.add_scalar(f"{PREFIX}/loss", sum(block) / len(block), r.first_step + i + len(block) - 1)
        loss_upto = end
        for rec, scalars in zip(up_ref.records, up_ref.scalars):
            for tag, value in scalars.items():
                ref.add_scalar(tag, value, rec.step)
            for name, a in rec.acts.items():
                h = a.hist
                ref.add_histogram_raw(f"{PREFIX}/act_hist/{name}", h.lo, h.hi, sum(h.counts), a.mean * sum(h.counts),
                                      (a.std**2 + a.mean**2) * sum(h.counts), h.edges()[1:], h.counts, rec.step)
        for tag, value in finding_scalars(up_ref.findings).items():
            ref.add_scalar(tag, value, up_ref.step)
        if up_ref.new or final:
            ref.add_text(f"{PREFIX}/findings", findings_text(up_ref.findings), up_ref.step)
    fast.close()
    ref.close()

    def read(d: Path) -> EventAccumulator:
        ea = EventAccumulator(str(d), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
        ea.Reload()
        return ea

    a, b = read(tmp_path / "fast"), read(tmp_path / "slow")
    assert set(b.Tags()["scalars"]) == set(a.Tags()["scalars"]) and "doctor/finding/act.saturated" in b.Tags()["scalars"]
    for tag in b.Tags()["scalars"]:
        assert [(e.step, e.value) for e in a.Scalars(tag)] == [(e.step, e.value) for e in b.Scalars(tag)], tag
    assert set(b.Tags()["histograms"]) <= set(a.Tags()["histograms"])
    for tag in b.Tags()["histograms"]:
        assert [(e.step, e.histogram_value) for e in a.Histograms(tag)] == [(e.step, e.histogram_value) for e in b.Histograms(tag)]
    texts = "doctor/findings/text_summary"
    assert [(e.step, e.tensor_proto) for e in a.Tensors(texts)] == [(e.step, e.tensor_proto) for e in b.Tensors(texts)]


def test_tensorboard_checksums_in_c_equal_its_own() -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("google_crc32c")
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference
    from tensorboard.summary.writer import record_writer

    from makemore.diagnostics.integrations.tensorboard import masked_crc32c, use_fast_checksums

    g = torch.Generator().manual_seed(0)
    for n in (0, 1, 3, 8, 12, 255, 20_000):
        data = bytes(torch.randint(0, 256, (n,), generator=g, dtype=torch.uint8).tolist())
        assert masked_crc32c(data) == reference(data), n
    assert use_fast_checksums() and record_writer.masked_crc32c is masked_crc32c
