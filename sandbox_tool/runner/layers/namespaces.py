"""The three processes of one sandbox: namespaces, the id maps, and a pid-1 reaper.

Stdlib only (ctypes, through :mod:`..syscalls`). The entry point is
:func:`spawn_sandbox`, called in a single-threaded process (the runner's
supervisor). It forks twice and returns a report only in the innermost process,
which is ready to run user code, and a :class:`SandboxProcess` in the caller::

    W  the caller: stays outside, waits for the sandbox (SandboxProcess.wait)
    └─ P  pid 1 of the new pid namespace: builds the root file system, then reaps
       └─ U  returns from spawn_sandbox() as uid 1000 of a private user namespace

:func:`enter_sandbox` does the same in a process that has nothing else to do:
there W only waits and then exits the way the sandbox did.

Two set-up modes, chosen by who calls:

- **root** (euid 0): W unshares the pid namespace, P a mount namespace as the
  real root (so it can bind the interpreter out of a 0700 home directory), and
  U a user namespace mapped to an unprivileged host id (``host_uid``, default
  :data:`ROOT_MODE_HOST_ID`) plus net, ipc and uts.
- **userns** (any other uid): W unshares a user namespace (the caller's uid as
  its root) with the pid namespace, then as above; U's user namespace is nested
  in W's and maps the sandbox uid to the caller's uid.

In both modes U ends up in a user namespace of its own, so ``RLIMIT_NPROC``
counts only the sandbox's tasks (the kernel keys that count by user namespace
and uid since Linux 5.14), and for root callers it is no longer exempt because
the host uid is not 0 (FIELD_NOTES 6). See :func:`set_process_cap`.

What goes into the sandbox is its plan (:mod:`.plan`). P builds the private root
(:mod:`.rootfs`); U applies :mod:`.privileges`, the process cap (:mod:`.limits`),
:mod:`.landlock` and :mod:`.seccomp`, in that order.

With a ``"scratch"`` plan (:mod:`.scratch`), the writable dirs are directories
of one size-capped tmpfs instead of host binds; P copies them in during set-up
and copies new and changed files back to the host once the sandbox is dead,
and a SIGTERM to P (which W forwards) then stops the sandbox (SIGKILL to all of
it) rather than being forwarded to U, so that the copy-out still happens.

If set-up fails in W or P, :class:`SandboxSetupError` is raised in W; if it
fails in U, it is raised in U. Either way no user code has run.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import resource
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from ..framing import write_all
from ..syscalls import (
    PR_SET_PDEATHSIG,
    SandboxSetupError,
    describe,
    kill_quietly,
    prctl,
    read_all,
    thread_count,
    unshare,
)
from . import landlock, scratch, seccomp
from .limits import set_process_cap
from .plan import DEFAULT_DEVICES, ROOT_MODE_HOST_ID, Plan, default_plan
from .privileges import become, set_dumpable, set_no_new_privs
from .rootfs import build_root, chown_tree
from .timing import timed

__all__ = [
    "DEFAULT_DEVICES",
    "ROOT_MODE_HOST_ID",
    "SandboxProcess",
    "SandboxSetupError",
    "default_plan",
    "enter_sandbox",
    "set_process_cap",
    "spawn_sandbox",
]

CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

FORWARDED_SIGNALS = (
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
    signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM,
)  # fmt: skip


def _write_proc(path: str, text: str) -> None:
    """Write ``text`` to a /proc file in one write (the kernel takes an id map only whole)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    except OSError as exc:
        raise SandboxSetupError(
            exc.errno, f"writing {text.strip()!r} to {path}: {exc.strerror}"
        ) from exc
    finally:
        os.close(fd)


def _write_id_maps(pid: str, uid_line: str, gid_line: str) -> None:
    _write_proc(f"/proc/{pid}/setgroups", "deny")
    _write_proc(f"/proc/{pid}/uid_map", uid_line)
    _write_proc(f"/proc/{pid}/gid_map", gid_line)


# ---------------------------------------------------------------- the three processes


