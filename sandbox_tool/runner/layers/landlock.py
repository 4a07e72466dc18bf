"""Landlock: the kernel's unprivileged file-system and network access control.

Stdlib only (ctypes for the three system calls). Two steps, because the rule
paths must be opened while they can still be reached (FIELD_NOTES 8) and the
ruleset must be built by the sandbox that uses it (FIELD_NOTES 9)::

    prepared = prepare({"read_only": ["/usr", sys.prefix], "read_write": [work, tmp]})
    ...                                   # drop privileges, change root, ...
    report = prepared.enforce()           # sets no_new_privs, then restrict_self

``prepare`` opens every rule path with ``O_PATH`` and creates nothing in the
kernel; ``enforce`` creates the ruleset with only the rights the running ABI
knows, adds the rules, restricts the calling thread and closes every fd. The
report names exactly what was handled, granted and scoped.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
import time
from collections.abc import Iterable
from typing import Any

from .. import syscalls
from ..syscalls import PR_SET_NO_NEW_PRIVS

__all__ = [
    "FS_RIGHTS",
    "LandlockUnavailable",
    "PreparedRuleset",
    "abi_version",
    "apply",
    "prepare",
    "supported",
]

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # every arch
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2

# name -> (bit, first ABI that knows it); include/uapi/linux/landlock.h
FS_RIGHTS: dict[str, tuple[int, int]] = {
    "execute": (1 << 0, 1),
    "write_file": (1 << 1, 1),
    "read_file": (1 << 2, 1),
    "read_dir": (1 << 3, 1),
    "remove_dir": (1 << 4, 1),
    "remove_file": (1 << 5, 1),
    "make_char": (1 << 6, 1),
    "make_dir": (1 << 7, 1),
    "make_reg": (1 << 8, 1),
    "make_sock": (1 << 9, 1),
    "make_fifo": (1 << 10, 1),
    "make_block": (1 << 11, 1),
    "make_sym": (1 << 12, 1),
    "refer": (1 << 13, 2),
    "truncate": (1 << 14, 3),
    "ioctl_dev": (1 << 15, 5),
}
NET_RIGHTS: dict[str, tuple[int, int]] = {"bind_tcp": (1 << 0, 4), "connect_tcp": (1 << 1, 4)}
SCOPES: dict[str, tuple[int, int]] = {"abstract_unix_socket": (1 << 0, 6), "signal": (1 << 1, 6)}

# rights that make sense on a file that is not a directory
_FILE_RIGHTS = {"execute", "write_file", "read_file", "truncate", "ioctl_dev"}
READ_ONLY = ("read_file", "read_dir")
READ_WRITE = (
    "read_file", "read_dir", "write_file", "truncate", "remove_dir", "remove_file",
    "make_dir", "make_reg", "make_sym", "make_fifo", "make_sock", "refer",
)  # fmt: skip
DEVICE = ("read_file", "write_file", "truncate", "ioctl_dev")


_libc = syscalls.libc  # looked up at each call, so that tests can stand in for the kernel


class LandlockUnavailable(OSError):
    """Landlock cannot be used here; the message names what is missing."""


def abi_version() -> int:
    """The running kernel's landlock ABI (1, 2, ...); raise :class:`LandlockUnavailable`."""
    libc = _libc()
    abi = int(
        libc.syscall(
            ctypes.c_long(_SYS_CREATE_RULESET),
            None,
            ctypes.c_size_t(0),
            ctypes.c_uint32(_CREATE_RULESET_VERSION),
        )
    )
    if abi > 0:
        return abi
    err = ctypes.get_errno()
    if err == errno.ENOSYS:
        why = "the kernel was built without landlock (CONFIG_SECURITY_LANDLOCK, Linux 5.13+)"
    elif err == errno.EOPNOTSUPP:
        why = "landlock is built in but disabled: add 'landlock' to the lsm= boot parameter"
    else:
        why = f"landlock_create_ruleset(VERSION) failed: {os.strerror(err)}"
    raise LandlockUnavailable(err, why)


