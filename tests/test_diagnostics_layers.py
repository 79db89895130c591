"""The diagnostics know PyTorch, not the app: importing them loads nothing from makemore's run,
checkpoint or CLI layers, and their fix texts name no makemore option (the app adds those)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import makemore

APP_MODULES = ("makemore.run", "makemore.cli", "makemore.checkpoint", "makemore.train", "makemore.doctor", "makemore.config")


def test_importing_the_diagnostics_loads_no_app_module() -> None:
    # the package's own __init__ re-exports the app; a stub parent package keeps it out, so this
    # sees exactly what the diagnostics themselves import
    src = str(Path(makemore.__file__).parent)
    code = (
        "import sys, types, json\n"
        f"pkg = types.ModuleType('makemore'); pkg.__path__ = [{src!r}]; sys.modules['makemore'] = pkg\n"
        "import makemore.diagnostics, makemore.diagnostics.report, makemore.diagnostics.plots\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('makemore'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.splitlines()[-1])
    assert "makemore.diagnostics.monitor" in loaded
    assert not [m for m in loaded if m in APP_MODULES], loaded
    assert all(m == "makemore" or m.startswith("makemore.diagnostics") for m in loaded), loaded


def test_a_plain_import_of_the_diagnostics_loads_neither_run_nor_cli() -> None:
    code = ("import sys, json, makemore.diagnostics\n"
            "print(json.dumps([m for m in ('makemore.run', 'makemore.cli') if m in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.splitlines()[-1]) == []


def test_fix_texts_speak_pytorch_and_the_app_adds_its_flags() -> None:
    from makemore.diagnostics.checks import Finding
    from makemore.doctor import FLAGS, with_flags

    generic = Finding("init.loss_too_high", "error", "out", "step-0 loss 9.1", "scale the output layer's weights down")
    (flagged,) = with_flags([generic])
    assert "--init-output-scale" in flagged.fix and "--" not in generic.fix
    assert flagged.fix.startswith(generic.fix)
    assert set(FLAGS) <= set(__import__("makemore.diagnostics", fromlist=["CODES"]).CODES)
