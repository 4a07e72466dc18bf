"""The agents' modules import each other in one direction, lazy imports included: the
command line over ``run_task``, over the loops, over the turn loop and its record."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = [
    *sorted((ROOT / "sandbox_tool" / "agents").glob("*.py")),
    ROOT / "sandbox_tool" / "cli" / "agent.py",
    *sorted((ROOT / "agents").glob("*.py")),
]


def _name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


MODULES = {_name(p): p for p in FILES}


def _imports(path: Path) -> set[str]:
    """Every module of :data:`MODULES` that ``path`` imports, in function bodies too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found.update(n for n in names if n in MODULES and MODULES[n].name != "__init__.py")
    return found


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _cycle_from(start: str) -> list[str] | None:
    stack, seen = [(start, [start])], set()
    while stack:
        name, path = stack.pop()
        for dep in sorted(GRAPH[name]):
            if dep == start:
                return [*path, start]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, [*path, dep]))
    return None


def test_the_layers_are_found() -> None:
    assert "sandbox_tool.agents.task" in GRAPH["sandbox_tool.cli.agent"]
    assert "sandbox_tool.agents.openai_loop" in GRAPH["sandbox_tool.agents.task"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_cycle_even_through_lazy_imports(name: str) -> None:
    assert _cycle_from(name) is None, " -> ".join(_cycle_from(name) or [])


def test_the_loops_never_import_the_command_line() -> None:
    for name in MODULES:
        if name.startswith("sandbox_tool.agents"):
            assert "sandbox_tool.cli.agent" not in GRAPH[name], name
