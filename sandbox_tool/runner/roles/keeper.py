"""A runner inside a gVisor sandbox: its keeper and its supervisor (stdlib only).

The gVisor template (:mod:`.boxed`) forks a **keeper** per runner. The keeper, still the
sandbox's root with the template's view of its files:

1. connects the runner's four channels to the host's unix socket, each announced by
   the runner's secret id (the host's driver gets them as the fds it expects: the
   framed channel, stdout, stderr and the control channel);
2. puts itself in the runner's cgroups (a ``pids.max`` cap on every process of the
   runner, and the memory and CPU accounts the host's budgets read);
3. builds the runner's root (:mod:`..layers.chroot`): the execution's dirs in a tmpfs
   of ``max_disk_mb``, the read-only binds of what Python needs;
4. enters new pid, ipc and uts namespaces (and net, without ``network``) and forks the
   **supervisor**, pid 1 of the runner's pid namespace, which mounts the runner's
   ``/proc``, chroots into its root and runs :func:`.supervisor.supervise`: the worker
   it forks drops every capability and installs the seccomp filter before any code
   runs (the setup's ``confine``);
5. waits for the supervisor (its end kills every process of the namespace), copies the
   files the code wrote back to the host's dirs, and only then lets go of the control
   channel: its end tells the host the runner is over and its files are in place.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from typing import Any, NoReturn

from ..framing import encode_frame, write_all
from ..layers import chroot
from ..layers.plan import default_plan
from ..protocol import IsolationSetup, RunnerSetup
from ..syscalls import describe, unshare
from .supervisor import supervise

__all__ = ["CHANNELS", "keep"]

#: The runner's channels, in the order the keeper connects them.
CHANNELS = ("control", "channel", "stdout", "stderr")
CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = (
    0x04000000, 0x08000000, 0x20000000, 0x40000000,
)  # fmt: skip


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


def join_cgroups(groups: dict[str, str], nproc: int) -> None:
    """Make this process (and so every process of the runner) a member of its cgroups."""
    with open(os.path.join(groups["pids"], "pids.max"), "w") as f:
        f.write(str(nproc))
    for path in groups.values():
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


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


def keep(
    rid: str,
    setup: RunnerSetup,
    host: str,
    top: str,
    groups: dict[str, str],
    uid: int,
    report_w: int,
) -> NoReturn:
    """The keeper's whole life (in the template's fork); reports the supervisor's pid, or
    why it could not start, on ``report_w``. The worker will run as ``uid``."""
    channels: dict[str, int] = {}
    try:
        build: IsolationSetup = setup.pop("isolation") or {}  # type: ignore[assignment]
        for name in CHANNELS:
            channels[name] = connect(host, rid, name)
        join_cgroups(groups, int(build["nproc"]) + 2)  # + the keeper and the supervisor
        root, dirs, _ = chroot.build(runner_plan(setup, build, uid), top, owner=(uid, uid))
        nproc = int(build["nproc"])
        # gVisor refuses a task only past RLIMIT_NPROC (Linux at it): one lower caps at nproc
        setup["confine"] = {**(setup.get("confine") or {}), "uid": uid,
                            "nproc": max(1, nproc - 1), "process_cap": nproc}  # fmt: skip
        network = bool(build.get("network"))
        unshare(
            CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | (0 if network else CLONE_NEWNET),
            "CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWUTS" + ("" if network else "|CLONE_NEWNET"),
        )
        pid = os.fork()
        if pid == 0:
            os.close(report_w)
            if dirs is not None:
                dirs.close()  # fds on host dirs outside the root: never the worker's
            _supervise(setup, root, channels)
    except BaseException as exc:  # noqa: BLE001 - the host is told, then this runner ends
        write_all(report_w, json.dumps({"error": describe(exc)}).encode())
        os._exit(70)
    write_all(report_w, json.dumps({"pid": pid}).encode())
    os.close(report_w)
    for name in ("channel", "stdout", "stderr"):
        os.close(channels[name])
    _, status = os.waitpid(pid, 0)
    if dirs is not None:
        dirs.copy_out(stopped=os.WIFSIGNALED(status))
    os._exit(0)  # the control channel closes now: the host may read the files


def _supervise(setup: RunnerSetup, root: str, channels: dict[str, int]) -> NoReturn:
    """Pid 1 of the runner's namespaces: its /proc, its root, then the usual supervisor."""
    try:
        chroot.mount_proc(root)
        os.chroot(root)
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
    supervise(setup, channels["control"], channels["channel"])
