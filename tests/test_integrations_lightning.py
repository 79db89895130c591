"""PyTorch Lightning: DoctorCallback in a real Trainer on the CPU. The saturated tanh layer's
finding reaches Lightning's own logger (a CSVLogger's metrics file); the records equal those of a
plain loop over the same model, data and optimizer; stop_on ends the run."""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from integrations_fixtures import data, fast_report, lightning_module, tanh_mlp, train_steps
from makemore.diagnostics import Monitor

L = pytest.importorskip("lightning.pytorch")
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

from makemore.diagnostics.integrations.lightning import DoctorCallback  # noqa: E402

BATCH, LR = 64, 3e-3


def fit(tmp_path: Path, saturated: bool, steps: int, accumulate: int = 1, **kw: object) -> tuple[DoctorCallback, L.Trainer]:
    x, y = data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)  # in order
    cb = DoctorCallback(every=10, **kw)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=CSVLogger(tmp_path, name="csv"),
                        callbacks=[cb], enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=1, default_root_dir=tmp_path,
                        accumulate_grad_batches=accumulate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about DataLoader workers on a tiny CPU run
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
        trainer.fit(lightning_module(saturated, LR), loader)
    return cb, trainer


def logged(trainer: L.Trainer) -> list[dict[str, str]]:
    with open(Path(trainer.logger.log_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_saturated_layer_reaches_the_logger_and_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast_report(monkeypatch)
    cb, trainer = fit(tmp_path, saturated=True, steps=30)
    rows = logged(trainer)
    # the finding, through Lightning's logger: 3 = error, from the first recording on
    found = [(int(r["step"]), float(r["doctor/finding/act.saturated"])) for r in rows if r.get("doctor/finding/act.saturated")]
    assert found and found[0] == (0, 3.0)
    sat = {int(r["step"]): float(r["doctor/saturation/net.1"]) for r in rows if r.get("doctor/saturation/net.1")}
    assert sorted(sat) == [0, 10, 20, 29] and sat[0] > 0.6
    assert sat[0] == pytest.approx(cb.monitor.records.steps[0].acts["net.1"].saturated)
    # the report at the end of fit, in the logger's directory
    assert cb.report_path == Path(trainer.log_dir) / "doctor_report.html"
    assert "act.saturated" in cb.report_path.read_text()


def test_records_equal_a_plain_loop_of_the_same_training(tmp_path: Path) -> None:
    """Lightning steps the optimizer with a closure (the gradients are computed inside step()):
    the recorded gradients and update:data ratios must still be those of a plain loop."""
    cb, trainer = fit(tmp_path, saturated=False, steps=21, report=False)
    model = tanh_mlp(saturated=False)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    mon = Monitor(model, opt, every=10)
    train_steps(model, opt, 21, mon.step, batch=BATCH)
    ours, ref = cb.monitor.records, mon.close()
    assert ours.losses == pytest.approx(ref.losses, rel=1e-6)
    assert [s.step for s in ours.steps] == [0, 10, 20]
    for a, b in zip(ours.steps, ref.steps):
        assert set(a.params) == {"net." + n for n in b.params}
        for name, p in b.params.items():
            q = a.params["net." + name]
            assert q.update_ratio == pytest.approx(p.update_ratio, rel=1e-5)
            assert q.grad_std == pytest.approx(p.grad_std, rel=1e-5)
            assert q.data_std == pytest.approx(p.data_std, rel=1e-6)
        assert a.acts["net.1"].saturated == b.acts["1"].saturated
    assert cb.watch.findings == []
    assert "doctor/update_ratio_log10/net.0.weight" in logged(trainer)[0]


def test_gradient_accumulation_records_the_steps_loss(tmp_path: Path) -> None:
    cb, trainer = fit(tmp_path, saturated=False, steps=4, report=False, accumulate=2)
    x, y = data()
    model = lightning_module(saturated=False, lr=LR)
    with torch.no_grad():  # step 0's loss: the mean over its two micro-batches, at the initial weights
        first = (F.cross_entropy(model(x[:BATCH]), y[:BATCH]) + F.cross_entropy(model(x[BATCH : 2 * BATCH]), y[BATCH : 2 * BATCH])) / 2
    assert len(cb.monitor.records.losses) == 4
    assert cb.monitor.records.losses[0] == pytest.approx(first.item(), rel=1e-6)


def test_stop_on_error_ends_the_run(tmp_path: Path) -> None:
    cb, trainer = fit(tmp_path, saturated=True, steps=50, stop_on="error", report=False)
    assert trainer.global_step == 1  # the first recording found it
    assert cb.report_path is None and not (Path(trainer.log_dir) / "doctor_report.html").exists()
    with pytest.raises(ValueError):
        DoctorCallback(stop_on="fatal")
