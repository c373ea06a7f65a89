"""Units a stranger can read in one sitting: no module over 500 lines, no class over 250, no
function over 60, unless its docstring says why it is kept longer (a line starting ``Kept long:``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "barman_supervisor"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 250
MAX_FUNCTION_LINES = 60
REASON = "Kept long:"


def _length(node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return (node.end_lineno or node.lineno) - start + 1


def _says_why(node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return REASON in (ast.get_docstring(node) or "")


def _oversized() -> list[str]:
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(PACKAGE.parent)
        tree = ast.parse(text)
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES and REASON not in (ast.get_docstring(tree) or ""):
            found.append(f"{name}: {lines} lines")
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if _length(node) > limit and not _says_why(node):
                found.append(f"{name}: {node.name} {_length(node)} lines")
    return found


def test_no_unit_is_oversized_without_a_reason() -> None:
    assert _oversized() == []
