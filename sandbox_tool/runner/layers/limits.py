"""Resource limits: the code's rlimits, and the sandbox's cap on its processes.

:func:`apply_limits` runs in every worker (any platform) before the code's namespace is
made; :func:`move_cpu_limit` before each session cell that names a CPU budget;
:func:`set_process_cap` in a sandbox, once its uid has changed.
"""

from __future__ import annotations

import errno
import os
import resource
import sys
from typing import Any

from ..protocol import Limits
from ..syscalls import SandboxSetupError

__all__ = ["apply_limits", "move_cpu_limit", "set_process_cap"]


def _count_processes_of(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return count


def apply_limits(limits: Limits) -> None:
    """Set the execution's rlimits (and no core dumps)."""

    def set_limit(which: int, value: int) -> None:
        current = resource.getrlimit(which)
        hard = current[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        wanted = (value, value if which != resource.RLIMIT_CPU else hard)
        if wanted != current:  # gVisor reports RLIMIT_SIGPENDING as 0 and refuses to set it
            resource.setrlimit(which, wanted)

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits.get("memory_bytes"):
        set_limit(resource.RLIMIT_AS, int(limits["memory_bytes"] or 0))
    if limits.get("file_bytes"):
        set_limit(resource.RLIMIT_FSIZE, int(limits["file_bytes"] or 0))
    if limits.get("open_files"):
        set_limit(resource.RLIMIT_NOFILE, int(limits["open_files"] or 0))
    if limits.get("processes") and os.getuid() != 0 and sys.platform.startswith("linux"):
        # RLIMIT_NPROC counts every task of the real uid on the machine (FIELD_NOTES 6)
        budget = _count_processes_of(os.getuid()) + int(limits["processes"] or 0)
        set_limit(resource.RLIMIT_NPROC, budget)
    if limits.get("pending_signals"):
        set_limit(resource.RLIMIT_SIGPENDING, int(limits["pending_signals"] or 0))
    cpu = limits.get("cpu_seconds")
    if cpu:
        # soft limit: SIGXCPU kills the process; the hard limit one second later: SIGKILL
        resource.setrlimit(resource.RLIMIT_CPU, (int(cpu), int(cpu) + 1))


def move_cpu_limit(seconds: int) -> None:
    """Let the next cell use ``seconds`` more CPU (the soft limit is per process)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def set_process_cap(limit: int) -> dict[str, Any]:
    """Cap the tasks (processes and threads) this sandbox may have at ``limit``.

    Works the same for root and non-root callers because the caller is in a
    user namespace of its own, as an uid that is not host root: the kernel
    counts ``RLIMIT_NPROC`` per (user namespace, uid), so only this sandbox's
    tasks count, and the root exemption does not apply (FIELD_NOTES 6).
    Call it after the uid change (setuid checks the limit) and before user code.
    """
    if os.getuid() == 0 or _userns_inode("/proc/self/ns/user") == _userns_inode("/proc/1/ns/user"):
        raise SandboxSetupError(
            errno.EINVAL,
            "RLIMIT_NPROC caps a sandbox only as a non-root uid in its own user namespace",
        )
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    return {"limit": limit, "scope": "own user namespace", "counts": "processes and threads"}


def _userns_inode(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""
