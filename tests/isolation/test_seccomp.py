"""The seccomp filter: its program (both arches, emulated) and its effect on this kernel."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool.runner.layers import seccomp

from .helpers import IS_ROOT, errno_of, in_child

ALLOW, KILL = seccomp.SECCOMP_RET_ALLOW, seccomp.SECCOMP_RET_KILL_PROCESS
EPERM = seccomp.SECCOMP_RET_ERRNO | errno.EPERM
ENOSYS = seccomp.SECCOMP_RET_ERRNO | errno.ENOSYS
AF_NETLINK, AF_PACKET, SOCK_RAW = 16, 17, 3
CLONE_THREAD_FLAGS = 0x3D0F00  # what glibc's pthread_create passes
SIGCHLD = 17


def run_bpf(program: bytes, *, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """Evaluate a classic BPF seccomp program on one ``struct seccomp_data``."""
    full = (list(args) + [0] * 6)[:6]
    data = struct.pack("<iIQ6Q", nr, arch, 0, *full)
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == seccomp.BPF_LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == seccomp.BPF_ALU_AND_K:
            acc &= k
        elif code == seccomp.BPF_RET_K:
            return int(k)
        else:
            taken = {
                seccomp.BPF_JEQ_K: acc == k,
                seccomp.BPF_JGE_K: acc >= k,
                seccomp.BPF_JSET_K: bool(acc & k),
            }[code]
            pc += jt if taken else jf


def _cases() -> list[Any]:
    u = seccomp.ARCHES
    cases = []
    for arch in ("x86_64", "aarch64"):

        def p(what: str, expected: int, name: str, *args: int, arch: str = arch, **kw: Any) -> Any:
            nr = u[arch].numbers[name]
            return pytest.param(arch, kw, nr, args, expected, id=f"{arch}-{what}")

        cases += [
            p("read-allowed", ALLOW, "socketpair", socket.AF_UNIX, socket.SOCK_STREAM),
            p("ptrace", EPERM, "ptrace"),
            p("mount", EPERM, "mount"),
            p("bpf", EPERM, "bpf"),
            p("io_uring", EPERM, "io_uring_setup"),
            p("unshare", EPERM, "unshare"),
            p("clone3-enosys", ENOSYS, "clone3"),
            p("clone-thread", ALLOW, "clone", CLONE_THREAD_FLAGS),
            p("clone-fork", ALLOW, "clone", SIGCHLD),
            p("clone-newuser", EPERM, "clone", 0x10000000 | SIGCHLD),
            p("clone-newnet-high-bits-ignored", EPERM, "clone", (1 << 40) | 0x40000000),
            p("socket-unix", ALLOW, "socket", socket.AF_UNIX, socket.SOCK_STREAM),
            p("socket-inet-offline", EPERM, "socket", socket.AF_INET, socket.SOCK_STREAM),
            p("socket-unix-off", EPERM, "socket", socket.AF_UNIX, 1, unix_sockets=False),
            p("inet-online", ALLOW, "socket", socket.AF_INET, socket.SOCK_STREAM, network=True),
            p("inet6-udp-online", ALLOW, "socket", socket.AF_INET6, 2 | 0x80000, network=True),
            p("raw-online", EPERM, "socket", socket.AF_INET, SOCK_RAW, network=True),
            p("netlink-online", EPERM, "socket", AF_NETLINK, SOCK_RAW, network=True),
            p("packet-online", EPERM, "socket", AF_PACKET, SOCK_RAW, network=True),
            p("socketpair-inet", EPERM, "socketpair", socket.AF_INET, 1),
            p("tiocsti", EPERM, "ioctl", 0, seccomp.TIOCSTI),
            p("ioctl-tcgets", ALLOW, "ioctl", 0, 0x5401),
        ]
    return cases


@pytest.mark.parametrize(("arch", "options", "nr", "args", "expected"), _cases())
def test_filter_program_decides(
    arch: str, options: dict[str, Any], nr: int, args: tuple[int, ...], expected: int
) -> None:
    program = seccomp.build_filter(arch=arch, **options)
    assert run_bpf(program, nr=nr, arch=seccomp.ARCHES[arch].audit, args=args) == expected


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_foreign_arch_is_killed(arch: str) -> None:
    program = seccomp.build_filter(arch=arch)
    i386 = 0x40000003
    assert run_bpf(program, nr=0, arch=i386) == KILL


def test_x32_calls_are_denied_on_x86_64() -> None:
    program = seccomp.build_filter(arch="x86_64")
    audit = seccomp.ARCHES["x86_64"].audit
    assert run_bpf(program, nr=0, arch=audit) == ALLOW  # read
    assert run_bpf(program, nr=seccomp.X32_SYSCALL_BIT | 0, arch=audit) == EPERM


def test_unknown_extra_syscall_is_refused() -> None:
    with pytest.raises(seccomp.SeccompError, match="unknown syscall"):
        seccomp.build_filter(arch="x86_64", extra_denied=["no_such_call"])


# --- on the real kernel: each attack works without the filter, fails with it ----

libc = ctypes.CDLL(None, use_errno=True)
NR = seccomp.ARCHES[seccomp.native_arch()].numbers


def _raw(name: str, *args: int) -> int:
    """A raw syscall with harmless (often invalid) arguments: 0 or the errno."""
    rc = libc.syscall(ctypes.c_long(NR[name]), *(ctypes.c_long(a) for a in args))
    return 0 if rc >= 0 else ctypes.get_errno()


def _sibling() -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        time.sleep(10)
        os._exit(0)
    return pid


def _ptrace_sibling() -> int:
    pid = _sibling()
    try:
        PTRACE_ATTACH = 16
        rc = libc.ptrace(PTRACE_ATTACH, pid, 0, 0)
        return 0 if rc == 0 else ctypes.get_errno()
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def _read_sibling_memory() -> int:
    pid = _sibling()
    buf = ctypes.create_string_buffer(8)
    local = struct.pack("<QQ", ctypes.addressof(buf), 8)
    remote = struct.pack("<QQ", id(None), 8)  # same address in the forked sibling
    try:
        rc = libc.process_vm_readv(pid, local, 1, remote, 1, 0)
        return 0 if rc >= 0 else ctypes.get_errno()
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def _socket(family: int, kind: int, proto: int = 0) -> Callable[[], int]:
    return lambda: errno_of(lambda: socket.socket(family, kind, proto).close())


ATTACKS: list[Any] = [
    pytest.param(_socket(socket.AF_INET, socket.SOCK_DGRAM), id="udp-socket"),
    pytest.param(_socket(socket.AF_INET6, socket.SOCK_STREAM), id="tcp6-socket"),
    pytest.param(_socket(AF_NETLINK, socket.SOCK_RAW), id="netlink-socket"),
    pytest.param(_ptrace_sibling, id="ptrace-attach"),
    pytest.param(_read_sibling_memory, id="process_vm_readv"),
    pytest.param(lambda: _raw("unshare", 0x10000000), id="unshare-user"),
    pytest.param(lambda: _raw("mount", 0, 0, 0, 0, 0), id="mount"),
    pytest.param(lambda: _raw("bpf", 0, 0, 0), id="bpf"),
    pytest.param(lambda: _raw("keyctl", 0, -3, 0), id="keyctl"),  # GET_KEYRING_ID session
    pytest.param(lambda: _raw("userfaultfd", 0), id="userfaultfd"),
    pytest.param(lambda: _raw("io_uring_setup", 0, 0), id="io_uring"),
    pytest.param(lambda: _raw("init_module", 0, 0, 0), id="init_module"),
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_reaches_kernel_without_filter_and_gets_eperm_with_it(
    attack: Callable[[], int],
) -> None:
    without = in_child(attack).unwrap()
    with_filter = in_child(lambda: (seccomp.apply({}), attack())[1]).unwrap()
    assert with_filter == errno.EPERM
    if without == errno.EPERM and not IS_ROOT:
        # The kernel refuses this caller on its own (userfaultfd with
        # vm.unprivileged_userfaultfd=0): the filter's part shows only as root.
        return
    assert without != errno.EPERM, "the call must reach the kernel without the filter"


def test_clone3_enosys_threads_and_fork_still_work() -> None:
    def body() -> dict[str, Any]:
        seccomp.apply({})
        out: dict[str, Any] = {"clone3": _raw("clone3", 0, 0)}
        seen = []
        t = threading.Thread(target=lambda: seen.append(1))
        t.start()
        t.join()
        out["thread"] = seen == [1]
        pid = os.fork()
        if pid == 0:  # pragma: no cover
            os._exit(5)
        out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        a, b = socket.socketpair()
        a.sendall(b"x")
        out["socketpair"] = b.recv(1).decode()
        out["unix"] = errno_of(lambda: socket.socket(socket.AF_UNIX).close())
        return out

    assert in_child(body).unwrap() == {
        "clone3": errno.ENOSYS, "thread": True, "fork": 5, "socketpair": "x", "unix": 0,
    }  # fmt: skip


def test_all_socket_families_off() -> None:
    def body() -> int:
        seccomp.apply({"unix_sockets": False})
        return errno_of(lambda: socket.socket(socket.AF_UNIX).close())

    assert in_child(body).unwrap() == errno.EPERM


def test_network_mode_allows_tcp_but_never_raw_or_netlink() -> None:
    def body() -> dict[str, int]:
        seccomp.apply({"network": True})
        return {
            "tcp": errno_of(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()),
            "raw": errno_of(lambda: socket.socket(socket.AF_INET, SOCK_RAW, 1).close()),
            "netlink": errno_of(lambda: socket.socket(AF_NETLINK, socket.SOCK_RAW, 0).close()),
        }

    assert in_child(body).unwrap() == {"tcp": 0, "raw": errno.EPERM, "netlink": errno.EPERM}


def test_data_stack_works_under_the_filter(tmp_path: Path) -> None:
    png = tmp_path / "plot.png"

    def body() -> dict[str, Any]:
        report = seccomp.apply({})
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd  # type: ignore[import-untyped]

        df = pd.DataFrame({"k": np.arange(10_000) % 7, "v": np.ones(10_000)})
        sums = df.groupby("k")["v"].sum().tolist()
        plt.plot([1, 2, 3], [3, 1, 2])
        plt.savefig(png)
        return {"sums": sums, "instructions": report["instructions"]}

    out = in_child(body, timeout=60).unwrap()
    assert out["sums"] == [1429.0] * 4 + [1428.0] * 3
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("arch", sorted(seccomp.ARCHES))
def test_every_denied_call_has_a_number(arch: str) -> None:
    # a name missing from the table would be skipped, silently weakening the filter
    table = seccomp.ARCHES[arch].numbers
    absent = seccomp.ABSENT_ON.get(arch, set())
    missing = [n for n in seccomp.DENIED_SYSCALLS if n not in table and n not in absent]
    assert missing == []


def _memfd(filtered: bool) -> int:
    if filtered:
        seccomp.apply({})
    try:
        os.close(os.memfd_create("x"))
    except OSError as exc:
        return exc.errno or -1
    return 0


def test_memfd_is_refused() -> None:
    # memory in a memfd escapes RLIMIT_AS (found by tests/security)
    assert in_child(_memfd, False).value == 0
    assert in_child(_memfd, True).value == errno.EPERM
