"""The warm template inside a gVisor sandbox (stdlib only).

Started by the host (:mod:`sandbox_tool.engines.runsc`) as the sandbox's first process::

    python -I -B -c BOXED_BOOTSTRAP <dir holding this package> <host socket>

with the sandbox's token on its stdin (not in its command line: runsc 2022 lets any
process read any other's ``/proc/<pid>/cmdline``). It connects to the host's unix socket
(a host directory bound into the sandbox; ``runsc --host-uds=open`` lets it connect),
announces itself with the token, imports
the preload list as the usual template does (:mod:`.template`), mounts the sandbox's
own cgroup controllers (pids, memory, cpuacct: gVisor implements them itself, no host
cgroup is involved), answers ``{"ready": true, ...}``, then serves the host's frames,
one at a time, in order:

    {"op": "fork", "rid": ..., "setup": {...}}  -> {"rid", "pid"} or {"rid", "error"}
    {"op": "usage", "rid": ...}                 -> {"rid", "cpu_seconds", "memory_bytes"}
    {"op": "kill", "rid": ..., "signal": N}     (no answer)

A fork prepares the runner (:mod:`.keeper`: its own channels to the host, its root)
and forks its supervisor, pid 1 of a new pid namespace; the answer carries that pid
(as this process sees it): killing it ends every process of the runner. Once it has
ended, the files the code wrote are copied back to the host, its control channel is
closed, and its mounts and cgroups are removed, so nothing of a runner outlives it.

The template is not dumpable and runs no user code; runners cannot see it (they are
chrooted in their own pid namespace) nor reach the host's socket.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, NoReturn

from ..framing import encode_frame, read_frame, write_all
from ..layers import chroot
from ..protocol import RunnerSetup
from ..syscalls import PR_SET_DUMPABLE, describe, kill_quietly, mount, try_prctl, unshare
from .keeper import Prepared, prepare, supervise_runner
from .template import _preload, _warm_up

__all__ = ["BOXED_BOOTSTRAP", "main"]

BOXED_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from runner.roles.boxed import main; main(sys.argv[2])"
)
#: Where the runners' roots and cgroups live: a tmpfs only the sandbox's root can reach.
RUNNERS = "/.sbx"
CONTROLLERS = ("pids", "memory", "cpuacct")
CLONE_NEWPID = 0x20000000


#: Runners' uids: one per live runner, never 0 (RLIMIT_NPROC then counts only its tasks).
FIRST_UID, LAST_UID = 100_000, 1 << 30


@dataclass
class Kept:
    """A runner this template started: its supervisor, its directory, its uid, the files
    to copy out and the copy of its control channel held until they are."""

    supervisor: int
    top: str
    uid: int
    prepared: Prepared | None = None


class Template:
    """The template's state: its link to the host and the runners it keeps."""

    def __init__(self, link: socket.socket, host: str) -> None:
        self.link = link
        self.host = host
        self.kept: dict[str, Kept] = {}
        self.by_pid: dict[int, str] = {}
        self.groups = {name: os.path.join(RUNNERS, "cg", name) for name in CONTROLLERS}
        self.count = 0
        self.next_uid = FIRST_UID
        # a runner's end wakes the loop at once: its files are copied out, its control
        # channel closed, before the host gives up waiting for it
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        signal.set_wakeup_fd(wake_w)

    def _uid(self) -> int:
        """A uid no live runner has (runners are few: the search is short)."""
        taken = {kept.uid for kept in self.kept.values()}
        while self.next_uid in taken:
            self.next_uid = self.next_uid + 1 if self.next_uid < LAST_UID else FIRST_UID
        uid = self.next_uid
        self.next_uid = uid + 1 if uid < LAST_UID else FIRST_UID
        return uid

    def mount_cgroups(self) -> None:
        for name, path in self.groups.items():
            os.makedirs(path, 0o700, exist_ok=True)
            mount("none", path, "cgroup", 0, name)

    def send(self, frame: dict[str, Any]) -> None:
        write_all(self.link.fileno(), encode_frame(frame))

    # -- the host's operations ---------------------------------------------------------

    def fork(self, rid: str, setup: RunnerSetup) -> dict[str, Any]:
        self.count += 1
        name, uid = f"r{self.count}", self._uid()
        top = os.path.join(RUNNERS, name)
        # named by a counter, not by the runner's secret id: the runner reads its cgroups
        groups = [os.path.join(path, name) for path in self.groups.values()]
        prepared = None
        try:
            prepared = prepare(rid, setup, self.host, top, uid)
            for path in groups:
                os.mkdir(path, 0o700)
            with open(os.path.join(groups[0], "pids.max"), "w") as f:
                f.write(str(prepared.nproc + 1))  # + the supervisor
            go_r, go_w = os.pipe()
            unshare(CLONE_NEWPID, "CLONE_NEWPID")  # the next child is pid 1 of a new one
            pid = os.fork()
            if pid == 0:
                os.close(go_w)
                supervise_runner(prepared, go_r)
            os.close(go_r)
        except Exception as exc:  # noqa: BLE001 - answered: the template lives on
            if prepared is not None:
                prepared.close_channels()
            self._remove(top, name)
            return {"rid": rid, "error": describe(exc)}
        self.kept[rid] = Kept(pid, top, uid, prepared)
        self.by_pid[pid] = rid
        try:
            for path in groups:
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            write_all(go_w, b"g")
        except OSError as exc:
            kill_quietly(pid, signal.SIGKILL)
            return {"rid": rid, "error": f"the runner's cgroups: {describe(exc)}"}
        finally:
            os.close(go_w)
            prepared.close_channels(keep=("control",))
        return {"rid": rid, "pid": pid}

    def usage(self, rid: str) -> dict[str, Any]:
        kept = self.kept.get(rid)
        name = os.path.basename(kept.top) if kept is not None else "-"
        cpu = _read_int(os.path.join(self.groups["cpuacct"], name, "cpuacct.usage"))
        memory = _read_int(os.path.join(self.groups["memory"], name, "memory.usage_in_bytes"))
        return {"rid": rid, "cpu_seconds": cpu / 1e9, "memory_bytes": memory}

    def kill(self, rid: str, sig: int) -> None:
        kept = self.kept.get(rid)
        if kept is not None:
            kill_quietly(kept.supervisor, sig)

    # -- runners that ended ------------------------------------------------------------

    def reap(self) -> None:
        """Reap ended supervisors: copy their runners' files out, close their control
        channels, remove their mounts and cgroups."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rid = self.by_pid.pop(pid, None)
            kept = self.kept.pop(rid, None) if rid is not None else None
            if kept is None:
                continue
            prepared = kept.prepared
            if prepared is not None:
                if prepared.dirs is not None:
                    prepared.dirs.copy_out(stopped=os.WIFSIGNALED(status))
                    prepared.dirs.close()
                prepared.close_channels()  # the control channel: the host may read now
            self._remove(kept.top, os.path.basename(kept.top))

    def _remove(self, top: str, name: str) -> None:
        left = chroot.teardown(top) if os.path.lexists(top) else []
        for path in self.groups.values():
            group = os.path.join(path, name)
            if os.path.isdir(group):
                try:
                    os.rmdir(group)
                except OSError as exc:
                    left.append(f"cgroup {group}: {exc.strerror}")
        if left:
            print(f"runner {top} not fully removed: {left}", file=sys.stderr)

    def serve(self) -> NoReturn:
        fd = self.link.fileno()
        while True:
            try:
                ready, _, _ = select.select([fd, self.wake_r], [], [])
            except InterruptedError:
                continue
            if self.wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self.wake_r, 4096)
            self.reap()
            if fd not in ready:
                continue
            try:
                frame = read_frame(fd)
            except (OSError, ValueError):
                frame = None
            if frame is None:
                os._exit(0)  # the host is gone: the sandbox ends with its first process
            op, rid = frame.get("op"), str(frame.get("rid", ""))
            if op == "fork":
                try:
                    answer = self.fork(rid, frame["setup"])
                except Exception as exc:  # noqa: BLE001 - answered, the template lives on
                    answer = {"rid": rid, "error": describe(exc)}
                self.send(answer)
            elif op == "usage":
                self.send(self.usage(rid))
            elif op == "kill":
                self.kill(rid, int(frame.get("signal", signal.SIGKILL)))


def _read_int(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def main(host: str) -> NoReturn:
    started = time.perf_counter()
    sys.path.pop(0)  # the runner's directory: not for the user's code to import
    try_prctl(PR_SET_DUMPABLE, 0)  # runners must not reach this process's memory or fds
    token = os.read(0, 256).decode().strip()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    link.connect(host)
    write_all(link.fileno(), encode_frame({"role": "template", "token": token}))
    config = read_frame(link.fileno()) or {}
    from ..layers import confine, seccomp  # noqa: F401 - imported once, for every runner
    from . import cells, worker  # noqa: F401

    template = Template(link, host)
    try:
        template.mount_cgroups()
    except OSError as exc:
        write_all(link.fileno(), encode_frame({"ready": False, "error": f"cgroups: {exc}"}))
        os._exit(1)
    failed = _preload(list(config.get("preload", [])))
    _warm_up()
    gc.collect()
    gc.freeze()  # keep the preloaded heap shared with the forks
    template.send({
        "ready": True,
        "failed": failed,
        "python": sys.version.split()[0],
        "ready_ms": round((time.perf_counter() - started) * 1000, 1),
    })  # fmt: skip
    template.serve()
