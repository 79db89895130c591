"""TensorBoard: the monitor's records and findings in event files, read back with TensorBoard's own
EventAccumulator; from a plain loop, and from `makemore train --tensorboard --monitor`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from integrations_fixtures import fast_report, tanh_mlp, train_steps
from makemore.diagnostics import Monitor, Records, run_checks
from makemore.diagnostics.integrations.common import record_scalars

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from makemore.diagnostics.integrations.tensorboard import TensorBoardWriter  # noqa: E402


def read_events(logdir: Path) -> EventAccumulator:
    ea = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    ea.Reload()
    return ea


def findings_texts(ea: EventAccumulator) -> list[str]:
    return [e.tensor_proto.string_val[0].decode() for e in ea.Tensors("doctor/findings/text_summary")]


def test_plain_loop_writes_records_histograms_and_findings(tmp_path: Path) -> None:
    model = tanh_mlp(saturated=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    mon = Monitor(model, opt, every=10)
    tb = TensorBoardWriter(tmp_path, loss_every=10)
    train_steps(model, opt, 35, lambda loss: (mon.step(loss), tb.update(mon)))
    tb.update(mon, final=True)
    tb.close()
    r = mon.close()
    ea = read_events(tmp_path)
    tags = ea.Tags()
    # every scalar of every recording step, at its step, equal to the records
    for i, rec in enumerate(r.steps):
        for tag, value in record_scalars(r, i).items():
            got = {e.step: e.value for e in ea.Scalars(tag)}
            assert got[rec.step] == pytest.approx(value, rel=1e-6), tag
    sat = ea.Scalars("doctor/saturation/1")
    assert [e.step for e in sat] == [0, 10, 20, 30] and sat[0].value > 0.6
    assert {"doctor/update_ratio_log10/guide", "doctor/dead_fraction/3", "doctor/grad_std/0"} <= set(tags["scalars"])
    assert [e.value for e in ea.Scalars("doctor/update_ratio_log10/guide")] == [-3.0] * 4
    # the loss, averaged over blocks of 10 steps (and the last 5 at the end)
    assert [e.step for e in ea.Scalars("doctor/loss")] == [9, 19, 29, 34]
    assert ea.Scalars("doctor/loss")[1].value == pytest.approx(sum(r.losses[10:20]) / 10)
    assert ea.Scalars("doctor/loss")[3].value == pytest.approx(sum(r.losses[30:35]) / 5)
    # the histograms hold the recorded bins
    h = ea.Histograms("doctor/act_hist/1")[0]
    assert h.step == 0 and h.histogram_value.bucket == r.steps[0].acts["1"].hist.counts
    assert h.histogram_value.num == sum(r.steps[0].acts["1"].hist.counts)
    assert {"doctor/grad_hist/1", "doctor/weight_grad_hist/0.weight"} <= set(tags["histograms"])
    # the finding: as text when it appears (step 0) and at the end, and as a scalar (3: error)
    texts = findings_texts(ea)
    assert len(texts) == 2 and all("act.saturated" in t for t in texts)
    assert [e.value for e in ea.Scalars("doctor/finding/act.saturated")] == [3.0] * 5


def test_train_cli_writes_the_doctor_next_to_the_loss(names_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast_report(monkeypatch)
    from makemore.cli import main

    out = tmp_path / "run"
    # an output layer initialized 10x too large: a step-0 loss far above ln(27)
    args = ["train", str(names_file), "--model", "mlp", "--init-output-scale", "10", "--steps", "30", "--batch-size", "32",
            "--monitor-every", "10", "--tensorboard", "--eval-interval", "30", "--out", str(out), "--samples", "0",
            "--device", "cpu"]
    assert main(args) == 1  # train --monitor exits 1 on a warning or an error
    ea = read_events(out / "tensorboard")
    scalars = set(ea.Tags()["scalars"])
    assert "train/loss" in scalars and "doctor/loss" not in scalars  # the loss is written once
    assert any(t.startswith("doctor/saturation/") for t in scalars)
    assert any(t.startswith("doctor/update_ratio_log10/") for t in scalars)
    assert [e.value for e in ea.Scalars("doctor/finding/init.loss_too_high")][-1] == 3.0
    assert "init.loss_too_high" in findings_texts(ea)[-1]
    # the same findings as the run's own report
    final = run_checks(Records.load(out / "diagnostics.json"))
    assert final and all(f.code in findings_texts(ea)[-1] for f in final)
