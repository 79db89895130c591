"""Packaging: the license, the metadata, one version, the lowest PyTorch, matplotlib as an extra,
and files written with ordinary permissions."""

from __future__ import annotations

import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import makemore

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_mit_license_as_an_spdx_expression() -> None:
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    p = PROJECT["project"]
    assert p["license"] == "MIT" and p["license-files"] == ["LICENSE"]
    build = PROJECT["build-system"]["requires"][0]
    assert build.startswith("setuptools>=") and int(build.split(">=")[1]) >= 77  # SPDX expressions need 77


def test_metadata_version_and_typing() -> None:
    p = PROJECT["project"]
    assert "Typing :: Typed" in p["classifiers"]
    assert not any(c.startswith("License ::") for c in p["classifiers"])  # the SPDX expression says it
    assert p["urls"] and (ROOT / "CHANGELOG.md").is_file()
    assert "version" in p["dynamic"] and "version" not in p  # written once, in makemore/__init__.py
    assert PROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "makemore.__version__"}
    assert (ROOT / "src" / "makemore" / "py.typed").is_file()
    assert "py.typed" in PROJECT["tool"]["setuptools"]["package-data"]["makemore"]
    assert makemore.__version__.count(".") == 2


def test_dependencies_lowest_torch_and_matplotlib_as_an_extra() -> None:
    deps = PROJECT["project"]["dependencies"]
    torch_dep = next(d for d in deps if d.startswith("torch"))
    assert torch_dep.startswith("torch>=2.4")  # fused AdamW on the CPU (speed/optim.py) needs 2.4
    assert not any(d.startswith("matplotlib") for d in deps)
    assert any(d.startswith("matplotlib") for d in PROJECT["project"]["optional-dependencies"]["plots"])
    assert any(d.startswith("tqdm") for d in deps)


def test_training_needs_no_matplotlib(tmp_path: Path, names_file: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"  # import matplotlib raises ImportError
        "from makemore.cli import main\n"
        f"sys.exit(main(['train', {str(names_file)!r}, '--model', 'bigram', '--steps', '5', '--samples', '2', "
        f"'--out', {str(tmp_path / 'run')!r}, '--threads', '1']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "best.pt").is_file()


def test_checkpoints_get_ordinary_permissions(tmp_path: Path) -> None:
    from makemore.checkpoint import atomic_write_json

    atomic_write_json(tmp_path / "x.json", {"a": 1})
    (tmp_path / "plain.json").write_text("{}")
    mode = stat.S_IMODE((tmp_path / "x.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode)  # what open() gives, not mkstemp's 0600
