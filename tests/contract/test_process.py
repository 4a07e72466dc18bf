"""The process engine (namespaces, landlock, seccomp) against the engine contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox_tool.engines.process import ProcessEngine

from .engine_contract import EngineContract, SessionContract

_INFO = ProcessEngine.probe()
pytestmark = pytest.mark.skipif(
    not _INFO.available, reason=f"process engine unavailable here: {_INFO.reason}"
)


class TestProcessEngine(EngineContract):
    """Cold: a fresh interpreter in a fresh sandbox per execution."""

    def make_engine(self, work_root: Path) -> ProcessEngine:
        return ProcessEngine(work_root=work_root, warm=False)


class TestProcessEngineWarm(TestProcessEngine, SessionContract):
    """Warm: runners forked from a template, each in a fresh sandbox of its own."""

    warm = True

    def make_engine(self, work_root: Path) -> ProcessEngine:
        return ProcessEngine(work_root=work_root, warm=True)
