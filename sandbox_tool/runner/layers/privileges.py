"""The sandbox's privileges: its ids, its capabilities, and what it may gain later.

In the sandbox's own user namespace the innermost process changes to the plan's uid and
gid, empties every capability set, and sets ``no_new_privs`` (which landlock and seccomp
require); :func:`set_dumpable` controls who may ptrace it or write its ``/proc`` files.
"""

from __future__ import annotations

import ctypes
import errno
import os

from .. import syscalls
from ..syscalls import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAPBSET_DROP,
    PR_CAPBSET_READ,
    PR_SET_DUMPABLE,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    check,
)

__all__ = ["become", "drop_bounding", "drop_capabilities", "set_dumpable", "set_no_new_privs"]

_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def drop_bounding() -> None:
    """Empty the bounding and ambient sets (dropping needs ``CAP_SETPCAP``: call it
    before a uid change takes the capabilities away; one already dropped is skipped)."""
    libc = syscalls.libc()
    for cap in range(64):
        held = libc.prctl(PR_CAPBSET_READ, ctypes.c_ulong(cap), 0, 0, 0)
        if held < 0:
            if ctypes.get_errno() == errno.EINVAL:  # past the last capability
                break
            check(-1, f"prctl(PR_CAPBSET_READ, {cap})")
        if held and libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
            check(-1, f"prctl(PR_CAPBSET_DROP, {cap})")
    cleared = libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == 0
    # EINVAL: a kernel without ambient capabilities (gVisor's), so none to clear
    if not cleared and ctypes.get_errno() != errno.EINVAL:
        check(-1, "clear ambient caps")


def drop_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets.

    setresuid() does not clear them here: uid 0 is not mapped in the sandbox's
    namespace, so the kernel never saw a root-to-nonroot transition.
    """
    libc = syscalls.libc()
    drop_bounding()
    check(libc.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS, 0)")
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    check(libc.capset(ctypes.byref(header), data), "capset(empty)")


def become(uid: int, gid: int) -> None:
    """Change to ``uid`` and ``gid`` (real, effective, saved) and drop every capability."""
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    drop_capabilities()


def set_dumpable(dumpable: bool) -> None:
    """Whether same-uid processes may ptrace this one and its ``/proc`` files are its
    uid's (a uid change clears it, FIELD_NOTES 7)."""
    syscalls.prctl(PR_SET_DUMPABLE, int(dumpable))


def set_no_new_privs() -> None:
    """No exec may grant privileges again (setuid binaries, file capabilities)."""
    check(syscalls.prctl(PR_SET_NO_NEW_PRIVS, 1), "prctl(PR_SET_NO_NEW_PRIVS)")
