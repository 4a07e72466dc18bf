"""The native engine against the engine contract."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox_tool.engines.native import NativeEngine

from .engine_contract import EngineContract, SessionContract


class TestNativeEngine(EngineContract, SessionContract):
    """Cold: a fresh interpreter per execution."""

    # RLIMIT_NPROC does not apply to root (FIELD_NOTES 6)
    enforces_process_limit = os.geteuid() != 0

    def make_engine(self, work_root: Path) -> NativeEngine:
        return NativeEngine(work_root=work_root, warm=False)


class TestNativeEngineWarm(TestNativeEngine):
    """Warm: runners forked from a template that has the stack imported."""

    warm = True

    def make_engine(self, work_root: Path) -> NativeEngine:
        return NativeEngine(work_root=work_root, warm=True)