@dataclass
class SandboxProcess:
    """The caller's side of a sandbox started by :func:`spawn_sandbox`."""

    pid: int
    """The sandbox's pid 1 (as the caller sees it)."""
    status_r: int

    def wait(self) -> tuple[int, resource.struct_rusage | None]:
        """Wait for the sandbox to end; return the wait status of its process (a death
        by SIGKILL if it was stopped) and pid 1's resource usage, which covers every
        process of the sandbox. Raises :class:`SandboxSetupError` if set-up failed:
        then no user code ran."""
        messages = [json.loads(line) for line in read_all(self.status_r).splitlines()
                    if line.strip()]  # fmt: skip
        os.close(self.status_r)
        status, usage = 0, None
        while True:
            try:
                _, status, usage = os.wait4(self.pid, 0)
                break
            except ChildProcessError:
                break
            except InterruptedError:
                continue
        for message in messages:
            if "error" in message:
                raise SandboxSetupError(errno.EPERM, f"sandbox set-up failed: {message['error']}")
        return next((m["status"] for m in messages if "status" in m), status), usage


def enter_sandbox(plan: dict[str, Any]) -> dict[str, Any]:
    """Move the calling process's work into a new sandbox; return its report there.

    Call it in a freshly forked, single-threaded child (FIELD_NOTES 1). It
    returns only in the sandboxed grandchild; the caller's own process waits for
    the sandbox, forwarding signals to it, and ``_exit``s with its status (a
    death by signal is reproduced as the same signal), so code after the call
    runs only inside the sandbox. See :func:`spawn_sandbox` for ``plan``.
    """
    spawned = spawn_sandbox(plan)
    if isinstance(spawned, dict):
        return spawned
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, lambda s, _f: kill_quietly(spawned.pid, s))
    try:
        status, _ = spawned.wait()
    finally:
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
    _exit_like(status)


def spawn_sandbox(
    plan: dict[str, Any], close_in_child: Sequence[int] = ()
) -> dict[str, Any] | SandboxProcess:
    """Start a new sandbox: its report in the sandbox, a :class:`SandboxProcess` here.

    Call it in a single-threaded process (FIELD_NOTES 1) that may enter new
    namespaces: it unshares the pid namespace (and, unless it runs as root, a
    user namespace) for itself, so the caller's later children are in them too.
    It forks pid 1, which forks the sandboxed process; that one returns the
    report below, the caller gets the handle to wait for the sandbox with. The
    child closes ``close_in_child`` first (fds the sandbox must not hold).

    ``plan``: see :mod:`.plan` (its keys) and :func:`default_plan` (a complete one).

    The report: ``mode``, ``namespaces``, ``uid``, ``gid``, ``host_uid``,
    ``host_gid``, ``pid``, ``mounts``, ``loopback``, ``hostname``,
    ``capabilities_dropped``, ``no_new_privs``, ``nproc``, ``landlock``,
    ``seccomp`` and ``timings_ms``; a layer not applied is ``None``/``False``.
    With a scratch plan, ``mounts["scratch"]`` describes the tmpfs and what was
    copied in, and ``timings_ms["scratch"]`` is its set-up time.
    """
    started = time.perf_counter()
    if not sys.platform.startswith("linux"):
        raise SandboxSetupError(errno.ENOSYS, "namespaces need Linux")
    if thread_count() != 1:
        raise SandboxSetupError(
            errno.EINVAL,
            f"a sandbox needs a single-threaded caller, this one has {thread_count()} "
            "threads (fork a fresh child; set OPENBLAS_NUM_THREADS=1 before importing numpy)",
        )
    timings: dict[str, float] = {}
    with timed(timings, "plan"):
        p = Plan(plan)
    if p.root_mode and p.chown_rw:
        with timed(timings, "chown_rw"):
            for src, _, kind in p.mounts:
                if kind == "rw":
                    chown_tree(src, p.host_uid, p.host_gid)
    status_r, status_w = os.pipe()  # P -> caller: "ok" or an error, then U's wait status
    with timed(timings, "unshare_outer"):
        if p.root_mode:
            os.setgroups([])  # root's supplementary groups must not reach the sandbox
            unshare(CLONE_NEWPID, "CLONE_NEWPID")
        else:
            unshare(CLONE_NEWUSER | CLONE_NEWPID, "CLONE_NEWUSER|CLONE_NEWPID")
            set_dumpable(True)  # else /proc/self/uid_map is not ours to write (FN 7)
            try:
                _write_id_maps("self", f"0 {p.host_uid} 1", f"0 {p.host_gid} 1")
            finally:
                # at once: same-uid processes must not ptrace the caller (it holds the
                # runner's control pipe)
                set_dumpable(False)
    forked = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        timings["fork_pid1"] = round((time.perf_counter() - forked) * 1000, 3)
        os.close(status_r)
        for fd in close_in_child:
            os.close(fd)
        try:
            return _pid1(p, status_w, timings, started)
        except BaseException as exc:  # reported to the caller, which raises it
            if os.getpid() != 1:  # raised in U, the sandbox: the caller's to handle
                raise
            write_all(status_w, json.dumps({"error": describe(exc)}).encode() + b"\n")
            os._exit(1)
    os.close(status_w)
    return SandboxProcess(pid, status_r)


