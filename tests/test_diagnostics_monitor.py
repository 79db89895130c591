"""The Monitor on a user's own nn.Sequential (no makemore model), with several optimizers: the
recorded numbers against a reference computed beside it, hooks removed cleanly, no growth."""

from __future__ import annotations

import gc
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from makemore.diagnostics import Monitor
from makemore.diagnostics import monitor as monitor_module


def user_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Dropout(0.0),
                         nn.BatchNorm1d(16), nn.Linear(16, 5))


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    return torch.randn(64, 6, generator=g) * 2, torch.randint(0, 5, (64,), generator=g)


OPTIMIZERS = {
    "sgd-momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2),
    "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=1e-3),
}


def train(model: nn.Module, opt: torch.optim.Optimizer, mon: Monitor, steps: range) -> None:
    for step in steps:
        x, y = batch(step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(loss)


def hooks_left(model: nn.Module, opt: torch.optim.Optimizer) -> int:
    n = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())
    n += sum(len(p._post_accumulate_grad_hooks or {}) for p in model.parameters())
    return n + len(opt._optimizer_step_pre_hooks) + len(opt._optimizer_step_post_hooks)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_recorded_numbers_match_a_reference(opt_name: str) -> None:
    model = user_model()
    opt = OPTIMIZERS[opt_name](model.parameters())
    ref: dict[str, torch.Tensor] = {}

    def tap(name: str):  # registered before the monitor's hooks, so they see the same tensors
        def hook(m: nn.Module, a: object, out: torch.Tensor) -> None:
            if name not in ref:
                ref[name] = out.detach().clone()
                out.register_hook(lambda g: ref.update({name + "_grad": g.clone()}))
        return hook

    model[1].register_forward_hook(tap("tanh"))
    model[3].register_forward_hook(tap("relu"))
    model[5].register_forward_pre_hook(lambda m, a: None if "bn_in" in ref else ref.update(bn_in=a[0].detach().clone()))
    mon = Monitor(model, opt, every=5)
    losses = []
    for step in range(12):
        x, y = batch(step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            ref["w_grad"] = model[0].weight.grad.clone()
            ref["w_before"] = model[0].weight.detach().clone()
        opt.step()
        if step == 0:
            ref["w_after"] = model[0].weight.detach().clone()
        mon.step(loss)
        losses.append(loss.item())
    r = mon.close()

    assert [s.step for s in r.steps] == [0, 5, 10]
    assert r.losses == pytest.approx(losses)
    assert r.n_classes == 5 and r.output_module == "6"
    assert [m.name for m in r.modules] == ["0", "1", "2", "3", "5", "6"]  # forward order, dropout skipped
    assert r.matrices == ["0.weight", "2.weight", "6.weight"]
    s0 = r.steps[0]
    t = ref["tanh"].double()
    a = s0.acts["1"]
    assert a.mean == pytest.approx(t.mean().item(), abs=1e-6)
    assert a.std == pytest.approx(t.std().item(), rel=1e-5)
    assert a.saturated == pytest.approx((t.abs() > 0.97).double().mean().item())
    assert a.unit_active == (t.abs() <= 0.97).sum(0).tolist()
    assert a.rows == 64 and sum(a.hist.counts) == t.numel()
    relu = ref["relu"]
    assert s0.acts["3"].zero == pytest.approx((relu <= 0).double().mean().item())
    assert s0.acts["3"].unit_active == (relu > 0).sum(0).tolist()
    g = ref["tanh_grad"].double()
    assert s0.grads["1"].std == pytest.approx(g.std().item(), rel=1e-5)
    wg = ref["w_grad"].double()
    p = s0.params["0.weight"]
    assert p.grad_std == pytest.approx(wg.std().item(), rel=1e-5)
    assert p.grad_rms == pytest.approx(wg.square().mean().sqrt().item(), rel=1e-5)
    before, after = ref["w_before"].double(), ref["w_after"].double()
    assert p.data_std == pytest.approx(before.std().item(), rel=1e-5)
    assert p.update_ratio == pytest.approx(((after - before).std() / before.std()).item(), rel=1e-4)
    assert p.grad_data_ratio == pytest.approx(wg.std().item() / before.std().item(), rel=1e-4)
    # BatchNorm at step 0: running statistics (0, 1) against the batch's
    xb = ref["bn_in"].double()
    s_b = (xb.var(0, unbiased=False) + 1e-5).sqrt()
    s_r = math.sqrt(1 + 1e-5)
    gap = ((1 - s_b / s_r).square() + (xb.mean(0) / s_r).square()).mean().sqrt().item()
    assert s0.norms["5"].mismatch == pytest.approx(gap, rel=1e-4) and s0.norms["5"].momentum == 0.1
    assert hooks_left(model, opt) == 3  # only the test's own taps


def test_no_hooks_between_recording_steps_or_after_close() -> None:
    model = user_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Monitor(model, opt, every=3) as mon:
        assert hooks_left(model, opt) > 0  # armed for step 0
        for step in range(7):
            train(model, opt, mon, range(step, step + 1))
            assert (hooks_left(model, opt) > 0) == ((step + 1) % 3 == 0)  # armed only for steps 3, 6
    assert hooks_left(model, opt) == 0
    with pytest.raises(RuntimeError):
        mon.step(1.0)


def test_one_device_to_host_transfer_per_recording_step(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = monitor_module._Transfer.fetch
    monkeypatch.setattr(monitor_module._Transfer, "fetch", lambda self: calls.append(1) or real(self))
    model = user_model()
    opt = torch.optim.Adam(model.parameters())
    mon = Monitor(model, opt, every=4)
    train(model, opt, mon, range(10))
    assert len(calls) == 3  # steps 0, 4, 8
    mon.close()
    assert len(calls) == 4  # the losses of steps 9 and 10 come over once, at the end
    assert len(mon.records.losses) == 10


def test_evaluation_passes_are_not_recorded() -> None:
    model = user_model()
    mon = Monitor(model, None, every=1)
    with torch.no_grad():
        model.eval()
        model(batch(0)[0])
    model.train()
    loss = F.cross_entropy(model(batch(1)[0]), batch(1)[1])
    loss.backward()
    mon.step(loss)
    r = mon.close()
    # no optimizer and nothing changed the weights: the update the monitor measures is exactly 0
    assert r.steps[0].acts["1"].rows == 64 and r.steps[0].params["0.weight"].update_ratio == 0.0


def test_no_growth_over_a_thousand_steps() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    mon = Monitor(model, opt, every=100)

    def live_tensors() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) in (torch.Tensor, nn.Parameter))

    counts = {}
    for step in range(1000):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(loss)
        if step in (150, 950):  # the same phase: 50 losses wait on the device for the next recording
            counts[step] = live_tensors()
            assert len(mon._losses) <= 100 and not mon._transfer.items
    assert counts[950] <= counts[150]
    r = mon.close()
    assert len(r.steps) == 10 and len(r.losses) == 1000
    assert all(isinstance(x, float) for x in r.losses)
    assert hooks_left(model, opt) == 0


def test_nan_loss_is_recorded_not_fatal() -> None:
    model = user_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(model, opt, every=1)
    x, y = batch(0)
    loss = F.cross_entropy(model(x), y) * float("nan")
    loss.backward()
    opt.step()
    mon.step(loss)
    r = mon.close()
    assert math.isnan(r.losses[0]) and r.steps[0].params["0.weight"].grad_nonfinite == 1.0
    assert {f.code for f in mon.findings()} >= {"grad.exploding", "loss.diverging"}


def test_record_next_forces_a_recording() -> None:
    model = user_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(model, opt, every=100)
    train(model, opt, mon, range(3))
    mon.record_next()
    train(model, opt, mon, range(3, 4))
    assert [s.step for s in mon.close().steps] == [0, 3]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Monitor(nn.Linear(2, 2), every=0)
