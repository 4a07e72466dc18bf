"""A runner inside a gVisor sandbox: what its template prepares for it, and its
supervisor's first steps (stdlib only).

Forking a process that holds the data-science stack costs gVisor's ptrace platform
about 130 ms (fork and exit), so a runner is two such forks, not three: the template
(:mod:`.boxed`) itself, still the sandbox's root with its view of the files,

1. connects the runner's four channels to the host's unix socket, each announced by
   the runner's secret id (the host's driver gets them as the fds it expects: the
   framed channel, stdout, stderr and the control channel);
2. builds the runner's root (:mod:`..layers.chroot`): the execution's dirs in a tmpfs
   of ``max_disk_mb``, owned by the runner's uid, the read-only binds Python needs;
3. forks the **supervisor** as pid 1 of a new pid namespace, puts it in the runner's
   cgroups (a ``pids.max`` cap, and the memory and CPU accounts the host's budgets
   read) before letting it go on, and keeps a copy of its control channel.

The supervisor (:func:`supervise_runner`) closes every descriptor but its channels,
enters new ipc and uts namespaces (and net, without ``network``), mounts the runner's
``/proc``, chroots into its root and runs :func:`.supervisor.supervise`: the worker it
forks drops to the runner's uid without capabilities and installs the seccomp filter
before any code runs (the setup's ``confine``). When it ends, every process of its
namespace ends; the template then copies the files the code wrote back to the host's
dirs and only then closes its copy of the control channel: its end tells the host the
runner is over and its files are in place.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..framing import encode_frame, write_all
from ..layers import chroot, scratch
from ..layers.plan import default_plan
from ..protocol import IsolationSetup, RunnerSetup
from ..syscalls import unshare
from .supervisor import supervise

__all__ = ["CHANNELS", "Prepared", "prepare", "supervise_runner"]

#: The runner's channels, in the order they are connected.
CHANNELS = ("control", "channel", "stdout", "stderr")
CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET = 0x04000000, 0x08000000, 0x40000000


@dataclass
class Prepared:
    """A runner ready for its supervisor: its channels, its root, its scratch dirs."""

    setup: RunnerSetup
    root: str
    network: bool
    nproc: int
    dirs: scratch.Scratch | None
    channels: dict[str, int] = field(default_factory=dict)

    def close_channels(self, keep: tuple[str, ...] = ()) -> None:
        for name in [n for n in self.channels if n not in keep]:
            os.close(self.channels.pop(name))


def connect(path: str, rid: str, name: str) -> int:
    """One channel to the host, announced as ``name`` of runner ``rid``; its fd."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        write_all(sock.fileno(), encode_frame({"role": "runner", "rid": rid, "channel": name}))
    except BaseException:
        sock.close()
        raise
    return sock.detach()


def runner_plan(setup: RunnerSetup, build: IsolationSetup, uid: int) -> dict[str, Any]:
    """The process engine's plan for this runner, as a root its worker chroots into as
    ``uid``."""
    paths = setup["paths"]
    plan = default_plan(
        paths["work"], paths["tmp"], paths["meta"],
        network=bool(build.get("network")),
        extra_ro=tuple(build.get("extra_ro", ())),
        scratch_mb=int(build["scratch_mb"]),
        ro_files=tuple(build.get("ro_files", ())),
        copy_out_max_bytes=int(build["copy_out_max_bytes"]),
    )  # fmt: skip
    plan["uid"] = plan["gid"] = uid
    plan["files"]["/etc/passwd"] = f"sandbox:x:{uid}:{uid}::{paths['work']}:/usr/sbin/nologin\n"
    plan["files"]["/etc/group"] = f"sandbox:x:{uid}:\n"
    return plan


def prepare(rid: str, setup: RunnerSetup, host: str, top: str, uid: int) -> Prepared:
    """In the template: the runner's channels and root (under ``top``); its worker will
    run as ``uid``. Undone by the caller (channels closed, ``top`` torn down) on error."""
    build: IsolationSetup = setup.pop("isolation") or {}  # type: ignore[assignment]
    nproc = int(build["nproc"])
    # gVisor refuses a task only past RLIMIT_NPROC (Linux at it): one lower caps at nproc
    setup["confine"] = {**(setup.get("confine") or {}), "uid": uid,
                        "nproc": max(1, nproc - 1), "process_cap": nproc}  # fmt: skip
    prepared = Prepared(setup, "", bool(build.get("network")), nproc, None)
    for name in CHANNELS:
        prepared.channels[name] = connect(host, rid, name)
    prepared.root, prepared.dirs, _ = chroot.build(
        runner_plan(setup, build, uid), top, owner=(uid, uid)
    )
    return prepared


def supervise_runner(prepared: Prepared, go: int) -> NoReturn:
    """In the supervisor, pid 1 of the runner's pid namespace (the template's fork): wait
    for ``go`` (its cgroups joined), then its namespaces, /proc and root, then the usual
    supervisor."""
    channels = prepared.channels
    try:
        signal.set_wakeup_fd(-1)  # the template's: closed below
        if prepared.dirs is not None:
            prepared.dirs.close()  # fds on host dirs outside the root: never the worker's
        keep = {*channels.values(), go}
        for fd in _open_fds():  # the host link, other runners' channels and dirs
            if fd > 2 and fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if os.read(go, 1) != b"g":
            os._exit(71)  # the template gave up on this runner
        os.close(go)
        net = 0 if prepared.network else CLONE_NEWNET
        unshare(CLONE_NEWIPC | CLONE_NEWUTS | net, "CLONE_NEWIPC|CLONE_NEWUTS|CLONE_NEWNET")
        chroot.mount_proc(prepared.root)
        os.chroot(prepared.root)
        os.chdir("/")
        socket.sethostname("sandbox")
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(channels["stdout"], 1)
        os.dup2(channels["stderr"], 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        for fd in (devnull, channels["stdout"], channels["stderr"]):
            os.close(fd)
    except BaseException:  # noqa: BLE001 - no code ran: the host sees the channels end
        os._exit(71)
    supervise(prepared.setup, channels["control"], channels["channel"])


def _open_fds() -> list[int]:
    try:
        return [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))