def supported() -> dict[str, Any]:
    """What landlock offers here, without restricting anything (for availability checks)."""
    try:
        abi = abi_version()
    except LandlockUnavailable as exc:
        return {"available": False, "abi": 0, "reason": exc.strerror}
    return {
        "available": True,
        "abi": abi,
        "fs": [n for n, (_, v) in FS_RIGHTS.items() if v <= abi],
        "net": [n for n, (_, v) in NET_RIGHTS.items() if v <= abi],
        "scopes": [n for n, (_, v) in SCOPES.items() if v <= abi],
        "reason": f"landlock ABI {abi}",
    }


def _mask(table: dict[str, tuple[int, int]], names: Iterable[str], abi: int) -> int:
    bits = 0
    for name in names:
        bit, since = table[name]
        if since <= abi:
            bits |= bit
    return bits


def _names(table: dict[str, tuple[int, int]], bits: int) -> list[str]:
    return [name for name, (bit, _) in table.items() if bits & bit]


class PreparedRuleset:
    """Rule paths opened with ``O_PATH``; nothing enforced yet. See :func:`prepare`."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.abi = abi_version()
        if spec.get("max_abi"):  # behave as on an older kernel (tests, pinned policies)
            self.abi = min(self.abi, int(spec["max_abi"]))
        self.spec = spec
        self.rules: list[tuple[str, int, tuple[str, ...]]] = []  # (path, fd, right names)
        self.missing: list[str] = []
        groups = (
            ("read_only", READ_ONLY),
            ("read_write", READ_WRITE),
            ("devices", DEVICE),
            ("executable", ("execute", "read_file", "read_dir")),
        )
        try:
            for key, rights in groups:
                for path in spec.get(key, ()):
                    try:
                        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                    except FileNotFoundError:
                        self.missing.append(path)
                        continue
                    self.rules.append((path, fd, rights))
        except BaseException:
            self.close()
            raise
        if self.missing and spec.get("strict", False):
            self.close()
            raise FileNotFoundError(errno.ENOENT, f"landlock rule paths missing: {self.missing}")

    def close(self) -> None:
        for _, fd, _ in self.rules:
            try:
                os.close(fd)
            except OSError:
                pass
        self.rules = []

    def enforce(self) -> dict[str, Any]:
        """Create the ruleset, add the rules, restrict this thread; return the report.

        Sets ``no_new_privs`` first (landlock requires it without CAP_SYS_ADMIN).
        Irreversible: call it in the (forked) process to be sandboxed.
        """
        started = time.perf_counter()
        abi, spec, libc = self.abi, self.spec, _libc()
        handled_fs = _mask(FS_RIGHTS, FS_RIGHTS, abi)
        restrict_tcp = bool(spec.get("restrict_tcp", True))
        handled_net = _mask(NET_RIGHTS, NET_RIGHTS, abi) if restrict_tcp else 0
        wanted_scopes = [
            s for s in ("signal", "abstract_unix_socket") if spec.get(f"scope_{s}", True)
        ]
        scoped = _mask(SCOPES, wanted_scopes, abi)
        # the struct grew with the ABI; pass only the fields this kernel knows
        size = 24 if abi >= 6 else 16 if abi >= 4 else 8
        attr = ctypes.create_string_buffer(
            struct.pack("<QQQ", handled_fs, handled_net, scoped)[:size], size
        )
        ruleset = int(
            libc.syscall(ctypes.c_long(_SYS_CREATE_RULESET), attr, ctypes.c_size_t(size), 0)
        )
        if ruleset < 0:
            err = ctypes.get_errno()
            self.close()
            raise LandlockUnavailable(err, f"landlock_create_ruleset: {os.strerror(err)}")
        granted: list[dict[str, Any]] = []
        try:
            for path, fd, rights in self.rules:
                names = list(rights)
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    names = [n for n in names if n in _FILE_RIGHTS]
                allowed = _mask(FS_RIGHTS, names, abi) & handled_fs
                rule = ctypes.create_string_buffer(struct.pack("<Qi", allowed, fd), 12)
                if libc.syscall(ctypes.c_long(_SYS_ADD_RULE), ruleset, _RULE_PATH_BENEATH, rule, 0):
                    err = ctypes.get_errno()
                    raise LandlockUnavailable(err, f"landlock_add_rule({path}): {os.strerror(err)}")
                granted.append({"path": path, "access": _names(FS_RIGHTS, allowed)})
            ports: list[dict[str, Any]] = []
            for right in ("bind_tcp", "connect_tcp") if handled_net else ():
                for port in spec.get(f"{right}_ports", ()):
                    rule = ctypes.create_string_buffer(
                        struct.pack("<QQ", NET_RIGHTS[right][0], int(port)), 16
                    )
                    if libc.syscall(ctypes.c_long(_SYS_ADD_RULE), ruleset, _RULE_NET_PORT, rule, 0):
                        err = ctypes.get_errno()
                        raise LandlockUnavailable(
                            err, f"landlock_add_rule(port {port}): {os.strerror(err)}"
                        )
                    ports.append({"port": int(port), "access": [right]})
            if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                err = ctypes.get_errno()
                raise LandlockUnavailable(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
            if libc.syscall(ctypes.c_long(_SYS_RESTRICT_SELF), ruleset, 0) != 0:
                err = ctypes.get_errno()
                raise LandlockUnavailable(err, f"landlock_restrict_self: {os.strerror(err)}")
        finally:
            os.close(ruleset)
            self.close()
        wanted_net = [] if not restrict_tcp else list(NET_RIGHTS)
        unsupported = [n for n, (_, v) in FS_RIGHTS.items() if v > abi]
        unsupported += [n for n in wanted_net if NET_RIGHTS[n][1] > abi]
        unsupported += [f"scope_{n}" for n in wanted_scopes if SCOPES[n][1] > abi]
        return {
            "applied": True,
            "abi": abi,
            "handled_fs": _names(FS_RIGHTS, handled_fs),
            "handled_net": _names(NET_RIGHTS, handled_net),
            "scoped": _names(SCOPES, scoped),
            "rules": granted,
            "net_rules": ports,
            "missing_paths": self.missing,
            "unsupported_by_abi": unsupported,
            "enforce_ms": round((time.perf_counter() - started) * 1000, 3),
        }


def prepare(spec: dict[str, Any]) -> PreparedRuleset:
    """Open the rule paths of a JSON-able ``spec`` with ``O_PATH`` (nothing enforced).

    ``spec`` keys, all optional:

    - ``read_only``: paths readable below (``read_file``, ``read_dir``);
    - ``read_write``: paths with every right but ``execute``, ``make_char``,
      ``make_block`` and ``ioctl_dev``;
    - ``devices``: device files to read, write and ioctl (``/dev/null``...);
    - ``executable``: paths whose files may be ``execve``'d (default none: the
      sandbox runs no other program);
    - ``restrict_tcp`` (default True): handle TCP bind/connect (ABI 4+), with
      only the ports in ``bind_tcp_ports`` / ``connect_tcp_ports`` allowed;
    - ``scope_signal``, ``scope_abstract_unix_socket`` (default True, ABI 6+);
    - ``strict`` (default False): raise if a rule path does not exist
      (otherwise it is skipped and listed in the report's ``missing_paths``);
    - ``max_abi``: use no right newer than this ABI (as on an older kernel).

    Raises :class:`LandlockUnavailable` when the kernel has no landlock.
    """
    return PreparedRuleset(spec)


def apply(spec: dict[str, Any]) -> dict[str, Any]:
    """``prepare(spec).enforce()`` in one call, for code that has no privilege to drop."""
    return prepare(spec).enforce()
