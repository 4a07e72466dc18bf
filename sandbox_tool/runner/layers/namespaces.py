"""Linux namespaces, a private root file system and a pid-1 reaper for one sandbox.

Stdlib only (ctypes for unshare, mount, pivot_root, capset). The entry point is
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

With a ``"scratch"`` plan (:mod:`.scratch`), the writable dirs are directories
of one size-capped tmpfs instead of host binds; P copies them in during set-up
and copies new and changed files back to the host once the sandbox is dead,
and a SIGTERM to P (which W forwards) then stops the sandbox (SIGKILL to all of
it) rather than being forwarded to U, so that the copy-out still happens.

If set-up fails in W or P, :class:`SandboxSetupError` is raised in W; if it
fails in U, it is raised in U. Either way no user code has run.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import platform
import resource
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from . import landlock, scratch, seccomp

__all__ = [
    "DEFAULT_DEVICES",
    "ROOT_MODE_HOST_ID",
    "SandboxProcess",
    "SandboxSetupError",
    "default_plan",
    "enter_sandbox",
    "probe",
    "set_process_cap",
    "spawn_sandbox",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
MNT_DETACH = 2

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
PR_CAPBSET_DROP, PR_SET_KEEPCAPS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 8, 47, 4
_CAPABILITY_VERSION_3 = 0x20080522

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

ROOT_MODE_HOST_ID = 2_000_000_000
"""Host uid/gid a root caller's sandbox runs as: no account, no files, not 0."""

SANDBOX_ID = 1000
DEFAULT_DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
FORWARDED_SIGNALS = (
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
    signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM,
)  # fmt: skip


class SandboxSetupError(OSError):
    """A sandbox layer could not be set up; the message says which and why."""


_libc_cache: list[ctypes.CDLL] = []


def _libc() -> ctypes.CDLL:
    if not _libc_cache:
        _libc_cache.append(ctypes.CDLL(None, use_errno=True))
    return _libc_cache[0]


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise SandboxSetupError(err, f"{what}: {os.strerror(err)}")
    return rc


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def _unshare(flags: int, what: str) -> None:
    _check(_libc().unshare(ctypes.c_int(flags)), f"unshare({what})")


