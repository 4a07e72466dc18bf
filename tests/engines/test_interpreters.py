"""The runner is stdlib-only: it runs on any interpreter 3.10+, without sandbox_tool there."""

from __future__ import annotations

import glob
import sys

import pytest

from sandbox_tool import ExecutionError, ImportNotAllowed, PythonSandbox

CANDIDATES = sorted(
    {
        *glob.glob("/usr/bin/python3.1[0-9]"),
        *glob.glob("/root/.pyenv/versions/3.1[0-9].*/bin/python3"),
        *glob.glob("/usr/local/bin/python3.1[0-9]"),
    }
)


@pytest.mark.skipif(not CANDIDATES, reason="no other Python 3.10+ interpreter on this machine")
@pytest.mark.parametrize("python", CANDIDATES or ["none"])
def test_other_interpreters(python: str) -> None:
    sandbox = PythonSandbox("native", interpreter=python, warm=False)
    res = sandbox.execute_sync("import sys\nsys.version_info[:2]")
    assert res.result[0] == 3 and res.result[1] >= 10
    with pytest.raises(ImportNotAllowed):
        sandbox.execute_sync("import socket")
    with pytest.raises(ExecutionError) as info:
        sandbox.execute_sync("def f():\n    return 1 / 0\nf()")
    assert info.value.lineno == 2 and info.value.exception == "ZeroDivisionError"
    # the runner's directory is not left on the code's sys.path
    probe = sandbox.execute_sync("import sys\n[p for p in sys.path if 'sandbox_tool' in p]")
    assert probe.result == []


def test_interpreter_defaults_to_the_current_one() -> None:
    assert PythonSandbox("native", warm=False).engine.interpreter == sys.executable
