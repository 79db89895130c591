"""The Integrations section of the doctor's docs: every snippet runs, with the user's objects
(`model`, `optimizer`, `batches`, `module`, `loader`, `dataset`) filled in by a faulty setup, and the
finding shows where the snippet says it does."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from integrations_fixtures import Tokens, data, fast_report, lightning_module, tanh_mlp, tiny_gpt2
from makemore.diagnostics.integrations import notebook

DOC = Path(__file__).resolve().parents[1] / "docs" / "doctor.md"
SECTION = "## Integrations"


def snippets() -> dict[str, str]:
    """The section's Python blocks, keyed by the integration each imports."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    blocks = re.findall(r"```python\n(.*?)```", text[start : end if end >= 0 else None], re.S)
    return {re.search(r"integrations\.(\w+) import", b).group(1): b for b in blocks}


def test_one_snippet_per_integration() -> None:
    assert sorted(snippets()) == ["hf", "lightning", "notebook", "tensorboard"]


def saturated_user_objects() -> dict[str, object]:
    model = tanh_mlp(saturated=True)
    x, y = data()
    return {"model": model, "optimizer": torch.optim.Adam(model.parameters(), lr=3e-3),
            "batches": [(x[i : i + 64], y[i : i + 64]) for i in range(0, 512, 64)] * 8}


def run(name: str, ns: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.chdir(tmp_path)
    fast_report(monkeypatch)
    exec(compile(snippets()[name], f"{DOC.name}:{name}", "exec"), ns)
    return ns


def test_notebook_snippet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = run("notebook", saturated_user_objects(), tmp_path, monkeypatch)
    assert [f.code for f in ns["live"].last.findings] == ["act.saturated"]
    monkeypatch.setattr(notebook, "pictures", lambda *a, **k: [])
    assert "act.saturated" in ns["mon"]._repr_html_()


def test_lightning_snippet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("lightning")
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    ns = run("lightning", {"module": lightning_module(saturated=True), "loader": loader}, tmp_path, monkeypatch)
    trainer = ns["trainer"]
    assert trainer.global_step == 1  # stop_on="error": the first recording found the saturation
    assert "act.saturated" in (Path(trainer.log_dir) / "doctor_report.html").read_text()
    # Lightning's default logger (TensorBoard) got the finding, as a metric and as text
    ea = EventAccumulator(trainer.log_dir)
    ea.Reload()
    assert ea.Scalars("doctor/finding/act.saturated")[0].value == 3.0
    assert "act.saturated" in ea.Tensors("doctor/findings/text_summary")[0].tensor_proto.string_val[0].decode()


def test_hf_snippet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    transformers.utils.logging.set_verbosity_error()
    ns = run("hf", {"model": tiny_gpt2(init_range=1.0), "dataset": Tokens()}, tmp_path, monkeypatch)
    state = ns["trainer"].state
    assert state.global_step == 1
    assert any(e.get("doctor/finding/init.loss_too_high") == 3.0 for e in state.log_history)
    assert "init.loss_too_high" in (tmp_path / "out" / "doctor_report.html").read_text()


def test_tensorboard_snippet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run("tensorboard", saturated_user_objects(), tmp_path, monkeypatch)
    ea = EventAccumulator(str(tmp_path / "runs" / "doctor"))
    ea.Reload()
    assert ea.Scalars("doctor/saturation/1")[0].value > 0.6
    assert "act.saturated" in ea.Tensors("doctor/findings/text_summary")[-1].tensor_proto.string_val[0].decode()
