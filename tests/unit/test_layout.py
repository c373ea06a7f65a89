"""The package's layout: imports point down the layers and close no cycle.

The layers are the map in docs/development.md; each subpackage's front module says what it may
import. This test reads every module's imports (type-checking ones too: an upward import is a
layering fault whether or not it runs) and fails on an upward import between subpackages or a
cycle between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "barman_supervisor"

# Bottom first. A unit may import its own subpackage and any unit of a lower layer.
LAYERS: list[set[str]] = [
    {"errors", "files", "log", "crontab", "retry"},
    {"config"},
    {"process"},
    {"postgres"},
    {"barman"},
    {"status"},
    {"offsite"},
    {"restore"},
    {"drill"},
    {"jobs"},
    {"daemon"},
    {"cli", "__main__"},
]


def _unit(module: str) -> str:
    """The layered unit of a dotted module name: its subpackage, or the top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(unit: str) -> int:
    if unit == "__init__":
        return 0
    for number, units in enumerate(LAYERS):
        if unit in units:
            return number
    raise AssertionError(f"{unit} is in no layer: add it to LAYERS and to docs/development.md")


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The package modules that a file imports, resolved to dotted names."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    known = _modules()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("barman_supervisor"):
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in known else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("barman_supervisor"))
    found.discard(module)
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _graph() -> dict[str, set[str]]:
    return {name: _imports(path) for name, path in _modules().items()}


def test_every_unit_has_a_layer() -> None:
    for name in _modules():
        _layer(_unit(name))


def test_no_import_goes_up_a_layer() -> None:
    upward = [
        f"{name} imports {target}"
        for name, targets in _graph().items()
        for target in targets
        if _unit(target) != _unit(name) and _layer(_unit(target)) > _layer(_unit(name))
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    graph = _graph()
    cycles: list[str] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph.get(name, ())):
            # A package imports its own front module's names; that is not a cycle back.
            if target in name or (name in target and target.startswith(name + ".")):
                continue
            if state.get(target) == 1:
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []


@pytest.mark.parametrize("package", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_each_subpackage_front_says_what_it_may_import(package: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text())) or ""
    assert "May import:" in doc, f"{package}/__init__.py: its docstring names no 'May import:'"
