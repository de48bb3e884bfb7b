"""Shape rules of the recipe: short functions, small config classes."""

from __future__ import annotations

import ast
from pathlib import Path

RECIPES = Path(__file__).resolve().parents[1] / "labelrefine" / "recipes"


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body, without its docstring."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return 0 if not body else body[-1].end_lineno - body[0].lineno + 1


def test_no_recipe_function_has_more_than_80_lines_of_code():
    long = []
    for path in sorted(RECIPES.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and code_lines(node) > 80:
                long.append(f"{path.name}:{node.lineno} {node.name} ({code_lines(node)} lines)")
    assert not long, long


def test_code_lines_counts_the_body_without_the_docstring():
    tree = ast.parse('def f():\n    """doc\n    more"""\n    a = 1\n\n    return a\n')
    assert code_lines(tree.body[0]) == 3
