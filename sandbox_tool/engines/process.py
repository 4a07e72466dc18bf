"""The process engine: Linux process isolation without root, KVM or external programs.

Security level 7. Every execution gets a fresh sandbox built by the runner
(:mod:`sandbox_tool.runner.layers`) before any user code runs:

- **namespaces**: user, pid, net, ipc, uts, cgroup and mount. The code sees
  only its own processes, has no network but its own loopback, and cannot
  signal, ptrace or read the environment of anything on the host. Its pid 1
  reaps and, when the code ends, kills everything left in the namespace.
- **a private root**: an empty tmpfs holding read-only binds of the
  interpreter, its venv, ``/usr`` and the few ``/etc`` files Python needs (its
  own ``/etc/hosts``; ``/proc/cmdline`` reads empty; no ``/dev/shm``), and
  the execution's work, temp and private dirs in a tmpfs of ``max_disk_mb``
  (their files are copied in, and copied back out when the code is done);
  nothing else of the host (not ``$HOME``, not the project, not other users'
  files).
- **an unprivileged uid**: uid 1000 inside, mapped to an unused host uid
  (root callers) or to the caller's uid; every capability dropped;
  ``no_new_privs``.
- **landlock**: read-only access to the bound system paths, read-write access
  to the execution's dirs only, no ``execve``, TCP bind and connect denied,
  signals and abstract unix sockets scoped, as far as the running ABI knows.
- **seccomp**: ptrace, process_vm_*, mount and friends, bpf, keyrings
  (keyctl, add_key, request_key), perf_event_open, module loading, kexec,
  io_uring, userfaultfd, memfd_create, SysV IPC (shm*, sem*, msg*), inotify,
  fanotify, POSIX message queues, new namespaces and every socket family but
  ``AF_UNIX`` are refused with EPERM (``clone3`` answers ENOSYS so glibc falls
  back to ``clone``).
- **limits**: the native engine's rlimits (``RLIMIT_SIGPENDING`` among them:
  queued signals are counted per user up the user namespaces, so to the
  host's user), plus a process/thread cap that counts only this sandbox's
  tasks (for root and non-root callers alike), and the host-side wall-clock
  kill of the whole sandbox and output cap.

What it does not stop: kernel bugs (it shares the host kernel; a VM or
gVisor engine is the stronger choice), reading the world-readable system
files it binds (``/usr``, the interpreter), CPU and memory contention with
the host beyond the rlimits (no cgroups here; the tmpfs's ``max_disk_mb`` is
memory that ``RLIMIT_AS`` does not count). With ``network=True`` the code shares the
host's network (TCP/UDP over IPv4/IPv6 only): the weaker setting.

On macOS the same engine runs the runner under ``sandbox-exec`` with a
Seatbelt profile of the same intent (:mod:`sandbox_tool.engines.isolation.seatbelt`),
**untested on real macOS**, without a pid namespace or a per-sandbox process cap.

The engine refuses to start (``EngineUnavailable``) when a layer cannot be
applied on this host, unless built with ``accept_degraded=True``; then every
result lists the missing layers in ``degraded``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from sandbox_tool.engines.isolation.base import Isolation, Unavailable
from sandbox_tool.engines.isolation.linux import OPTIONAL_LAYERS, LinuxNamespaces
from sandbox_tool.engines.isolation.seatbelt import Seatbelt
from sandbox_tool.engines.runner_engine import DEFAULT_PRELOAD, RunnerEngine

__all__ = ["OPTIONAL_LAYERS", "ProcessEngine"]


class ProcessEngine(RunnerEngine):
    """The runner in a fresh namespaces + landlock + seccomp sandbox per execution.

    >>> engine = ProcessEngine()                       # refuses to start if a layer is missing
    >>> engine = ProcessEngine(accept_degraded=True)   # runs without it, and says so
    """

    name = "process"
    security_level = 7
    #: Tested on Linux (namespaces); Seatbelt's runners would work the same but are not.
    supports_batch_scope = sys.platform.startswith("linux")
    summary = (
        "Linux user/pid/net/ipc/uts/mount namespaces with a private read-only root, an "
        "unprivileged uid without capabilities, landlock, seccomp and rlimits; no network "
        "unless asked; shares the host kernel (macOS: a Seatbelt profile, untested there)"
    )

    def __init__(
        self,
        interpreter: str | None = None,
        *,
        work_root: Path | None = None,
        accept_degraded: bool = False,
        warm: bool = True,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        pool_size: int = 2,
        max_concurrent: int | None = None,
        max_queued: int = 64,
    ) -> None:
        super().__init__(
            interpreter, isolation=self.make_isolation(accept_degraded=accept_degraded),
            work_root=work_root, warm=warm, preload=preload, pool_size=pool_size,
            max_concurrent=max_concurrent, max_queued=max_queued,
        )  # fmt: skip
        self.accept_degraded = accept_degraded

    @classmethod
    def make_isolation(cls, *, accept_degraded: bool = False) -> Isolation:
        if sys.platform.startswith("linux"):
            return LinuxNamespaces(accept_degraded=accept_degraded)
        if sys.platform == "darwin":
            return Seatbelt()
        return Unavailable("needs Linux namespaces or macOS Seatbelt")
