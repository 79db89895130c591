"""`--compile` on the CPU against eager training: the same losses and parameters, a clear
fallback when compilation fails, and the training-health monitor still sees its recording steps
(hooks do not run inside compiled code, so those steps go through the eager module)."""

from __future__ import annotations

import io

import pytest
import torch

from makemore.config import DataConfig, TrainConfig
from makemore.data import load_dataset
from makemore.doctor import MonitorCallback
from makemore.models import create_model, model_config
from makemore.speed import SpeedOptions
from makemore.train import Trainer

pytestmark = pytest.mark.skipif(not hasattr(torch, "compile"), reason="needs torch.compile")

SMALL = {"transformer": dict(n_embd=16, n_layer=1, n_head=2), "gru": dict(n_embd=16, n_hidden=16),
         "mlp": dict(n_embd=8, n_hidden=32, n_layer=2)}


def _trainer(path, name: str, steps: int, compile_: bool, monitor=None, stream=None, fast_paths: bool = True,
             log: list[float] | None = None) -> Trainer:
    ds = load_dataset(DataConfig(input=str(path)))
    torch.manual_seed(0)
    m = create_model(model_config(name, vocab_size=ds.vocab.size, block_size=ds.block_size, **SMALL[name]))
    cfg = TrainConfig(steps=steps, batch_size=16, lr=3e-3, schedule="cosine", warmup=2, eval_interval=10**6,
                      log_interval=1, device="cpu")
    callbacks = [Log(log)] if log is not None else []
    return Trainer(m, ds, cfg, torch.device("cpu"), callbacks, monitor=monitor,
                   speed=SpeedOptions(compile=compile_, fast_paths=fast_paths), stream=stream or io.StringIO())


class Log:
    def __init__(self, seen: list[float]) -> None:
        self.seen = seen

    def on_log(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.seen.append(metrics["loss"])


def _losses(path, name: str, steps: int, compile_: bool, **kw) -> tuple[list[float], Trainer]:
    seen: list[float] = []
    t = _trainer(path, name, steps, compile_, log=seen, **kw)
    t.fit()
    return seen, t


@pytest.mark.parametrize("name", ["transformer", "gru"])
def test_compiled_training_follows_eager_training(names_file, name: str) -> None:
    (la, eager), (lb, compiled) = _losses(names_file, name, 6, False), _losses(names_file, name, 6, True)
    assert len(la) == len(lb) == 6
    # the fast paths (eager) vs the model's code at full width (compiled), fused kernels: float32 rounding only
    assert max(abs(a - b) for a, b in zip(la, lb)) < 1e-4, (la, lb)
    for pa, pb in zip(eager.model.parameters(), compiled.model.parameters()):
        assert torch.allclose(pa, pb, atol=1e-4)


def test_a_compiler_failure_falls_back_to_eager_with_one_note(names_file, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(module, *args, **kwargs):  # compiles, then fails when called
        def run(*a, **k):
            raise RuntimeError("inductor: no C++ compiler found\nlong details")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    out = io.StringIO()
    got, _ = _losses(names_file, "mlp", 4, True, stream=out)
    ref, _ = _losses(names_file, "mlp", 4, False, fast_paths=False)
    assert got == ref
    assert out.getvalue() == "note: torch.compile failed (inductor: no C++ compiler found); training without it\n"


def test_the_monitor_records_compiled_training(names_file) -> None:
    runs = []
    for compile_ in (False, True):
        cb = MonitorCallback(every=3, window=2)
        t = _trainer(names_file, "mlp", 7, compile_, monitor=cb, fast_paths=False)  # the same shapes in both runs
        t.fit()
        runs.append((cb.monitor.records, t))
    (eager, _), (compiled, t) = runs
    assert [s.step for s in compiled.steps] == [s.step for s in eager.steps] == [0, 3, 6]
    for se, sc in zip(eager.steps, compiled.steps):
        assert sc.acts.keys() == se.acts.keys() and len(sc.acts) >= 4  # every leaf module, none missing
        assert sc.grads.keys() == se.grads.keys() and len(sc.grads) >= 3
        for name, a in se.acts.items():
            assert sc.acts[name].mean == pytest.approx(a.mean, rel=1e-3, abs=1e-5), (se.step, name)
            assert sc.acts[name].std == pytest.approx(a.std, rel=1e-3, abs=1e-5), (se.step, name)
        for name, g in se.grads.items():
            assert sc.grads[name].std == pytest.approx(g.std, rel=1e-3, abs=1e-7), (se.step, name)
    assert compiled.losses == pytest.approx(eager.losses, rel=1e-4)