def _exit_like(status: int) -> NoReturn:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _pid1(p: Plan, status_w: int, timings: dict[str, float], started: float) -> dict[str, Any]:
    """P: pid 1. Build the root, start U, then reap until U is gone."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    set_dumpable(False)  # the sandbox (same uid in userns mode) must not ptrace pid 1
    with timed(timings, "mount_ns"):
        mounts, scratch_dirs = build_root(p, timings)
    go_r, go_w = os.pipe()  # P -> U: id maps written, plus P's timings
    ready_r, ready_w = os.pipe()  # U -> P: user namespace created
    forked = time.perf_counter()
    upid = os.fork()
    if upid == 0:
        timings["fork_sandbox"] = round((time.perf_counter() - forked) * 1000, 3)
        os.close(go_w)
        os.close(ready_r)
        os.close(status_w)
        if scratch_dirs is not None:
            scratch_dirs.close()  # P's fds on the host dirs must never reach the sandbox
        try:
            return _sandbox(p, ready_w, go_r, mounts, started, timings["fork_sandbox"])
        except SandboxSetupError:
            raise
        except (OSError, ValueError) as exc:
            raise SandboxSetupError(
                getattr(exc, "errno", None) or errno.EINVAL, f"sandbox set-up failed: {exc}"
            ) from exc
    os.close(go_r)
    os.close(ready_w)
    if os.read(ready_r, 1) != b"u":
        os.waitpid(upid, 0)
        raise SandboxSetupError(errno.ECHILD, "the sandbox process died before its user namespace")
    os.close(ready_r)
    with timed(timings, "id_maps"):
        outer = p.host_uid if p.root_mode else 0
        outer_gid = p.host_gid if p.root_mode else 0
        _write_id_maps(str(upid), f"{p.uid} {outer} 1", f"{p.gid} {outer_gid} 1")
    stopped = _handle_signals(upid, stop=scratch_dirs is not None)  # before U runs any code
    write_all(go_w, json.dumps(timings).encode())
    os.close(go_w)
    write_all(status_w, b'{"ok": true}\n')
    _reap(upid, status_w, scratch_dirs, stopped)


def _handle_signals(upid: int, stop: bool) -> list[bool]:
    """P: forward signals to U; with ``stop``, SIGTERM stops the sandbox instead.

    Stopping sends SIGKILL to every process in the namespace (from pid 1,
    ``kill(-1)`` reaches all of them) so that pid 1 can copy the scratch dirs
    out; the returned list becomes non-empty when that happened.
    """
    stopped: list[bool] = []

    def stop_all(_s: int, _f: Any) -> None:
        stopped.append(True)
        kill_quietly(-1, signal.SIGKILL)

    for sig in FORWARDED_SIGNALS:
        if stop and sig == signal.SIGTERM:
            signal.signal(sig, stop_all)
        else:
            signal.signal(sig, lambda s, _f: kill_quietly(upid, s))
    return stopped


def _reap(
    upid: int, status_w: int, scratch_dirs: scratch.Scratch | None, stopped: list[bool]
) -> NoReturn:
    """P after set-up: reap everything, copy the scratch dirs out, report U's status.

    However U ended (exit, signal, RLIMIT_CPU, or stopped by SIGTERM, which is
    then reported as U's death by SIGKILL), the scratch dirs are copied out
    only once every process of the sandbox is dead and reaped.
    """
    status = None
    while True:
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == upid:
            status = st
            kill_quietly(-1, signal.SIGKILL)  # pid 1 kills everything else in the namespace
    if scratch_dirs is not None:
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # a second SIGTERM must not cut the copy short
        scratch_dirs.copy_out(stopped=bool(stopped))
    write_all(
        status_w, json.dumps({"status": status if status is not None else 1 << 8}).encode() + b"\n"
    )
    os._exit(0)


def _sandbox(
    p: Plan, ready_w: int, go_r: int, mounts: dict[str, Any], started: float, fork_ms: float
) -> dict[str, Any]:
    """U: own user, net, ipc and uts namespaces; drop everything; apply the policies."""
    timings: dict[str, float] = {"fork_sandbox": fork_ms}
    # P is not dumpable and U inherited that: make U's /proc files writable by P
    # again for the id maps (FIELD_NOTES 7). The uid change resets it in root mode.
    set_dumpable(True)
    flags = CLONE_NEWUSER | CLONE_NEWIPC | CLONE_NEWUTS | (0 if p.network else CLONE_NEWNET)
    with timed(timings, "unshare_inner"):
        unshare(
            flags,
            "CLONE_NEWUSER|CLONE_NEWIPC|CLONE_NEWUTS" + ("" if p.network else "|CLONE_NEWNET"),
        )
    write_all(ready_w, b"u")
    os.close(ready_w)
    # still fully capable in the new namespaces while pid 1 writes the id maps
    loopback = False
    if not p.network:
        with timed(timings, "loopback"):
            loopback = _loopback_up()
    socket.sethostname(p.hostname)
    parent_timings = json.loads(read_all(go_r) or b"null")
    os.close(go_r)
    if parent_timings is None:
        raise SandboxSetupError(errno.ECHILD, "pid 1 did not write the id maps")
    prepared = None
    ll_spec = p.landlock_spec()
    if ll_spec is not None:
        with timed(timings, "landlock_prepare"):
            prepared = landlock.prepare(ll_spec)  # O_PATH opens, before the privilege drop
    with timed(timings, "drop_privileges"):
        become(p.uid, p.gid)
    os.chdir(p.cwd)
    nproc = set_process_cap(int(p.nproc)) if p.nproc else None
    set_no_new_privs()
    ll_report = None
    if prepared is not None:
        with timed(timings, "landlock_enforce"):
            ll_report = prepared.enforce()
    sc_report = None
    sc_spec = p.raw.get("seccomp")
    if sc_spec is not None and sc_spec is not False:
        with timed(timings, "seccomp"):
            sc_report = seccomp.apply(dict(sc_spec) if isinstance(sc_spec, dict) else {})
    timings = {
        **parent_timings,
        **timings,
        "total": round((time.perf_counter() - started) * 1000, 3),
    }
    return {
        "mode": "root" if p.root_mode else "userns",
        "namespaces": {
            "user": True,
            "pid": True,
            "mount": True,
            "ipc": True,
            "uts": True,
            "net": not p.network,
        },
        "uid": os.getuid(),
        "gid": os.getgid(),
        "host_uid": p.host_uid,
        "host_gid": p.host_gid,
        "pid": os.getpid(),
        "mounts": mounts,
        "loopback": loopback,
        "hostname": socket.gethostname(),
        "capabilities_dropped": True,
        "no_new_privs": True,
        "nproc": nproc,
        "landlock": ll_report,
        "seccomp": sc_report,
        "timings_ms": timings,
    }


def _loopback_up() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))
    return True
