"""Reading a set of modules' imports with ``ast`` and finding cycles among them: what the
layout tests (tests/unit/test_layout.py, tests/agents/test_layering.py) share."""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping


def in_functions(tree: ast.Module) -> set[int]:
    """The ids of the nodes inside a function body (lazy imports)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(sub) for sub in ast.walk(node) if sub is not node)
    return inside


def absolute_imports(tree: ast.Module, known: Mapping[str, object], *, lazy: bool) -> set[str]:
    """The modules of ``known`` that ``tree`` imports by absolute name (``import a.b``,
    ``from a import b`` naming module ``a.b`` or ``a``); in function bodies too if ``lazy``."""
    skip = set() if lazy else in_functions(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found.update(n for n in names if n in known)
    return found


def find_cycle(
    graph: Mapping[str, set[str]], start: str, follows: Callable[[str], bool] = bool
) -> list[str] | None:
    """A cycle of imports through ``start`` in ``graph`` (module -> the modules it
    imports), following only the edges to modules for which ``follows`` holds (``start``
    itself always), if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        name, path = stack.pop()
        for dep in sorted(d for d in graph.get(name, set()) if d == start or follows(d)):
            if dep == start:
                return [*path, start]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, [*path, dep]))
    return None
