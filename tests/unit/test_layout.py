"""The in-sandbox runner's layout: stdlib only, no import cycles, small modules."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.importgraph import absolute_imports, find_cycle, in_functions

RUNNER = Path(__file__).resolve().parents[2] / "sandbox_tool" / "runner"
MAX_LINES = 450
# imported only inside functions that run once the code (or the warm template's preload
# list) has imported it: the code's own stack, never a dependency of the runner
LAZY_THIRD_PARTY = {"matplotlib"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(RUNNER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(RUNNER.rglob("*.py"))}


def _imports(name: str, path: Path) -> tuple[set[str], set[str]]:
    """The runner modules and the top-level outside modules that ``name`` imports,
    wherever in the module the import statement is (lazy imports count too); outside
    modules imported in a function body and listed in LAZY_THIRD_PARTY are left out."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    inner: set[str] = set()
    outer: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lazy = in_functions(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops = {alias.name.split(".")[0] for alias in node.names}
            outer.update(tops - LAZY_THIRD_PARTY if id(node) in lazy else tops)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                top = (node.module or "").split(".")[0]
                if id(node) not in lazy or top not in LAZY_THIRD_PARTY:
                    outer.add(top)
                continue
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # "from . import worker" names a module
                candidate = f"{target}.{alias.name}"
                inner.add(candidate if candidate in MODULES else target)
    inner.discard(name)
    return inner, outer


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_layout_is_found() -> None:
    assert {"runner.protocol", "runner.framing", "runner.syscalls"} <= set(MODULES)
    assert "runner.roles.supervisor" in GRAPH["runner.roles.template"][0]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_only_the_standard_library(name: str) -> None:
    _, outer = GRAPH[name]
    outside = sorted(m for m in outer if m != "__future__" and m not in sys.stdlib_module_names)
    assert outside == [], f"{name} imports {outside}: the runner is stdlib-only"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_small(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by what it holds"


RUNNER_GRAPH = {name: inner for name, (inner, _) in GRAPH.items()}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_cycle(name: str) -> None:
    cycle = find_cycle(RUNNER_GRAPH, name)
    assert cycle is None, " -> ".join(cycle)


# -- the host side: the whole package -------------------------------------------------

PACKAGE = RUNNER.parent
HOST_MODULES = {
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
    for p in sorted(PACKAGE.rglob("*.py"))
    if RUNNER not in p.parents
}


def _host_imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports outside function bodies (imports
    under ``if TYPE_CHECKING:`` count: they too tie the modules' layering)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return absolute_imports(tree, HOST_MODULES, lazy=False)


HOST_GRAPH = {name: _host_imports(path) for name, path in HOST_MODULES.items()}


def _not_a_package(name: str) -> bool:
    # a package's __init__ is not an edge back: importing a submodule runs it first, but
    # what it re-exports is the submodules' own business
    return HOST_MODULES[name].name != "__init__.py"


def test_the_host_layout_is_found() -> None:
    assert "sandbox_tool.engines.runners.driver" in HOST_GRAPH["sandbox_tool.engines.runner_engine"]


@pytest.mark.parametrize("name", sorted(HOST_MODULES))
def test_host_module_is_small(name: str) -> None:
    lines = len(HOST_MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by what it holds"


@pytest.mark.parametrize("name", sorted(HOST_MODULES))
def test_no_host_import_cycle(name: str) -> None:
    cycle = find_cycle(HOST_GRAPH, name, _not_a_package)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles_and_skips_edges_it_is_told_to() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph, "a") == ["a", "b", "c", "a"]
    assert find_cycle(graph, "d") is None
    assert find_cycle(graph, "a", lambda name: name != "c") is None
