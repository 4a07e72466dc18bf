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

A fork starts the runner's keeper (:mod:`.keeper`), which connects the runner's own
channels to the host and builds its root; the answer carries the runner's supervisor's
pid (pid 1 of the runner's namespace, as this process sees it): killing it ends every
process of the runner. Once a keeper is gone, its runner's mounts and cgroups are
removed, so nothing of a runner outlives it.

The template is not dumpable and runs no user code; runners cannot see it (they are
chrooted in their own pid namespace) nor reach the host's socket.
"""

from __future__ import annotations

import gc
import json
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
from ..syscalls import PR_SET_DUMPABLE, describe, kill_quietly, mount, try_prctl
from .template import _preload, _warm_up

__all__ = ["BOXED_BOOTSTRAP", "main"]

BOXED_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from runner.roles.boxed import main; main(sys.argv[2])"
)
#: Where the runners' roots and cgroups live: a tmpfs only the sandbox's root can reach.
RUNNERS = "/.sbx"
CONTROLLERS = ("pids", "memory", "cpuacct")
_KEEPER_SECONDS = 60.0


#: Runners' uids: one per live runner, never 0 (RLIMIT_NPROC then counts only its tasks).
FIRST_UID, LAST_UID = 100_000, 1 << 30


@dataclass
class Kept:
    """A runner this template started: its keeper, its supervisor, its directory, its uid."""

    keeper: int
    supervisor: int
    top: str
    uid: int


class Template:
    """The template's state: its link to the host and the runners it keeps."""

    def __init__(self, link: socket.socket, host: str) -> None:
        self.link = link
        self.host = host
        self.kept: dict[str, Kept] = {}
        self.by_keeper: dict[int, str] = {}
        self.groups = {name: os.path.join(RUNNERS, "cg", name) for name in CONTROLLERS}
        self.count = 0
        self.next_uid = FIRST_UID

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
        top, uid = os.path.join(RUNNERS, f"r{self.count}"), self._uid()
        # named by a counter, not by the runner's secret id: the runner reads its cgroups
        groups = {name: os.path.join(path, f"r{self.count}") for name, path in self.groups.items()}
        for path in groups.values():
            os.mkdir(path, 0o700)
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.closerange(3, report_w)  # the host link and every other runner's fds
                os.closerange(report_w + 1, 1 << 16)
                from .keeper import keep

                keep(rid, setup, self.host, top, groups, uid, report_w)
            finally:
                os._exit(70)
        os.close(report_w)
        answer = _read_report(report_r, _KEEPER_SECONDS)
        self.by_keeper[pid] = rid
        if "pid" not in answer:
            kill_quietly(pid, signal.SIGKILL)
            self.kept[rid] = Kept(pid, 0, top, uid)
            return {"rid": rid, "error": answer.get("error", "the runner did not start")}
        self.kept[rid] = Kept(pid, int(answer["pid"]), top, uid)
        return {"rid": rid, "pid": int(answer["pid"])}

    def _group(self, controller: str, rid: str) -> str:
        kept = self.kept.get(rid)
        name = os.path.basename(kept.top) if kept is not None else "-"
        return os.path.join(self.groups[controller], name)

    def usage(self, rid: str) -> dict[str, Any]:
        cpu = _read_int(os.path.join(self._group("cpuacct", rid), "cpuacct.usage"))
        memory = _read_int(os.path.join(self._group("memory", rid), "memory.usage_in_bytes"))
        return {"rid": rid, "cpu_seconds": cpu / 1e9, "memory_bytes": memory}

    def kill(self, rid: str, sig: int) -> None:
        kept = self.kept.get(rid)
        if kept is not None and kept.supervisor:
            kill_quietly(kept.supervisor, sig)

    # -- runners that ended ------------------------------------------------------------

    def reap(self) -> None:
        """Reap ended keepers; remove their runners' mounts and cgroups."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rid = self.by_keeper.pop(pid, None)
            kept = self.kept.pop(rid, None) if rid is not None else None
            if kept is None:
                continue
            if _orphan(kept.supervisor):  # its keeper died first: it is this process's now
                kill_quietly(kept.supervisor, signal.SIGKILL)
            left = chroot.teardown(kept.top)
            for path in self.groups.values():
                try:
                    os.rmdir(os.path.join(path, os.path.basename(kept.top)))
                except OSError as exc:
                    left.append(f"cgroup {path}: {exc.strerror}")
            if left:
                print(f"runner {kept.top} not fully removed: {left}", file=sys.stderr)

    def serve(self) -> NoReturn:
        fd = self.link.fileno()
        while True:
            ready, _, _ = select.select([fd], [], [], 0.2)
            self.reap()
            if not ready:
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


def _read_report(fd: int, timeout: float) -> dict[str, Any]:
    """The keeper's one message (the supervisor's pid, or why it failed)."""
    data, deadline = b"", time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([fd], [], [], left)
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    try:
        answer = json.loads(data or b"{}")
    except ValueError:
        answer = {"error": f"unreadable keeper report: {data[:200]!r}"}
    return answer if isinstance(answer, dict) else {"error": "no keeper report"}


def _orphan(pid: int) -> bool:
    """Whether ``pid`` is a child of this process that is no keeper (checked by parent, so
    that a pid already reused by another runner is never killed)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    fields = stat[stat.rfind(b")") + 2 :].split()
    return len(fields) > 1 and int(fields[1]) == os.getpid()


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
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    from ..layers import confine, seccomp  # noqa: F401 - imported once, for every runner
    from . import cells, keeper, worker  # noqa: F401

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