def _mount(
    src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    rc = _libc().mount(_b(src), _b(dst), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(rc, f"mount({src!r} -> {dst!r}, {fstype or 'bind'})")


def _umount(path: str) -> None:
    _check(_libc().umount2(_b(path), MNT_DETACH), f"umount2({path!r})")


def _pivot_root(new: str, old: str) -> None:
    nr = _PIVOT_ROOT[seccomp.native_arch()]
    _check(_libc().syscall(ctypes.c_long(nr), _b(new), _b(old)), f"pivot_root({new!r})")


def _prctl(option: int, arg: int = 0) -> int:
    return int(_libc().prctl(option, ctypes.c_ulong(arg), 0, 0, 0))


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def _write(path: str, text: str) -> None:
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
    _write(f"/proc/{pid}/setgroups", "deny")
    _write(f"/proc/{pid}/uid_map", uid_line)
    _write(f"/proc/{pid}/gid_map", gid_line)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _send(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round((time.perf_counter() - started) * 1000, 3)


# ---------------------------------------------------------------------------- plan


def _bind_list(entries: Any) -> list[tuple[str, str]]:
    out = []
    for entry in entries or ():
        if isinstance(entry, str):
            out.append((entry, entry))
        else:
            src, dst = entry
            out.append((str(src), str(dst)))
    return out


def default_plan(
    work: str,
    tmp: str,
    meta: str,
    *,
    network: bool = False,
    extra_ro: tuple[str, ...] = (),
    nproc: int | None = None,
    scratch_mb: int | None = None,
    ro_files: tuple[str, ...] = (),
    copy_out_max_bytes: int = scratch.DEFAULT_MAX_BYTES,
    copy_out_max_files: int = scratch.DEFAULT_MAX_FILES,
) -> dict[str, Any]:
    """A plan that runs this interpreter (and its venv) on the execution's dirs.

    Read-only: the interpreter prefixes (so the venv's site-packages), the
    runner package (not the project around it), ``extra_ro``, ``/usr`` and the
    top-level links into it, and the ``/etc`` files the dynamic linker and
    Python read. Read-write, at the same
    paths: ``work``, ``tmp`` (also at ``/tmp``) and ``meta``. Landlock and
    seccomp are derived from the mounts (``"auto"``).

    With ``scratch_mb``, the three read-write dirs are not host binds but
    directories of one tmpfs of that size (the plan's ``"scratch"`` key, see
    :func:`enter_sandbox`): ``work`` and ``meta`` are copied in (``ro_files``,
    files in them, are bound read-only instead), and new or changed files in
    ``meta`` then ``work`` are copied back when the sandbox ends, within
    ``copy_out_max_bytes`` and ``copy_out_max_files``; the summary lands in
    ``meta`` (:data:`scratch.SUMMARY_NAME`). ``tmp`` is not copied either way.
    """
    runner_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    # Not every sys.path entry: an editable install or a test runner puts the
    # project itself there. Other import roots go in ``extra_ro``.
    ro: list[str] = sorted(p for p in prefixes if os.path.isdir(p))
    ro.append(runner_dir)
    ro += [p for p in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64") if os.path.lexists(p)]
    etc = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "hosts"]
    etc += ["mime.types"]
    if network:
        etc += ["resolv.conf", "ssl", "gai.conf", "services", "protocols"]
    ro += [f"/etc/{name}" for name in etc if os.path.lexists(f"/etc/{name}")]
    ro += [p for p in extra_ro if p not in ro]
    rw: list[Any] = [work, meta, tmp] if scratch_mb is None else []
    if tmp != "/tmp":
        rw.append([tmp, "/tmp"])  # with scratch: the same tmpfs dir as ``tmp``
    plan: dict[str, Any] = {
        "uid": SANDBOX_ID,
        "gid": SANDBOX_ID,
        "hostname": "sandbox",
        "network": network,
        "ro_binds": ro,
        "rw_binds": rw,
        "devices": list(DEFAULT_DEVICES),
        "files": {
            "/etc/passwd": f"sandbox:x:{SANDBOX_ID}:{SANDBOX_ID}::{work}:/usr/sbin/nologin\n",
            "/etc/group": f"sandbox:x:{SANDBOX_ID}:\n",
            "/etc/hostname": "sandbox\n",
        },
        "cwd": work,
        "nproc": nproc,
        "landlock": "auto",
        "seccomp": {"network": network, "unix_sockets": True},
    }
    if scratch_mb is not None:
        plan["scratch"] = {
            "size_mb": scratch_mb,
            "dirs": [work, meta, tmp],
            "copy_in": [work, meta],
            "ro_files": list(ro_files),
            "copy_out": [meta, work],  # meta first: the worker's report and figures
            "copy_out_max_bytes": copy_out_max_bytes,
            "copy_out_max_files": copy_out_max_files,
        }
    return plan


class _Plan:
    """A validated plan with host-side paths resolved (done in W, before any unshare)."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.raw = plan
        self.uid = int(plan.get("uid", SANDBOX_ID))
        self.gid = int(plan.get("gid", SANDBOX_ID))
        self.root_mode = os.geteuid() == 0
        self.host_uid = (
            int(plan.get("host_uid") or ROOT_MODE_HOST_ID) if self.root_mode else os.geteuid()
        )
        self.host_gid = (
            int(plan.get("host_gid") or self.host_uid) if self.root_mode else os.getegid()
        )
        if self.root_mode and (self.host_uid == 0 or self.host_gid == 0):
            raise SandboxSetupError(errno.EINVAL, "host_uid/host_gid must not be 0")
        self.network = bool(plan.get("network", False))
        self.hostname = str(plan.get("hostname", "sandbox"))
        self.cwd = str(plan.get("cwd", "/"))
        self.nproc = plan.get("nproc")
        self.files: dict[str, str] = dict(plan.get("files", {}))
        self.skipped: list[str] = []
        self.scratch: scratch.ScratchSpec | None = None
        if plan.get("scratch") is not None:
            try:
                self.scratch = scratch.ScratchSpec.parse(plan["scratch"])
            except (ValueError, TypeError) as exc:
                raise SandboxSetupError(errno.EINVAL, f"scratch: {exc}") from exc
        # (source as seen from the old root, destination, kind): symlinks are
        # recreated, everything else bound; sources are resolved now because
        # absolute links would point into the staging root later. Kind
        # "scratch": a scratch dir's tmpfs directory (``source`` is the host dir).
        self.mounts: list[tuple[str, str, str]] = []
        if self.scratch is not None:
            pairs = zip(self.scratch.dirs, self.scratch.destinations, strict=True)
            self.mounts += [(real, dst, "scratch") for real, dst in pairs]
        for kind, key in (("ro", "ro_binds"), ("rw", "rw_binds"), ("dev", "devices")):
            items = _bind_list(plan.get(key))
            if kind == "dev":
                items = [(p, p) for p in plan.get("devices", DEFAULT_DEVICES)]
            for src, dst in items:
                if not os.path.isabs(dst) or not os.path.isabs(src):
                    raise SandboxSetupError(errno.EINVAL, f"bind paths must be absolute: {src}")
                if not os.path.lexists(src):
                    self.skipped.append(src)
                    continue
                if kind == "ro" and os.path.islink(src) and src == dst and src.count("/") == 1:
                    self.mounts.append((os.readlink(src), dst, "link"))
                    continue
                real, dst = os.path.realpath(src), os.path.normpath(dst)
                how = self._scratch_kind(real) if kind == "rw" and self.scratch else kind
                if (real, dst, how) not in self.mounts:
                    self.mounts.append((real, dst, how))
        if self.scratch is not None:  # over every mount of their dir, after it (deeper)
            for i, rel, real in self.scratch.ro_files:
                if not os.path.exists(real):
                    self.skipped.append(real)
                    continue
                for src, dst, kind in list(self.mounts):
                    if kind == "scratch" and src == self.scratch.dirs[i]:
                        self.mounts.append((real, os.path.join(dst, rel), "ro"))
        self.mounts.sort(key=lambda m: m[1].count("/"))  # parents before children
        self.chown_rw = bool(plan.get("chown_rw", True))

    def _scratch_kind(self, real: str) -> str:
        """A rw bind of a scratch dir is served from its tmpfs dir; one inside it is refused."""
        assert self.scratch is not None
        for top in self.scratch.dirs:
            if real == top:
                return "scratch"
            if real.startswith(top.rstrip("/") + "/"):
                raise SandboxSetupError(
                    errno.EINVAL, f"rw bind {real} is inside the scratch dir {top}"
                )
        return "rw"

    def landlock_spec(self) -> dict[str, Any] | None:
        spec = self.raw.get("landlock", "auto")
        if spec is None or spec is False:
            return None
        if spec != "auto":
            return dict(spec)
        by_kind: dict[str, list[str]] = {"ro": ["/proc"], "rw": [], "dev": []}
        for _, dst, kind in self.mounts:
            if kind in by_kind or kind == "scratch":
                by_kind["rw" if kind == "scratch" else kind].append(dst)
        by_kind["ro"] += [p for p in self.files if p not in by_kind["ro"]]
        return {
            "read_only": by_kind["ro"],
            "read_write": by_kind["rw"],
            "devices": by_kind["dev"],
            "restrict_tcp": not self.network,
        }


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
        messages = [json.loads(line) for line in _read_all(self.status_r).splitlines()
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
        signal.signal(sig, lambda s, _f: _kill_quietly(spawned.pid, s))
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

    ``plan`` (JSON-able; see :func:`default_plan` for a complete one):

    - ``uid``, ``gid``: ids inside the sandbox (default 1000);
    - ``host_uid``, ``host_gid``: root callers only, the unprivileged host ids
      the sandbox runs as (default :data:`ROOT_MODE_HOST_ID`); the ``rw_binds``
      sources are chowned to them unless ``chown_rw`` is false;
    - ``network``: keep the host network (default False: a private network
      namespace with only ``lo`` up);
    - ``hostname``;
    - ``ro_binds``, ``rw_binds``: paths or ``[source, destination]`` pairs; the
      new root is an empty tmpfs holding only these (read-only, nosuid, nodev;
      read-write ones also noexec); top-level symlinks such as ``/lib`` are
      recreated as symlinks; missing sources are skipped and reported;
    - ``devices``: device files bound into a tmpfs ``/dev`` (default null, zero,
      random, urandom);
    - ``files``: ``{path: text}`` written read-only into the new root;
    - ``cwd``: the directory to start in;
    - ``nproc``: a process/thread cap for the sandbox (:func:`set_process_cap`);
    - ``landlock``: ``"auto"`` (derived from the binds), a spec for
      :func:`landlock.prepare`, or None;
    - ``seccomp``: a spec for :func:`seccomp.apply`, or None;
    - ``scratch``: optional; the sandbox's writable dirs in one size-capped
      tmpfs instead of read-write host binds (:mod:`.scratch`)::

          {"size_mb": int,           # the tmpfs's size (nr_inodes: 64 per MiB, >= 4096)
           "nr_inodes": int,         # optional override of that inode cap
           "dirs": [host dir],       # each a tmpfs dir mounted at the same path
           "copy_in": [host dir],    # of dirs: content copied in (regular files,
                                     # dirs; mtimes kept): the baseline
           "ro_files": [host file],  # in a copy_in dir: not copied, bound read-only
                                     # over an empty placeholder (not in size_mb)
           "copy_out": [host dir],   # of dirs: new/changed files copied back at the end
           "copy_out_max_bytes": int, "copy_out_max_files": int,  # 64 MiB, 1000
           "copy_out_seconds": float}                             # 1.0

      Modes and ownership are the host dirs' (root mode: chowned to
      ``host_uid`` unless ``chown_rw`` is false); the host dirs themselves are
      never bound or chowned. A ``rw_binds`` entry whose source is a scratch dir
      (such as ``[tmp, "/tmp"]``) mounts the same tmpfs dir there. When the
      sandbox ends (U exits or is killed, or P gets SIGTERM: it then kills every
      sandbox process with SIGKILL instead of forwarding the signal, so W
      reports U's death by SIGKILL), pid 1 copies new and changed regular files
      back (:meth:`scratch.Scratch.copy_out`) and writes a summary
      (:data:`scratch.SUMMARY_NAME`) into the first ``copy_out`` dir.

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
    if _thread_count() != 1:
        raise SandboxSetupError(
            errno.EINVAL,
            f"a sandbox needs a single-threaded caller, this one has {_thread_count()} "
            "threads (fork a fresh child; set OPENBLAS_NUM_THREADS=1 before importing numpy)",
        )
    timings: dict[str, float] = {}
    with _timed(timings, "plan"):
        p = _Plan(plan)
    if p.root_mode and p.chown_rw:
        with _timed(timings, "chown_rw"):
            for src, _, kind in p.mounts:
                if kind == "rw":
                    _chown_tree(src, p.host_uid, p.host_gid)
    status_r, status_w = os.pipe()  # P -> caller: "ok" or an error, then U's wait status
    with _timed(timings, "unshare_outer"):
        if p.root_mode:
            os.setgroups([])  # root's supplementary groups must not reach the sandbox
            _unshare(CLONE_NEWPID, "CLONE_NEWPID")
        else:
            _unshare(CLONE_NEWUSER | CLONE_NEWPID, "CLONE_NEWUSER|CLONE_NEWPID")
            _prctl(PR_SET_DUMPABLE, 1)  # else /proc/self/uid_map is not ours to write (FN 7)
            try:
                _write_id_maps("self", f"0 {p.host_uid} 1", f"0 {p.host_gid} 1")
            finally:
                # at once: same-uid processes must not ptrace the caller (it holds the
                # runner's control pipe)
                _prctl(PR_SET_DUMPABLE, 0)
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
            _send(status_w, json.dumps({"error": _describe(exc)}).encode() + b"\n")
            os._exit(1)
    os.close(status_w)
    return SandboxProcess(pid, status_r)


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"


def _chown_tree(top: str, uid: int, gid: int) -> None:
    os.lchown(top, uid, gid)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def _kill_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


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


def _pid1(p: _Plan, status_w: int, timings: dict[str, float], started: float) -> dict[str, Any]:
    """P: pid 1. Build the root, start U, then reap until U is gone."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _prctl(PR_SET_DUMPABLE, 0)  # the sandbox (same uid in userns mode) must not ptrace pid 1
    with _timed(timings, "mount_ns"):
        mounts, scratch_dirs = _build_root(p, timings)
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
    with _timed(timings, "id_maps"):
        outer = p.host_uid if p.root_mode else 0
        outer_gid = p.host_gid if p.root_mode else 0
        _write_id_maps(str(upid), f"{p.uid} {outer} 1", f"{p.gid} {outer_gid} 1")
    stopped = _handle_signals(upid, stop=scratch_dirs is not None)  # before U runs any code
    _send(go_w, json.dumps(timings).encode())
    os.close(go_w)
    _send(status_w, b'{"ok": true}\n')
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
        _kill_quietly(-1, signal.SIGKILL)

    for sig in FORWARDED_SIGNALS:
        if stop and sig == signal.SIGTERM:
            signal.signal(sig, stop_all)
        else:
            signal.signal(sig, lambda s, _f: _kill_quietly(upid, s))
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
            _kill_quietly(-1, signal.SIGKILL)  # pid 1 kills everything else in the namespace
    if scratch_dirs is not None:
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # a second SIGTERM must not cut the copy short
        scratch_dirs.copy_out(stopped=bool(stopped))
    _send(
        status_w, json.dumps({"status": status if status is not None else 1 << 8}).encode() + b"\n"
    )
    os._exit(0)


def _build_root(
    p: _Plan, timings: dict[str, float]
) -> tuple[dict[str, Any], scratch.Scratch | None]:
    """P: a private mount namespace whose root is a tmpfs holding only the plan's paths.

    Also returns the scratch dirs' state (with fds on the tmpfs and the host
    copy_out dirs, opened before the host's root is gone), if the plan has them.
    """
    _unshare(CLONE_NEWNS, "CLONE_NEWNS")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Stage on a tmpfs over /tmp: after the first pivot_root the old root stays
    # reachable at /oldroot, so sources anywhere (even under /tmp) can be bound.
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=65536")
    os.mkdir("/tmp/oldroot")
    os.mkdir("/tmp/newroot")
    _pivot_root("/tmp", "/tmp/oldroot")
    os.chdir("/")
    _mount("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for path, text in p.files.items():  # before the binds: never written through one
        target = "/newroot" + path
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(target, 0o644)
    os.makedirs("/newroot/dev", mode=0o755, exist_ok=True)
    _mount("tmpfs", "/newroot/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    scratch_dirs = scratch_report = None
    if p.scratch is not None:
        with _timed(timings, "scratch"):
            owner = (p.host_uid, p.host_gid) if p.root_mode and p.chown_rw else None
            scratch_dirs = scratch.Scratch(p.scratch, owner)
            scratch_report = scratch_dirs.setup("/oldroot", "/scratch", _mount)
    done: dict[str, list[str]] = {"ro": [], "rw": [], "dev": [], "link": [], "scratch": []}
    for src, dst, kind in p.mounts:
        target = "/newroot" + dst
        if kind == "link":
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            if not os.path.lexists(target):
                os.symlink(src, target)
            done[kind].append(dst)
            continue
        if kind == "scratch":
            assert scratch_dirs is not None
            source = scratch_dirs.source(src)
        else:
            source = "/oldroot" + src
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if os.path.isdir(source):
            os.makedirs(target, mode=0o755, exist_ok=True)
        elif not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
        _mount(source, target, None, MS_BIND)
        extra = {
            "ro": MS_RDONLY | MS_NODEV,
            "rw": MS_NODEV | MS_NOEXEC,
            "scratch": MS_NODEV | MS_NOEXEC,
            "dev": MS_NOEXEC,
        }[kind]
        _remount(target, MS_NOSUID | extra)
        done[kind].append(dst)
    for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                       ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(link, f"/newroot/dev/{name}")
    _remount("/newroot/dev", MS_NOSUID | MS_NOEXEC | MS_RDONLY)
    os.makedirs("/newroot/proc", mode=0o555, exist_ok=True)
    _mount("proc", "/newroot/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _remount("/newroot", MS_NOSUID | MS_NODEV | MS_RDONLY)
    _umount("/oldroot")
    os.chdir("/newroot")
    _pivot_root(".", ".")  # the old (staging) root now sits on top of the new one
    _umount(".")
    os.chdir("/")
    report = {
        "root": "tmpfs (read-only)",
        "ro": done["ro"],
        "rw": done["rw"],
        "devices": done["dev"],
        "symlinks": done["link"],
        "files": sorted(p.files),
        "proc": True,
        "skipped": p.skipped,
    }
    if scratch_report is not None:
        report["scratch"] = {**scratch_report, "mounted_at": done["scratch"]}
    return report, scratch_dirs


def _remount(target: str, flags: int) -> None:
    """Remount a bind with ``flags`` added, keeping the flags the source has.

    Inside a user namespace the kernel refuses to clear flags locked by the
    source mount (nosuid, nodev, noexec, ro, atime), so carry them over.
    """
    st = os.statvfs(target).f_flag
    for st_flag, ms_flag in (
        (os.ST_RDONLY, MS_RDONLY), (os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME),
    ):  # fmt: skip
        if st & st_flag:
            flags |= ms_flag
    _mount(None, target, None, MS_REMOUNT | MS_BIND | flags)


def _sandbox(
    p: _Plan, ready_w: int, go_r: int, mounts: dict[str, Any], started: float, fork_ms: float
) -> dict[str, Any]:
    """U: own user, net, ipc and uts namespaces; drop everything; apply the policies."""
    timings: dict[str, float] = {"fork_sandbox": fork_ms}
    # P is not dumpable and U inherited that: make U's /proc files writable by P
    # again for the id maps (FIELD_NOTES 7). The uid change resets it in root mode.
    _prctl(PR_SET_DUMPABLE, 1)
    flags = CLONE_NEWUSER | CLONE_NEWIPC | CLONE_NEWUTS | (0 if p.network else CLONE_NEWNET)
    with _timed(timings, "unshare_inner"):
        _unshare(
            flags,
            "CLONE_NEWUSER|CLONE_NEWIPC|CLONE_NEWUTS" + ("" if p.network else "|CLONE_NEWNET"),
        )
    _send(ready_w, b"u")
    os.close(ready_w)
    # still fully capable in the new namespaces while pid 1 writes the id maps
    loopback = False
    if not p.network:
        with _timed(timings, "loopback"):
            loopback = _loopback_up()
    socket.sethostname(p.hostname)
    parent_timings = json.loads(_read_all(go_r) or b"null")
    os.close(go_r)
    if parent_timings is None:
        raise SandboxSetupError(errno.ECHILD, "pid 1 did not write the id maps")
    prepared = None
    ll_spec = p.landlock_spec()
    if ll_spec is not None:
        with _timed(timings, "landlock_prepare"):
            prepared = landlock.prepare(ll_spec)  # O_PATH opens, before the privilege drop
    with _timed(timings, "drop_privileges"):
        os.setresgid(p.gid, p.gid, p.gid)
        os.setresuid(p.uid, p.uid, p.uid)
        _drop_capabilities()
    os.chdir(p.cwd)
    nproc = set_process_cap(int(p.nproc)) if p.nproc else None
    _check(_prctl(PR_SET_NO_NEW_PRIVS, 1), "prctl(PR_SET_NO_NEW_PRIVS)")
    ll_report = None
    if prepared is not None:
        with _timed(timings, "landlock_enforce"):
            ll_report = prepared.enforce()
    sc_report = None
    sc_spec = p.raw.get("seccomp")
    if sc_spec is not None and sc_spec is not False:
        with _timed(timings, "seccomp"):
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


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _drop_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets.

    setresuid() does not clear them here: uid 0 is not mapped in the sandbox's
    namespace, so the kernel never saw a root-to-nonroot transition.
    """
    libc = _libc()
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:  # past the last capability
                break
            _check(-1, f"prctl(PR_CAPBSET_DROP, {cap})")
    _check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    _check(libc.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS, 0)")
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset(empty)")


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


def probe(plan: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """Enter a sandbox in a throw-away child and report whether every layer applies.

    Returns ``{"available": bool, "reason": str, "report": dict | None}``; the
    reason names the failing layer, or the layers and the landlock ABI.
    """
    if plan is None:
        plan = {
            "ro_binds": [p for p in ("/usr", "/lib", "/lib64", "/bin") if os.path.lexists(p)],
            "rw_binds": [],
            "files": {},
            "cwd": "/",
            "landlock": {"read_only": ["/usr"]},
            "seccomp": {},
        }
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            report = enter_sandbox(plan)
            _send(w, json.dumps({"report": report}).encode())
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            try:
                _send(w, json.dumps({"error": _describe(exc)}).encode())
            finally:
                os._exit(1)
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        rest = deadline - time.monotonic()
        if rest <= 0:
            _kill_quietly(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([r], [], [], rest)
        if not ready:
            continue
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    result = json.loads(data or b'{"error": "timed out or died without a report"}')
    if "error" in result:
        return {"available": False, "reason": result["error"], "report": None}
    report = result["report"]
    ll = report.get("landlock") or {}
    reason = (
        f"namespaces ({', '.join(k for k, v in report['namespaces'].items() if v)}), "
        f"private root, landlock ABI {ll.get('abi', '?')}, seccomp, {report['mode']} mode"
    )
    return {"available": True, "reason": reason, "report": report, "arch": platform.machine()}
