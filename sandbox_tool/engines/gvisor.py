"""The gvisor engine: the runner under gVisor's user-space kernel (``runsc``).

Security level 9. The code's system calls are served by gVisor's kernel (the sentry, a
host process in its own namespaces and seccomp filter), never by the host's: a bug in
the host kernel's system calls is out of the code's reach. What each execution gets:

- **gVisor**: one sandbox per engine, started once (about 2 s), kept running; it sees
  none of the host's files but read-only binds of ``/usr``, the interpreter, the runner
  and a few ``/etc`` files, and the directory of the execution workspaces; no network
  (``runsc --network=none``), or, for ``network=True``, a second sandbox that shares
  the host's network;
- **per runner, inside it**: a root of its own (a ``chroot``: runsc 2022 has no
  ``pivot_root``), with the execution's dirs in a tmpfs of ``max_disk_mb`` copied back
  to the host when it ends; pid, ipc, uts and net namespaces; a uid of its own without
  any capability, with ``RLIMIT_NPROC`` of ``max_processes`` (and a pids cgroup);
  ``no_new_privs``; the process engine's seccomp filter with ``execve`` refused; the
  rlimits; the host's wall-clock, output, CPU and memory budgets (the memory and CPU
  read from gVisor's own cgroups), and the kill of the runner's whole pid namespace.

What it does not stop: bugs in gVisor itself (its sentry and gofer run on the host with
reduced privileges); reading the world-readable system files it binds; what runners of
one sandbox share (gVisor's kernel and its caches, the CPU; ``docs/security.md`` has the
list); memory is bounded by rlimits and the host's poll, not by a hard limit.

Runs as root or, with ``runsc --rootless``, as any user with unprivileged user
namespaces. Install gVisor with ``apt-get install runsc`` (Debian, Ubuntu).
"""

from __future__ import annotations

from typing import Any

from sandbox_tool.engines.isolation.gvisor import Gvisor
from sandbox_tool.engines.runner_engine import RunnerEngine

__all__ = ["GvisorEngine"]


class GvisorEngine(RunnerEngine):
    """The runner in a long-lived gVisor sandbox, in a fresh root and namespaces per runner.

    >>> engine = GvisorEngine()                   # runsc on PATH, the ptrace platform
    >>> engine = GvisorEngine(platform="kvm")     # faster system calls where KVM works
    >>> engine = GvisorEngine(warm=False)         # no preload: each runner imports itself

    ``warm=False`` keeps the sandbox (starting it per execution would cost seconds) but
    forks each runner from a template that imported nothing, and none ahead of time.
    """

    name = "gvisor"
    security_level = 9
    #: Its one sandbox binds only the engine's interpreter: an environment's venv is not
    #: in it, so ``ExecutionOptions.packages`` is refused rather than run outside gVisor.
    supports_environments = False
    summary = (
        "the runner under gVisor's user-space kernel (runsc): the code's system calls never "
        "reach the host kernel; one sandbox kept running sees only read-only system files "
        "and the workspaces, no network unless asked; per runner a private root, pid/ipc/"
        "uts/net namespaces, a process cap, no capabilities, seccomp and rlimits"
    )

    def __init__(
        self,
        interpreter: str | None = None,
        *,
        runsc: str | None = None,
        platform: str = "ptrace",
        **options: Any,
    ) -> None:
        """``runsc``: its path (default: on PATH); ``platform``: ``ptrace`` or ``kvm``;
        ``options`` are :class:`~sandbox_tool.engines.runner_engine.RunnerEngine`'s."""
        super().__init__(interpreter, isolation=Gvisor(runsc=runsc, platform=platform), **options)

    @classmethod
    def make_isolation(cls, *, accept_degraded: bool = False) -> Gvisor:
        return Gvisor()
