"""Ending the processes a cell left behind (stdlib only, Linux).

A session keeps its state in ``__main__``, not in processes: before a cell's answer
is sent, the worker kills every process the cell started, so that a daemon or a
``setsid`` spinner cannot keep burning the host's CPU between cells.

Two ways to find them, both cheap when there is none (the usual case: one
``waitpid`` that fails with ``ECHILD``):

- the worker is the child subreaper of its own descendants (:func:`adopt_orphans`), so
  every one of them, ``setsid``'d or not, is a child of the worker or of one of its
  children; without a pid namespace (the native engine) they are killed by walking
  /proc, and the worker reaps them before it answers;
- in a sandbox with its own pid namespace, ``kill(-1, SIGKILL)`` from the worker
  reaches every task of the namespace except its pid 1 and the worker itself, also
  those the code took out of the worker's care (``PR_SET_CHILD_SUBREAPER`` undone):
  pid 1 reaps those.

The functions the code could replace (``os.kill``, ``os.waitpid``) are bound at import.
"""

from __future__ import annotations

import os
import signal
import sys

from .syscalls import PR_SET_CHILD_SUBREAPER, try_prctl

__all__ = ["adopt_orphans", "children_of", "end_strays"]

_kill, _waitpid, _listdir, _getpid = os.kill, os.waitpid, os.listdir, os.getpid
_SIGKILL, _WNOHANG = signal.SIGKILL, os.WNOHANG
_LINUX = sys.platform.startswith("linux")


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc scan)."""
    kids = []
    for entry in _listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the fields after the command name, which may itself hold spaces and parens
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def adopt_orphans() -> bool:
    """Make this process the child subreaper of its descendants; whether it worked."""
    return try_prctl(PR_SET_CHILD_SUBREAPER, 1)


def end_strays(own_pid_namespace: bool) -> int:
    """Kill and reap every process this worker's code started; how many were reaped.

    ``own_pid_namespace``: the worker is in a pid namespace of its sandbox, where
    ``kill(-1)`` reaches only the sandbox (never pass True elsewhere: outside one,
    ``kill(-1)`` reaches every process of the uid on the host).
    """
    if own_pid_namespace:
        try:
            _kill(-1, _SIGKILL)  # every task of the namespace but pid 1 and this one
        except OSError:
            pass  # ESRCH: nothing else runs (the usual case)
    if not (own_pid_namespace or _LINUX):
        return 0  # no way to find them here: the supervisor kills the process group at the end
    try:
        _waitpid(-1, _WNOHANG)
    except ChildProcessError:
        return 0  # no child at all: one system call in the usual case
    reaped, me = 0, _getpid()
    while True:
        if not own_pid_namespace and _LINUX:
            for kid in children_of(me):
                try:
                    _kill(kid, _SIGKILL)
                except OSError:
                    pass
        try:
            _waitpid(-1, 0)
            reaped += 1
        except ChildProcessError:
            return reaped
        except InterruptedError:
            continue
