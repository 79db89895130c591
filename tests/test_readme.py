"""The README's library example runs verbatim and gives the run of the command line shown beside it."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from makemore.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(lang: str, text: str | None = None) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text if text is not None else README.read_text(encoding="utf-8"), re.S)


def library_example() -> tuple[str, list[str]]:
    """The README's python block and the `makemore train` command of the bash block right after it."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```\s*```bash\n(makemore train[^\n]*)\n```", text, re.S)
    assert match, "the README shows its library example next to the equivalent `makemore train` command"
    return match.group(1), shlex.split(match.group(2))[1:]


def losses(run: Path) -> list[dict]:
    """Every metrics.jsonl record without its timings (wall-clock time differs from run to run)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not any(w in k for w in ("elapsed", "per_s", "time", "seconds"))} for r in rows]


def test_quick_start_is_make_run_and_make_test() -> None:
    commands = [line.split("#")[0].strip() for line in blocks("bash")[0].splitlines() if line.strip()]
    assert commands == ["make run", "make test"]


def test_every_other_python_block_runs_verbatim(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    example, _ = library_example()  # run by the test below
    for code in blocks("python"):
        if code == example:
            continue
        namespace: dict = {}
        exec(compile(code, str(README), "exec"), namespace)
        out = namespace.get("out")
        if isinstance(out, str) and Path(out).is_dir() and Path(out).parent != tmp_path:
            shutil.rmtree(out)  # the example's own temporary run directory
    capsys.readouterr()


def test_library_example_gives_the_command_lines_run(monkeypatch, tmp_path, capsys) -> None:
    code, argv = library_example()
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    lib = Path(namespace["result"].run_dir)
    try:
        i = argv.index("--out")
        cli = tmp_path / "cli-run"
        assert main([*argv[:i], "--out", str(cli), *argv[i + 2:]]) == 0
        capsys.readouterr()
        # the same configs, and the same run to the bit on the CPU
        assert json.loads((lib / "config.json").read_text()) == json.loads((cli / "config.json").read_text())
        assert losses(lib) == losses(cli)
        lib_summary, cli_summary = (json.loads((d / "summary.json").read_text()) for d in (lib, cli))
        assert lib_summary["metrics"] == cli_summary["metrics"]
        assert lib_summary["steps"] == cli_summary["steps"] > 0
    finally:
        shutil.rmtree(lib, ignore_errors=True)


@pytest.mark.parametrize("page", sorted((README.parent / "docs").glob("*.md")), ids=lambda p: p.name)
def test_docs_pages_are_linked_from_the_readme(page: Path) -> None:
    assert f"docs/{page.name}" in README.read_text(encoding="utf-8")


def test_the_options_table_of_docs_models_matches_the_registry() -> None:
    from makemore.models import MODELS
    from makemore.options import MODEL_OPTIONS

    text = (README.parent / "docs" / "models.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.split("## The options each family uses")[1].split("\n## ")[0].splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            for name in re.findall(r"`([\w-]+)`", cells[0]):
                rows[name] = set(re.findall(r"--[\w-]+", cells[1].split("(")[0]))
    assert set(rows) == {s.name for s in MODELS}
    for spec in MODELS:
        said = rows[spec.name] | ({"--loss"} if "loss" in spec.reads else set())
        assert said == {f"--{o.replace('_', '-')}" for o in spec.reads if o in MODEL_OPTIONS}, spec.name
