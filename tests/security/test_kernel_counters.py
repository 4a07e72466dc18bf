"""Kernel resources charged to a user rather than to a process: the sandbox must not be
able to use up what the host (or a neighbouring sandbox) needs, nor hold memory that
``memory_mb`` does not count.

Counters kept per user namespace are charged to every ancestor namespace too: an
inotify instance opened in the sandbox counts against the instances of the user that
owns the sandbox's user namespace (root, or the calling user). Each attack below holds
what it took in a session cell while the host, in this test process, asks for the same
resource; the host must get it.

The baselines show the primitive works without a sandbox, without exhausting anything:
using up a counter of this machine's users would break the other processes of the user
running the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox_tool import ExecutionOptions
from sandbox_tool.engines.runners.requests import PENDING_SIGNALS
from sandbox_tool.session import Session

from .harness import ALLOW_ALL, Side, assert_refused, wrap

_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def held(side: Side, body: str, inputs: Any = None, **options: Any) -> Iterator[dict[str, Any]]:
    """Run the attack ``body`` as a session cell and keep the session (and whatever the
    cell keeps in ``HELD``) alive until the block ends; yields the harness report."""
    opts = ExecutionOptions(**ALLOW_ALL, **{"timeout": 60.0, **options})
    loop = asyncio.new_event_loop()  # a session lives on one loop

    async def run() -> tuple[Session, dict[str, Any]]:
        session = await side.sandbox.open_session(opts)
        try:
            res = await session.execute("HELD = []\n" + wrap(body), inputs)
        except BaseException:
            await session.aclose()
            raise
        return session, res.result

    try:
        session, report = loop.run_until_complete(run())
        try:
            yield report
        finally:
            loop.run_until_complete(session.aclose())
    finally:
        loop.close()


# -- inotify and fanotify ---------------------------------------------------------------

INOTIFY_EXHAUST = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
stage("inotify_init1")
for _ in range(inputs["n"]):
    fd = check_libc(libc.inotify_init1(0))
    HELD.append(fd)
return len(HELD)
"""


def _host_inotify_ok() -> None:
    fd = _libc.inotify_init1(0)
    assert fd >= 0, f"the host cannot open an inotify instance: {os.strerror(ctypes.get_errno())}"
    os.close(fd)


def test_inotify_exhaustion_does_not_reach_the_host(side: Side) -> None:
    if side.is_baseline:
        with held(side, INOTIFY_EXHAUST, {"n": 3}) as report:
            assert report == {"ok": True, "stage": "inotify_init1", "value": 3}
        return
    # the audit's reproduction: 200 instances, more than max_user_instances (128)
    with held(side, INOTIFY_EXHAUST, {"n": 200}) as report:
        _host_inotify_ok()
    assert_refused(report, {"EPERM"}, stages={"inotify_init1"})


FANOTIFY = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
stage("fanotify_init")
FAN_CLASS_NOTIF, FAN_REPORT_FID = 0, 0x200     # the unprivileged flavour (Linux 5.13)
return check_libc(libc.fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID, 0))
"""


def test_fanotify_is_refused(side: Side) -> None:
    report = side.attack(FANOTIFY).report
    if side.is_baseline:
        assert report["ok"], report  # no privilege needed for this flavour (Linux 5.13+)
        return
    assert_refused(report, {"EPERM"}, stages={"fanotify_init"})


# -- signals queued: RLIMIT_SIGPENDING is counted per user, up the namespaces -------------

SIGQUEUE_EXHAUST = """
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
class SigVal(ctypes.Union):
    _fields_ = [("i", ctypes.c_int), ("p", ctypes.c_void_p)]
sig = signal.SIGRTMIN
signal.pthread_sigmask(signal.SIG_BLOCK, {sig})     # they stay pending
stage("sigqueue")
queued = 0
while queued < inputs["n"]:
    if libc.sigqueue(os.getpid(), sig, SigVal(0)) != 0:
        break
    queued += 1
