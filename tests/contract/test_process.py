"""The process engine (namespaces, landlock, seccomp) against the engine contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox_tool.engines.process import ProcessEngine

from .engine_contract import EngineContract, SessionContract

_INFO = ProcessEngine.probe()
pytestmark = pytest.mark.skipif(
    not _INFO.available, reason=f"process engine unavailable here: {_INFO.reason}"
)


class TestProcessEngine(EngineContract, SessionContract):
    """Cold: a fresh interpreter in a fresh sandbox per execution."""

    def make_engine(self, work_root: Path) -> ProcessEngine:
        return ProcessEngine(work_root=work_root, warm=False)

    def test_results_name_the_layers_they_ran_under(self) -> None:
        _assert_full_isolation(self.run("result = 1").isolation)


class TestProcessEngineWarm(TestProcessEngine):
    """Warm: runners forked from a template, each in a fresh sandbox of its own."""

    warm = True

    def make_engine(self, work_root: Path) -> ProcessEngine:
        return ProcessEngine(work_root=work_root, warm=True)

    def test_session_cells_name_the_layers_they_ran_under(self) -> None:
        for cell in self.cells("x = 1", "x + 1"):
            _assert_full_isolation(cell.isolation)


def _assert_full_isolation(isolation: dict[str, Any] | None) -> None:
    assert isolation is not None
    assert all(isolation["namespaces"].values())
    assert isolation["private_root"] and isolation["no_new_privs"]
    assert isolation["landlock"]["applied"] and isolation["seccomp"]["applied"]
