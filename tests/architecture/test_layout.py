"""The architecture as checks: no import cycles, each module importable alone, short functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "rotelab"
MAX_FUNCTION_LINES = 60  # a function's lines, its docstring not counted


def _modules() -> dict[str, Path]:
    """Dotted name -> file for every module of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _top_level_imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that ``name`` imports when it is imported (not inside functions)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(sub, ast.Import):
                found |= {a.name for a in sub.names}
            elif isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - sub.level + 1] + [base]).strip(".")
                found.add(base)
                found |= {f"{base}.{a.name}" for a in sub.names if f"{base}.{a.name}" in modules}
    return {m for m in found if m in modules and m != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_inside_the_package():
    modules = _modules()
    graph = {name: _top_level_imports(path, name, modules) for name, path in modules.items()}
    # a package imports its own submodules by design (re-exports); a submodule must not import back
    for name in graph:
        graph[name] = {m for m in graph[name] if not (modules[name].name == "__init__.py" and m.startswith(name + "."))}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_every_module_imports_alone():
    """Each module in a fresh interpreter, on its own: no hidden order dependence."""
    names = sorted(n for n in _modules() if n != "rotelab.__main__")  # that one runs the command
    script = (
        "import importlib, sys\n"
        f"names = {names!r}\n"
        "bad = []\n"
        "for n in names:\n"
        "    for m in [m for m in sys.modules if m == 'rotelab' or m.startswith('rotelab.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{n}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=ROOT.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_study_modules_are_modules_and_functions_are_on_rotelab():
    import importlib
    import types

    import rotelab

    for kind in ("diagnose", "compare", "sweep", "memorization", "adapt"):
        assert isinstance(importlib.import_module(f"rotelab.studies.{kind}"), types.ModuleType)
        assert callable(getattr(rotelab, kind)) and not isinstance(getattr(rotelab, kind), types.ModuleType)
    import rotelab.studies.compare

    assert isinstance(rotelab.studies.compare, types.ModuleType)


def _long_functions() -> list[str]:
    long = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                doc = node.body[0] if node.body and isinstance(node.body[0], ast.Expr) and \
                    isinstance(getattr(node.body[0], "value", None), ast.Constant) and \
                    isinstance(node.body[0].value.value, str) else None
                if doc is not None:
                    lines -= doc.end_lineno - doc.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return long


def test_no_function_is_longer_than_60_lines():
    assert _long_functions() == []


@pytest.mark.parametrize("command", [["--help"], ["diagnose", "--help"]])
def test_help_does_not_import_torch(command):
    """``rotelab --help`` answers at once: torch, pandas and matplotlib load only in the commands."""
    script = ("import sys\nfrom rotelab.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
              "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'sklearn', 'numpy') if m in sys.modules))"
              % command)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
