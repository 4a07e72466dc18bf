"""The system calls the runner makes through libc, and small process helpers (stdlib only).

libc is loaded once per process (:func:`libc`), lazily, and every ``PR_*`` option the
runner passes to ``prctl(2)`` is named here. Wrappers raise
:class:`SandboxSetupError` with the call and the errno's text when a call fails, except
:func:`try_prctl`, which says only whether it worked (and is False off Linux).
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = [
    "PR_CAPBSET_DROP",
    "PR_CAPBSET_READ",
    "PR_CAP_AMBIENT",
    "PR_CAP_AMBIENT_CLEAR_ALL",
    "PR_SET_CHILD_SUBREAPER",
    "PR_SET_DUMPABLE",
    "PR_SET_KEEPCAPS",
    "PR_SET_NO_NEW_PRIVS",
    "PR_SET_PDEATHSIG",
    "PR_SET_SECCOMP",
    "SandboxSetupError",
    "check",
    "describe",
    "kill_quietly",
    "libc",
    "mount",
    "prctl",
    "read_all",
    "syscall",
    "thread_count",
    "try_prctl",
    "umount",
    "unshare",
]

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4  # the PR_CAP_AMBIENT sub-command

MNT_DETACH = 2

_LINUX = sys.platform.startswith("linux")
_libc: list[ctypes.CDLL] = []


class SandboxSetupError(OSError):
    """A sandbox layer could not be set up; the message says which and why."""


def libc() -> ctypes.CDLL:
    """This process's C library, with errno kept for :func:`ctypes.get_errno`."""
    if not _libc:
        _libc.append(ctypes.CDLL(None, use_errno=True))
    return _libc[0]


def check(rc: int, what: str) -> int:
    """``rc``, or :class:`SandboxSetupError` naming ``what`` if it is negative."""
    if rc < 0:
        err = ctypes.get_errno()
        raise SandboxSetupError(err, f"{what}: {os.strerror(err)}")
    return rc


def describe(exc: BaseException) -> str:
    """An exception as one line for a report (an OSError's own text says enough)."""
    return str(exc) if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"


def prctl(option: int, arg: int = 0) -> int:
    """``prctl(option, arg, 0, 0, 0)``'s return value (Linux only; -1 and errno on failure)."""
    return int(libc().prctl(option, ctypes.c_ulong(arg), 0, 0, 0))


def try_prctl(option: int, value: int) -> bool:
    """Call prctl(2) on Linux; False elsewhere or on failure."""
    if not _LINUX:
        return False
    return prctl(option, value) == 0


def _path(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def unshare(flags: int, what: str) -> None:
    """Move this process into new namespaces (``what`` names the flags for the error)."""
    check(libc().unshare(ctypes.c_int(flags)), f"unshare({what})")


def mount(
    src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    rc = libc().mount(_path(src), _path(dst), _path(fstype), ctypes.c_ulong(flags), _path(data))
    check(rc, f"mount({src!r} -> {dst!r}, {fstype or 'bind'})")


def umount(path: str) -> None:
    """Detach the mount at ``path`` (lazily: ``MNT_DETACH``)."""
    check(libc().umount2(_path(path), MNT_DETACH), f"umount2({path!r})")


def syscall(number: int, *args: bytes | None) -> int:
    """A raw system call by number (for calls libc does not wrap, such as pivot_root)."""
    return int(libc().syscall(ctypes.c_long(number), *args))


def thread_count() -> int:
    """This process's threads (Linux; OSError without /proc)."""
    return len(os.listdir("/proc/self/task"))


def kill_quietly(pid: int, sig: int) -> None:
    """Send ``sig`` to ``pid``, which may be gone already."""
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def read_all(fd: int) -> bytes:
    """Read ``fd`` to its end."""
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
