"""The lecture notebooks (docs/notebooks/) run from top to bottom at their quick size, without a network."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest


def need(name: str) -> ModuleType:
    """Import `name`; skip where it is missing, except in CI, where requirements-test.txt installs it."""
    return importlib.import_module(name) if os.environ.get("CI") else pytest.importorskip(name)


nbformat = need("nbformat")
nbclient = need("nbclient")
need("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "docs" / "notebooks").glob("*.ipynb"))
KERNEL = "makemore-tests"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec that starts this interpreter (the venv's), whatever other kernels the machine has."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "makemore tests", "language": "python",
    }))
    return root


def test_one_notebook_per_lecture() -> None:
    assert [p.name.split("_")[0] for p in NOTEBOOKS] == ["part1", "part2", "part3", "part4", "part5"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_quick_size(path: Path, kernel_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = nbformat.read(path, as_version=4)
    # kept in git without outputs: what a reader sees is what the notebook computes
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    monkeypatch.setenv("MAKEMORE_QUICK", "1")
    monkeypatch.delenv("MAKEMORE_NAMES", raising=False)  # the built-in corpus: no file, no network
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=120,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # the tables and the pictures are shown inline
    assert any("text/html" in o.get("data", {}) and "<table>" in o["data"]["text/html"] for o in outputs)
    assert any("image/png" in o.get("data", {}) for o in outputs)