return queued
"""


def _host_sigqueue_ok() -> None:
    sig = signal.SIGRTMIN + 1
    got: list[int] = []

    class SigVal(ctypes.Union):
        _fields_ = (("i", ctypes.c_int), ("p", ctypes.c_void_p))

    # a handler, not a blocked mask: any thread of this process may take the signal
    old = signal.signal(sig, lambda num, _frame: got.append(num))
    try:
        rc = _libc.sigqueue(os.getpid(), sig, SigVal(0))
        err = ctypes.get_errno()
        for _ in range(100):  # let the handler run before it is removed
            if rc != 0 or got:
                break
            time.sleep(0.01)
    finally:
        signal.signal(sig, old)
    assert rc == 0, f"the host cannot queue a signal: {os.strerror(err)}"


def test_queued_signals_do_not_take_the_hosts_pending_signals(side: Side) -> None:
    if side.is_baseline:
        with held(side, SIGQUEUE_EXHAUST, {"n": 5}) as report:
            assert report["value"] == 5, report
        return
    limit = _pending_signal_limit()
    with held(side, SIGQUEUE_EXHAUST, {"n": limit + 1}) as report:
        _host_sigqueue_ok()
    # the host's own signal went through; the sandbox stopped at its own limit
    if side.engine_name == "gvisor":
        # queued in gVisor's kernel, up to its own (smaller) limit: none counts on the host
        assert report["ok"] and 0 < report["value"] <= PENDING_SIGNALS, report
        return
    assert report["ok"] and report["value"] == PENDING_SIGNALS, report


def _pending_signal_limit() -> int:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_SIGPENDING)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


# -- SysV IPC and POSIX shared memory: memory that RLIMIT_AS does not count --------------

SYSV = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
IPC_PRIVATE, IPC_RMID = 0, 0
stage(inputs["call"])
if inputs["call"] == "shmget":
    ident = check_libc(libc.shmget(IPC_PRIVATE, 1 << 20, 0o600))
    libc.shmctl(ident, IPC_RMID, None)
elif inputs["call"] == "semget":
    ident = check_libc(libc.semget(IPC_PRIVATE, 1, 0o600))
    libc.semctl(ident, 0, IPC_RMID)
else:
    ident = check_libc(libc.msgget(IPC_PRIVATE, 0o600))
    libc.msgctl(ident, IPC_RMID, None)
return ident >= 0
"""


@pytest.mark.parametrize("call", ["shmget", "semget", "msgget"])
def test_sysv_ipc_is_refused(side: Side, call: str) -> None:
    report = side.attack(SYSV, {"call": call}).report
    if side.is_baseline:
        assert report == {"ok": True, "stage": call, "value": True}
        return
    assert_refused(report, {"EPERM"}, stages={call})


SHM_FLOOD = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
IPC_PRIVATE, IPC_RMID = 0, 0
stage("shmget")
for _ in range(inputs["segments"]):
    ident = check_libc(libc.shmget(IPC_PRIVATE, inputs["mb"] << 20, 0o600))
    addr = libc.shmat(ident, None, 0)
    if addr == ctypes.c_void_p(-1).value:
        raise OSError(ctypes.get_errno(), "shmat")
    ctypes.memset(addr, 1, inputs["mb"] << 20)
    libc.shmdt(ctypes.c_void_p(addr))          # detached, still there until IPC_RMID
