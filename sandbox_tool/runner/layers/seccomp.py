"""A seccomp filter for the sandbox, written as classic BPF by hand (stdlib only).

The filter is a deny list on top of the namespaces and landlock: everything not
listed is allowed, the listed calls fail with ``EPERM`` (Python raises
``PermissionError``), ``clone3`` fails with ``ENOSYS`` so that glibc falls back
to ``clone``, whose flags the filter can inspect (FIELD_NOTES 10). A system
call made under another ABI than the one the filter was built for (i386 via
``int 0x80`` on x86_64, for instance) kills the process; x32 calls on x86_64
fail with ``EPERM``.

Refused calls get ``EPERM``, not ``ENOSYS``, on purpose: the kernel has them and
the sandbox forbids them. ``ENOSYS`` would tell a library that the feature is
missing from this kernel, so that it takes a silent fallback or reports a wrong
cause; ``PermissionError`` says what happened. The list covers, besides the
escape routes (ptrace, mounts, namespaces, bpf, io_uring, keyrings), memory that
``RLIMIT_AS`` does not count (memfd, SysV shared memory) and kernel counters
charged to the user who owns the sandbox's user namespace, which is the host's
user too (inotify and fanotify instances, SysV IPC and POSIX message queues).

Example::

    program = build_filter(network=False)
    report = install_filter(program)        # sets no_new_privs first

or, in one step, ``report = apply({"network": False})``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import time
from collections.abc import Iterable, Sequence
from typing import Any

from .. import syscalls
from ..syscalls import PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP

__all__ = [
    "ARCHES",
    "DENIED_SYSCALLS",
    "EXEC_SYSCALLS",
    "FORK_SYSCALLS",
    "SeccompError",
    "apply",
    "build_filter",
    "install_filter",
    "native_arch",
]

# --- kernel constants (linux/seccomp.h, linux/filter.h, linux/audit.h) ---
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_MODE_FILTER = 2

BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_ALU_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
BPF_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K

# offsets in struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6];}
_OFF_NR = 0
_OFF_ARCH = 4


def _arg_low(index: int) -> int:
    """Offset of the low 32 bits of argument ``index`` (little-endian only)."""
    return 16 + 8 * index


X32_SYSCALL_BIT = 0x40000000

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
SOCK_STREAM, SOCK_DGRAM = 1, 2
SOCK_TYPE_MASK = 0xF  # the rest of the type argument is SOCK_NONBLOCK/SOCK_CLOEXEC

CLONE_THREAD = 0x00010000  # a thread of the caller, not a new process

# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET. CLONE_NEWTIME
# (0x80) is left out: in clone() that bit belongs to the exit signal and the
# kernel only honours NEWTIME through clone3 (ENOSYS here) and unshare (denied).
CLONE_NAMESPACE_FLAGS = 0x7E020000

TIOCSTI = 0x5412  # push bytes into a terminal's input queue
TIOCLINUX = 0x541C

# Syscalls that fail with EPERM. Names missing from an arch table (iopl on
# aarch64, ...) are simply not there to call.
DENIED_SYSCALLS: tuple[str, ...] = (
    # looking into or writing other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    # the mount API, old and new
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
    "open_tree_attr", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # kernel attack surface rarely needed by data code
    "bpf", "keyctl", "add_key", "request_key", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    # namespaces (clone with namespace flags is handled below)
    "unshare", "setns",
    # anonymous files hold memory that RLIMIT_AS does not count (a memory-limit escape)
    "memfd_create", "memfd_secret",
    # SysV IPC: shared memory lives outside RLIMIT_AS (another memory-limit escape); its
    # semaphores and queues are refused with it (data code uses none of them)
    "shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semtimedop", "semctl",
    "msgget", "msgsnd", "msgrcv", "msgctl",
    # counters charged to the user owning the sandbox's user namespace, so to the host's
    # user too: inotify and fanotify instances, POSIX message queue bytes
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    "fanotify_init", "fanotify_mark",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    # privileged leftovers: fail anyway without capabilities, denied for defence in depth
    "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "reboot", "acct",
    "syslog", "quotactl", "lookup_dcookie", "uselib", "iopl", "ioperm", "vhangup",
)  # fmt: skip


class _Arch:
    def __init__(self, name: str, audit: int, x32: bool, numbers: dict[str, int]) -> None:
        self.name = name
        self.audit = audit
        self.x32 = x32
        self.numbers = numbers


# Numbers from the kernel's arch/x86/entry/syscalls/syscall_64.tbl and the generic
# table used by arm64 (include/uapi/asm-generic/unistd.h); checked against the
# headers of this machine.
_X86_64 = {
    "ioctl": 16, "socket": 41, "socketpair": 53, "clone": 56, "ptrace": 101,
    "syslog": 103, "uselib": 134, "vhangup": 153, "pivot_root": 155, "chroot": 161,
    "acct": 163, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168,
    "reboot": 169, "iopl": 172, "ioperm": 173, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212, "kexec_load": 246,
    "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
    "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311,
    "finit_module": 313, "seccomp": 317, "kexec_file_load": 320, "bpf": 321,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435, "pidfd_getfd": 438,
    "mount_setattr": 442, "open_tree_attr": 467, "memfd_create": 319, "memfd_secret": 447,
    "execve": 59, "execveat": 322, "fork": 57, "vfork": 58,
    "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66,
    "shmdt": 67, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "semtimedop": 220,
    "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243,
    "mq_notify": 244, "mq_getsetattr": 245, "inotify_init": 253, "inotify_add_watch": 254,
    "inotify_rm_watch": 255, "inotify_init1": 294, "fanotify_init": 300, "fanotify_mark": 301,
}  # fmt: skip
_AARCH64 = {
    "lookup_dcookie": 18, "ioctl": 29, "umount2": 39, "mount": 40, "pivot_root": 41,
    "chroot": 51, "vhangup": 58, "quotactl": 60, "acct": 89, "unshare": 97,
    "kexec_load": 104, "init_module": 105, "delete_module": 106, "syslog": 116,
    "ptrace": 117, "reboot": 142, "socket": 198, "socketpair": 199, "add_key": 217,
    "request_key": 218, "keyctl": 219, "clone": 220, "swapon": 224, "swapoff": 225,
    "perf_event_open": 241, "name_to_handle_at": 264, "open_by_handle_at": 265,
    "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271,
    "finit_module": 273, "seccomp": 277, "bpf": 280, "userfaultfd": 282,
    "kexec_file_load": 294, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435, "pidfd_getfd": 438,
    "mount_setattr": 442, "open_tree_attr": 467, "memfd_create": 279, "memfd_secret": 447,
    "execve": 221, "execveat": 281,
    "inotify_init1": 26, "inotify_add_watch": 27, "inotify_rm_watch": 28, "mq_open": 180,
    "mq_unlink": 181, "mq_timedsend": 182, "mq_timedreceive": 183, "mq_notify": 184,
    "mq_getsetattr": 185, "msgget": 186, "msgctl": 187, "msgrcv": 188, "msgsnd": 189,
    "semget": 190, "semctl": 191, "semtimedop": 192, "semop": 193, "shmget": 194,
    "shmctl": 195, "shmat": 196, "shmdt": 197, "fanotify_init": 262, "fanotify_mark": 263,
}  # fmt: skip
# Denied calls that one architecture does not have at all (so nothing to filter there).
ABSENT_ON = {"aarch64": {"uselib", "iopl", "ioperm", "inotify_init", "fork", "vfork"}}
#: What ``programs=False`` refuses: every way to run another program.
EXEC_SYSCALLS = ("execve", "execveat")
#: What ``processes=False`` refuses besides ``clone`` without ``CLONE_THREAD``.
FORK_SYSCALLS = ("fork", "vfork")

ARCHES: dict[str, _Arch] = {
    "x86_64": _Arch("x86_64", 0xC000003E, True, _X86_64),
    "aarch64": _Arch("aarch64", 0xC00000B7, False, _AARCH64),
}
_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


class SeccompError(OSError):
    """The filter cannot be built or installed here; the message says why."""


def native_arch() -> str:
    """The name of this machine's arch in :data:`ARCHES` (raises if unsupported)."""
    machine = platform.machine().lower()
    machine = _MACHINE_ALIASES.get(machine, machine)
    if machine not in ARCHES:
        raise SeccompError(
            errno.ENOSYS, f"no seccomp syscall table for {machine!r} (have: {sorted(ARCHES)})"
        )
    return machine


