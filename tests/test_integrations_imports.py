"""The integrations are optional: `import makemore` loads none of their frameworks, and an
integration whose framework is missing says in one sentence what to install."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

FRAMEWORKS = ("lightning", "transformers", "tensorboard", "torch.utils.tensorboard", "IPython", "ipywidgets", "nbclient")


def test_core_import_stays_light() -> None:
    code = ("import sys, makemore, makemore.diagnostics, makemore.diagnostics.integrations, makemore.cli; "
            f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module, missing, extra, package", [
    ("lightning", "lightning.pytorch", "lightning", "lightning"),
    ("hf", "transformers", "hf", "transformers"),
    ("tensorboard", "torch.utils.tensorboard", "tensorboard", "tensorboard"),
])
def test_missing_framework_says_what_to_install(monkeypatch: pytest.MonkeyPatch, module: str, missing: str,
                                                extra: str, package: str) -> None:
    name = f"makemore.diagnostics.integrations.{module}"
    monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, missing, None)  # what Python does for a module that is not installed
    with pytest.raises(ImportError) as e:
        importlib.import_module(name)
    assert str(e.value) == f"{name} needs the {package} package: pip install 'makemore[{extra}]'"


def test_live_widget_without_ipywidgets_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from makemore.diagnostics.integrations.notebook import LiveView

    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    assert LiveView()._widgets() is None  # the plain display handle then
    with pytest.raises(ImportError, match=r"^LiveView\(widget=True\) needs the ipywidgets package: pip install "
                                          r"'makemore\[notebook\]'$"):
        LiveView(widget=True)._widgets()


def test_inline_report_without_matplotlib_still_shows_the_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    from makemore.diagnostics import Finding, Records
    from makemore.diagnostics.integrations.notebook import records_html

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    records = Records(every=1, window=1, n_classes=27, first_step=0, losses=[9.0, 8.0])  # step-0 loss far above ln 27
    page = records_html(records)
    assert "init.loss_too_high" in page and "pip install 'makemore[notebook]'" in page
    assert "init.loss_too_high" in Finding("init.loss_too_high", "error", "out", "e", "f")._repr_html_()
