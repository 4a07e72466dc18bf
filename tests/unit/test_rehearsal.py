"""A waiting runner's rehearsal (``worker.rehearse``): it runs the worker's whole path
for a cell, the value's and the error's, and leaves nothing behind for the code that
comes next. Run in a fresh interpreter: ``run_code`` swaps the process's builtins."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

CHECK = r"""
import builtins, gc, json, linecache, sys, types
from sandbox_tool.runner.protocol import USER_FILENAME
from sandbox_tool.runner.roles import worker

main_before = sys.modules["__main__"]
builtins_before = dict(builtins.__dict__)
gc.disable()  # what the rehearsal made must be gone without a collection
statuses = worker.rehearse()
left = [o for o in gc.get_objects()
        if isinstance(o, types.ModuleType) and o.__name__ == "__rehearsal__"]
print(json.dumps({
    "statuses": statuses,
    "main_kept": sys.modules["__main__"] is main_before,
    "builtins_kept": builtins.__dict__ == builtins_before,
    "source_cached": USER_FILENAME in linecache.cache,
    "modules_left": len(left),
}))
"""


def test_a_rehearsal_runs_both_paths_and_leaves_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr == ""
    *printed, last = done.stdout.splitlines()
    assert printed == []  # the rehearsals print nothing
    assert json.loads(last) == {
        "statuses": ["ok", "error"],
        "main_kept": True,
        "builtins_kept": True,
        "source_cached": False,
        "modules_left": 0,
    }


def test_a_runner_rehearses_only_while_no_request_waits() -> None:
    """``cells._readable`` decides: a request already on the channel (usually a cold
    runner's) is answered at once. Channels numbered past select's FD_SETSIZE work too."""
    from sandbox_tool.runner.roles.cells import _readable

    r, w = os.pipe()
    # a descriptor past FD_SETSIZE (1024) where this process may have one
    fds = [r, os.dup2(r, 1500)] if resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 1500 else [r]
    try:
        assert not any(_readable(fd) for fd in fds)
        os.write(w, b"\0\0\0\2{}")
        assert all(_readable(fd) for fd in fds)
    finally:
        for fd in {*fds, w}:
            os.close(fd)