class _Assembler:
    """Classic BPF with symbolic jump targets, resolved to 8-bit offsets."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int | str, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def load(self, offset: int) -> None:
        self.code.append((BPF_LD_W_ABS, 0, 0, offset))

    def and_(self, mask: int) -> None:
        self.code.append((BPF_ALU_AND_K, 0, 0, mask))

    def jump(self, op: int, k: int, jt: int | str, jf: int | str) -> None:
        self.code.append((op, jt, jf, k))

    def ret(self, value: int) -> None:
        self.code.append((BPF_RET_K, 0, 0, value))

    def assemble(self) -> bytes:
        out = bytearray()
        for pc, (op, jt, jf, k) in enumerate(self.code):
            offsets = []
            for target in (jt, jf):
                if isinstance(target, str):
                    delta = self.labels[target] - pc - 1
                    if not 0 <= delta <= 255:
                        raise SeccompError(errno.E2BIG, f"jump to {target} out of range")
                    offsets.append(delta)
                else:
                    offsets.append(target)
            out += struct.pack("<HBBI", op, offsets[0], offsets[1], k & 0xFFFFFFFF)
        return bytes(out)


def build_filter(
    *,
    arch: str | None = None,
    network: bool = False,
    unix_sockets: bool = True,
    allow_namespaces: bool = False,
    programs: bool = True,
    processes: bool = True,
    extra_denied: Iterable[str] = (),
) -> bytes:
    """Build the filter program: packed ``struct sock_filter`` entries.

    - ``network``: also allow ``socket(AF_INET | AF_INET6)`` of type
      ``SOCK_STREAM`` or ``SOCK_DGRAM`` (never raw, packet or netlink).
    - ``unix_sockets``: allow ``socket(AF_UNIX)``. With both off, ``socket()``
      fails for every family. ``socketpair(AF_UNIX)`` stays allowed in every
      mode: it reaches nothing outside and asyncio needs it for its self-pipe.
    - ``allow_namespaces``: skip the namespace rules (only for set-up code
      that still has to unshare; the sandbox itself never gets this).
    - ``programs``: allow ``execve``/``execveat`` (False: no other program can
      start, for code in a sandbox without a landlock execute rule).
    - ``processes``: allow new processes (False: ``fork``, ``vfork`` and
      ``clone`` without ``CLONE_THREAD`` fail; threads still start).
    - ``extra_denied``: more syscall names to fail with ``EPERM``.

    >>> len(build_filter(arch="x86_64")) % 8
    0
    """
    table = ARCHES[arch or native_arch()]
    nums = table.numbers
    denied = [n for n in DENIED_SYSCALLS if not (allow_namespaces and n in ("unshare", "setns"))]
    denied += [] if programs else list(EXEC_SYSCALLS)
    denied += [] if processes else list(FORK_SYSCALLS)
    for name in extra_denied:
        if name not in nums:
            raise SeccompError(errno.EINVAL, f"unknown syscall {name!r} for {table.name}")
        denied.append(name)

    a = _Assembler()
    a.load(_OFF_ARCH)
    a.jump(BPF_JEQ_K, table.audit, 0, "kill")
    a.load(_OFF_NR)
    if table.x32:
        a.jump(BPF_JGE_K, X32_SYSCALL_BIT, "eperm", 0)
    for number in sorted({nums[n] for n in denied if n in nums}):
        a.jump(BPF_JEQ_K, number, "eperm", 0)
    a.jump(BPF_JEQ_K, nums["clone3"], "enosys", 0)
    clone_rule = not allow_namespaces or not processes
    if clone_rule:
        a.jump(BPF_JEQ_K, nums["clone"], "clone", 0)
    a.jump(BPF_JEQ_K, nums["socket"], "socket", 0)
    a.jump(BPF_JEQ_K, nums["socketpair"], "socketpair", 0)
    a.jump(BPF_JEQ_K, nums["ioctl"], "ioctl", 0)
    a.ret(SECCOMP_RET_ALLOW)

    if clone_rule:
        a.label("clone")  # the kernel reads only the low 32 bits of clone's flags
        a.load(_arg_low(0))
        if not allow_namespaces:
            a.jump(BPF_JSET_K, CLONE_NAMESPACE_FLAGS, "eperm", 0)
        if not processes:
            a.jump(BPF_JSET_K, CLONE_THREAD, "allow", "eperm")
        a.ret(SECCOMP_RET_ALLOW)

    a.label("socket")
    a.load(_arg_low(0))
    if unix_sockets:
        a.jump(BPF_JEQ_K, AF_UNIX, "allow", 0)
    if network:
        a.jump(BPF_JEQ_K, AF_INET, "inet_type", 0)
        a.jump(BPF_JEQ_K, AF_INET6, "inet_type", 0)
    a.ret(SECCOMP_RET_ERRNO | errno.EPERM)
    if network:
        a.label("inet_type")
        a.load(_arg_low(1))
        a.and_(SOCK_TYPE_MASK)
        a.jump(BPF_JEQ_K, SOCK_STREAM, "allow", 0)
        a.jump(BPF_JEQ_K, SOCK_DGRAM, "allow", "eperm")

    a.label("socketpair")
    a.load(_arg_low(0))
    a.jump(BPF_JEQ_K, AF_UNIX, "allow", "eperm")

    a.label("ioctl")
    a.load(_arg_low(1))
    a.jump(BPF_JEQ_K, TIOCSTI, "eperm", 0)
    a.jump(BPF_JEQ_K, TIOCLINUX, "eperm", "allow")

    a.label("kill")
    a.ret(SECCOMP_RET_KILL_PROCESS)
    a.label("eperm")
    a.ret(SECCOMP_RET_ERRNO | errno.EPERM)
    a.label("enosys")
    a.ret(SECCOMP_RET_ERRNO | errno.ENOSYS)
    a.label("allow")
    a.ret(SECCOMP_RET_ALLOW)
    return a.assemble()


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def install_filter(program: bytes, *, arch: str | None = None) -> dict[str, Any]:
    """Set ``no_new_privs`` and install ``program`` on the calling thread(s).

    Irreversible for this process and its children: call it in a forked child.
    """
    table = ARCHES[arch or native_arch()]
    if len(program) % 8 or not 0 < len(program) // 8 <= 4096:
        raise SeccompError(errno.EINVAL, "not a classic BPF program")
    libc = syscalls.libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise SeccompError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    started = time.perf_counter()
    rc = libc.syscall(
        ctypes.c_long(table.numbers["seccomp"]),
        ctypes.c_long(SECCOMP_SET_MODE_FILTER),
        ctypes.c_long(SECCOMP_FILTER_FLAG_TSYNC),
        ctypes.byref(prog),
    )
    how = "seccomp(SECCOMP_SET_MODE_FILTER, TSYNC)"
    if rc != 0 and ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL):
        how = "prctl(PR_SET_SECCOMP)"  # kernels before 3.17, or TSYNC unsupported
        rc = libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0)
    if rc != 0:
        err = ctypes.get_errno()
        if rc > 0:  # TSYNC: another thread has an incompatible filter
            raise SeccompError(errno.EBUSY, f"{how}: thread {rc} could not be synchronised")
        raise SeccompError(err, f"{how}: {os.strerror(err)}")
    return {
        "applied": True,
        "arch": table.name,
        "instructions": len(program) // 8,
        "installed_with": how,
        "install_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def apply(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build and install the filter described by a JSON-able ``spec``.

    ``spec`` keys (all optional): ``network`` (bool, default False),
    ``unix_sockets`` (bool, default True), ``programs`` and ``processes`` (bool,
    default True: see :func:`build_filter`), ``extra_denied`` (list of names).
    Returns a report: ``applied``, ``arch``, ``instructions``, ``denied``,
    ``enosys``, ``socket_families``, ``namespaces_blocked``, ``programs``,
    ``processes``, ``build_ms``, ``install_ms``, ``installed_with``.
    """
    spec = dict(spec or {})
    network = bool(spec.get("network", False))
    unix = bool(spec.get("unix_sockets", True))
    programs = bool(spec.get("programs", True))
    processes = bool(spec.get("processes", True))
    extra: Sequence[str] = tuple(spec.get("extra_denied", ()))
    arch = native_arch()
    started = time.perf_counter()
    program = build_filter(
        arch=arch, network=network, unix_sockets=unix, programs=programs,
        processes=processes, extra_denied=extra,
    )  # fmt: skip
    build_ms = round((time.perf_counter() - started) * 1000, 3)
    report = install_filter(program, arch=arch)
    nums = ARCHES[arch].numbers
    families = (["AF_UNIX"] if unix else []) + (["AF_INET", "AF_INET6"] if network else [])
    denied = [*DENIED_SYSCALLS, *extra]
    denied += [] if programs else list(EXEC_SYSCALLS)
    denied += [] if processes else list(FORK_SYSCALLS)
    report.update(
        denied=sorted({n for n in denied if n in nums}),
        enosys=["clone3"],
        socket_families=families,
        namespaces_blocked=True,
        programs=programs,
        processes=processes,
        build_ms=build_ms,
    )
    return report