return "held"
"""


def test_sysv_shared_memory_cannot_escape_memory_mb(side: Side) -> None:
    if side.is_baseline:
        pytest.skip("filling shared memory beyond memory_mb would take the host's memory")
    # the audit: 15 segments of 200 MB under memory_mb=512
    report = side.attack(SHM_FLOOD, {"segments": 15, "mb": 200}, memory_mb=512).report
    assert_refused(report, {"EPERM"}, stages={"shmget"})


POSIX_SHM = """
import os
from multiprocessing import shared_memory
stage("listdir")
present = os.path.isdir("/dev/shm")
stage("shm_open")
block = shared_memory.SharedMemory(create=True, size=1 << 20)
name = block.name
block.close()
block.unlink()
return {"dev_shm": present, "created": bool(name)}
"""


def test_posix_shared_memory_has_no_tmpfs(side: Side) -> None:
    report = side.attack(POSIX_SHM).report
    if side.is_baseline:
        if not os.path.isdir("/dev/shm"):
            pytest.skip("this host has no /dev/shm")
        assert report["value"] == {"dev_shm": True, "created": True}
        return
    assert_refused(report, {"ENOENT"}, stages={"shm_open"})  # no /dev/shm at all


# -- POSIX message queues and keyrings ------------------------------------------------------

MQUEUE = """
import ctypes, os
rt = ctypes.CDLL("librt.so.1", use_errno=True)
stage("mq_open")
fd = check_libc(rt.mq_open(b"/" + inputs["name"].encode(), os.O_CREAT | os.O_RDWR, 0o600, None))
os.close(fd)
rt.mq_unlink(b"/" + inputs["name"].encode())
return True
"""


def test_posix_message_queues_are_refused(side: Side) -> None:
    report = side.attack(MQUEUE, {"name": f"sbx-{os.getpid()}-{os.urandom(4).hex()}"}).report
    if side.is_baseline:
        assert report["ok"], report
        return
    assert_refused(report, {"EPERM"}, stages={"mq_open"})


KEYRING = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": {"add_key": 248, "request_key": 249, "keyctl": 250},
      "aarch64": {"add_key": 217, "request_key": 218, "keyctl": 219}}[os.uname().machine]
KEY_SPEC_PROCESS_KEYRING = -2
KEYCTL_GET_KEYRING_ID = 0
stage(inputs["call"])
if inputs["call"] == "add_key":
    key = check_libc(libc.syscall(nr["add_key"], b"user", b"sbx-test", b"v", 1,
                                  KEY_SPEC_PROCESS_KEYRING))
elif inputs["call"] == "request_key":
    key = check_libc(libc.syscall(nr["request_key"], b"user", b"sbx-no-such-key", None, 0))
else:
    key = check_libc(libc.syscall(nr["keyctl"], KEYCTL_GET_KEYRING_ID,
                                  KEY_SPEC_PROCESS_KEYRING, 1))
return key > 0
"""


@pytest.mark.parametrize("call", ["add_key", "keyctl", "request_key"])
def test_keyrings_are_refused(side: Side, call: str) -> None:
    report = side.attack(KEYRING, {"call": call}).report
    if side.is_baseline:
        if call == "request_key":  # no such key: the call itself reaches the kernel
            assert_refused(report, {"ENOKEY"}, stages={call})
        else:
            assert report["ok"], report
        return
    assert_refused(report, {"EPERM"}, stages={call})


# -- pipe buffers: pipe-user-pages-soft is counted per host uid -----------------------------

PIPE_FLOOD = """
import fcntl, os
F_SETPIPE_SZ = 1031
stage("pipe")
grown = 0
while len(HELD) < inputs["pipes"]:
    try:
        r, w = os.pipe()
    except OSError:
        break
    HELD.extend((r, w))
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)
        grown += 1
    except OSError:
        pass
return grown
"""


def test_pipe_buffers_of_the_sandbox_leave_the_host_working_pipes(side: Side) -> None:
    """The soft limit (64 MiB of pipe buffers per uid) is charged to the host uid the
    sandbox's uid maps to; past it, that uid's new pipes get two pages. The host's pipes
    must keep working; as root (the sandbox has a uid of its own) they keep their size."""
    pipes = 16 if side.is_baseline else 300
    with held(side, PIPE_FLOOD, {"pipes": pipes}) as report:
        r, w = os.pipe()
        try:
            os.set_blocking(w, False)
            written = os.write(w, b"x" * 4096)
            size = _pipe_size(w)
        finally:
            os.close(r)
            os.close(w)
    assert report["ok"], report
    assert written == 4096
    if os.geteuid() == 0:
        assert size == 65536, f"the host's new pipe has {size} bytes of buffer"


def _pipe_size(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, 1032)  # F_GETPIPE_SZ


# -- what the seccomp filter refuses is also what the tool says ---------------------------


def test_inotify_refusal_is_a_permission_error(side: Side) -> None:
    """Libraries that watch files see a clear ``PermissionError``, not a missing kernel
    feature (which EPERM rather than ENOSYS means)."""
    body = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
stage("inotify_init")
return check_libc(libc.inotify_init())
"""
    report = side.attack(body).report
    if side.is_baseline:
        assert report["ok"], report
        return
    assert_refused(report, {"EPERM"}, stages={"inotify_init"})
    assert report["exc"] == "PermissionError", report
