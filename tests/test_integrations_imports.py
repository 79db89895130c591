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
