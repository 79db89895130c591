"""Layers go one way: the package's import graph, read from the source, has no cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "makemore"


def modules(root: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package) for every module under `root`."""
    out = {}
    for f in root.rglob("*.py"):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package modules it imports, anywhere in the file (function-level imports too).

    `from .x import y` is an edge to `x.y` when that is a module, else to `x`; the parents a
    submodule import runs implicitly are not edges (every package works that way). Imports inside
    Jupyter's display hooks (`_repr_html_`) are not edges either: Jupyter calls them to hand the
    drawing to the notebook view, which needs the optional matplotlib and IPython and imports the
    classes it draws, so they are late by design.
    """
    mods = modules(root)
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        package = name.split(".") if is_pkg else name.split(".")[:-1]
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hooks = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name.startswith("_repr_")
                 for n in ast.walk(f)}
        for node in ast.walk(tree):
            if id(node) in hooks:
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                elif (node.module or "").split(".")[0] == root.name:
                    base = node.module or ""
                else:
                    continue
                for alias in node.names:
                    edges.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else base)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in mods)
        graph[name] = (edges & set(mods)) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_one_and_only_then() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_graph_sees_relative_and_absolute_imports() -> None:
    graph = import_graph()
    assert "makemore.config" in graph["makemore.models"]           # from ..config import ModelConfig
    assert "makemore.models.bigram" in graph["makemore.models"]    # from .bigram import ...
    assert "makemore.run" in graph["makemore.cli"]                 # from .run import ...
    assert "makemore.diagnostics.report" in graph["makemore.cli"]  # a function-level import


def test_the_package_has_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_command_line_needs_no_optional_dependency() -> None:
    """`import makemore` and the command line work where no extra is installed (matplotlib, ...)."""
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in {'matplotlib', 'IPython', 'ipywidgets', 'tensorboard', 'lightning', 'transformers'}:\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import makemore\n"
        "from makemore.cli import main\n"
        "assert main(['train', '--help']) == 0\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
