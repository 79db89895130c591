"""Hugging Face: DoctorCallback in a real transformers.Trainer on the CPU, with a tiny GPT-2 built
from a config (random weights, nothing downloaded). An output layer initialized far too large
shows up in the Trainer's log history; the losses the callback reads are the Trainer's own."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be downloaded

import pytest  # noqa: E402

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from integrations_fixtures import VOCAB, Tokens, fast_report, tiny_gpt2  # noqa: E402
from makemore.diagnostics.integrations.hf import DoctorCallback  # noqa: E402

def train(tmp_path: Path, init_range: float, steps: int, accumulate: int = 1, **kw: object):
    transformers.utils.logging.set_verbosity_error()
    cb = DoctorCallback(every=5, **kw)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=steps, per_device_train_batch_size=8,
        gradient_accumulation_steps=accumulate, logging_steps=1, save_strategy="no", disable_tqdm=True,
        learning_rate=1e-3, dataloader_num_workers=0)
    trainer = transformers.Trainer(model=tiny_gpt2(init_range), args=args, train_dataset=Tokens(),
                                   callbacks=[cb])
    trainer.train()
    return cb, trainer


def doctor_logs(trainer) -> list[dict[str, float]]:
    return [e for e in trainer.state.log_history if any(k.startswith("doctor/") for k in e)]


def test_too_large_output_init_reaches_the_log_history_and_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast_report(monkeypatch)
    cb, trainer = train(tmp_path, init_range=1.0, steps=10)
    found = [(e["step"], e["doctor/finding/init.loss_too_high"]) for e in doctor_logs(trainer)
             if "doctor/finding/init.loss_too_high" in e]
    assert found and found[0] == (0, 3.0)  # an error, from the first recording on
    steps = sorted({e["step"] for e in doctor_logs(trainer) if "doctor/update_ratio_log10/median" in e})
    assert steps == [0, 5, 9]
    assert cb.monitor.records.n_classes == VOCAB and cb.monitor.records.output_module == "lm_head"
    assert cb.report_path == tmp_path / "doctor_report.html" and "init.loss_too_high" in cb.report_path.read_text()


def test_losses_are_the_trainers_own_with_gradient_accumulation(tmp_path: Path) -> None:
    cb, trainer = train(tmp_path, init_range=0.02, steps=6, accumulate=2, report=False)
    logged = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert cb.monitor.records.losses == pytest.approx(logged, rel=1e-5)
    assert cb.watch.findings == [] and cb.report_path is None


def test_stop_on_error_ends_the_run(tmp_path: Path) -> None:
    cb, trainer = train(tmp_path, init_range=1.0, steps=20, stop_on="error", report=False)
    assert trainer.state.global_step == 1
