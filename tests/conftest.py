"""Shared fixtures: small corpora written to temporary files."""

from __future__ import annotations

from pathlib import Path

import os

import pytest
import torch

from makemore.corpora import builtin_names

NAMES_TXT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "names.txt"


def full_names_txt() -> Path:
    """Karpathy's names.txt (32,033 names): beside the repository in CI, or the shared copy on a dev machine.

    Skips the test where neither exists, except in CI, where it must be there.
    """
    for p in (NAMES_TXT, Path("/work/shared/data/names.txt")):
        if p.is_file():
            return p
    if os.environ.get("CI"):
        pytest.fail(f"names.txt not found at {NAMES_TXT}")
    pytest.skip("names.txt is not available here")


@pytest.fixture(autouse=True)
def _small_threads():
    # tests are small; one thread keeps them deterministic and cheap on a shared 2-core machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def names_file(tmp_path: Path) -> Path:
    """300 real first names (from the built-in corpus), one per line."""
    p = tmp_path / "names.txt"
    p.write_text("\n".join(builtin_names()[:300]) + "\n", encoding="utf-8")
    return p


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.txt"
    p.write_text("emma\nolivia\nava\nisabella\nsophia\nmia\namelia\nharper\nevelyn\nabigail\n", encoding="utf-8")
    return p
