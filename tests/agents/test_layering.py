"""The agents' modules import each other in one direction, lazy imports included: the
command line over ``run_task``, over the loops, over the turn loop and its record."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.importgraph import absolute_imports, find_cycle

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
    found = absolute_imports(ast.parse(path.read_text(encoding="utf-8")), MODULES, lazy=True)
    return {n for n in found if MODULES[n].name != "__init__.py"}


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def test_the_layers_are_found() -> None:
    assert "sandbox_tool.agents.task" in GRAPH["sandbox_tool.cli.agent"]
    assert "sandbox_tool.agents.openai_loop" in GRAPH["sandbox_tool.agents.task"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_cycle_even_through_lazy_imports(name: str) -> None:
    cycle = find_cycle(GRAPH, name)
    assert cycle is None, " -> ".join(cycle)


def test_the_loops_never_import_the_command_line() -> None:
    for name in MODULES:
        if name.startswith("sandbox_tool.agents"):
            assert "sandbox_tool.cli.agent" not in GRAPH[name], name
