"""The native engine against the engine contract: with its seccomp filter (the default on
Linux), and without it (``seccomp=False``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sandbox_tool.engines.native import NativeEngine

from .engine_contract import EngineContract, SessionContract

_FILTERED = sys.platform.startswith("linux")


class TestNativeEngine(EngineContract, SessionContract):
    """Cold: a fresh interpreter per execution, with the filter where the kernel has it."""

    # the filter refuses fork: the code can start no process at all
    can_fork = not _FILTERED
    # RLIMIT_NPROC does not apply to root (FIELD_NOTES 6); the filter refuses every fork
    enforces_process_limit = _FILTERED or os.geteuid() != 0

    def make_engine(self, work_root: Path) -> NativeEngine:
        return NativeEngine(work_root=work_root, warm=False)


class TestNativeEngineWarm(TestNativeEngine):
    """Warm: runners forked from a template that has the stack imported."""

    warm = True

    def make_engine(self, work_root: Path) -> NativeEngine:
        return NativeEngine(work_root=work_root, warm=True)


class TestNativeEngineUnfiltered(TestNativeEngineWarm):
    """``seccomp=False``: the code may fork and run programs; the tree is still killed."""

    can_fork = True
    enforces_process_limit = os.geteuid() != 0

    def make_engine(self, work_root: Path) -> NativeEngine:
        return NativeEngine(work_root=work_root, warm=True, seccomp=False)


#: The contract tests whose outcome the filter changes: the others ran above already.
_FILTER_DEPENDENT = {
    "test_fork_in_user_code_reports_once",
    "test_timeout_kills_grandchildren_and_setsid_children",
    "test_daemonised_children_do_not_outlive_the_run",
    "test_process_limit",
}
for _name in [n for n in dir(TestNativeEngineUnfiltered) if n.startswith("test_")]:
    if _name not in _FILTER_DEPENDENT:
        setattr(TestNativeEngineUnfiltered, _name, None)  # not collected: not a function
