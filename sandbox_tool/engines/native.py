"""The native engine: the runner in a plain subprocess with OS resource limits.

Security level 5. **Not a security boundary.** The code runs as the caller's
user, sees the caller's whole filesystem with the caller's permissions, and
can signal the caller's processes; the import and builtins policies only steer
well-meaning code and give good error messages.

What it does stop or contain:

- runaway resources: ``RLIMIT_AS`` (memory), ``RLIMIT_CPU``, ``RLIMIT_FSIZE``,
  ``RLIMIT_NOFILE``, no core dumps, and ``RLIMIT_NPROC`` where the OS honours
  it (not for root; for other users it counts every process of the user);
- on Linux, a seccomp filter the worker installs on itself before any code runs
  (``no_new_privs`` makes it available to any user): no other program can start
  (``os.system``, ``os.execv``, ``subprocess`` fail with ``EPERM``), no new process
  (``fork``; threads still work), no socket but ``socketpair`` (TCP and UDP with
  ``network=True``), and the process engine's list of refused calls (ptrace,
  mounts, namespaces, bpf, keyrings...). ``NativeEngine(seccomp=False)`` turns it
  off, for code that must run programs; each result then says so in ``degraded``;
- time: a wall-clock timeout kills the whole process tree, setsid'd
  descendants included (the runner's supervisor is the child subreaper);
- leftovers: every process the code started is killed when it ends, and its
  working directory is removed;
- the host's environment: the code gets only ``env_vars`` and what Python
  needs, never the caller's variables (API keys stay out).

By default the runners are forked from a warm template that has the data
science stack imported (:mod:`sandbox_tool.engines.runners.pool`); ``warm=False``
starts a fresh interpreter per execution.

What it does not stop: reading or writing any file the caller can, signalling the
caller's other processes or reading their ``/proc`` files, anything a Python guard
cannot see (``ctypes``) that the filter allows; without the filter (macOS, or
``seccomp=False``) also the network, programs and processes. Use the ``process``
engine (namespaces, landlock, seccomp) or the ``gvisor`` engine for untrusted code.
"""

from __future__ import annotations

from typing import Any

from sandbox_tool.engines.isolation.rlimits import RlimitsOnly
from sandbox_tool.engines.runner_engine import DEFAULT_PRELOAD, RunnerEngine
from sandbox_tool.engines.runners.requests import RUNNER_PARENT, base_env, sandbox_env

__all__ = ["DEFAULT_PRELOAD", "RUNNER_PARENT", "NativeEngine", "base_env", "sandbox_env"]


class NativeEngine(RunnerEngine):
    """The runner in a subprocess with rlimits and, on Linux, a seccomp filter: fast,
    portable, **not a security boundary**.

    >>> engine = NativeEngine()                      # the current interpreter
    >>> engine = NativeEngine(interpreter="/usr/bin/python3", work_root=Path("/tmp"))
    >>> engine = NativeEngine(seccomp=False)         # the code may run programs again
    """

    name = "native"
    security_level = 5
    summary = (
        "subprocess with rlimits (memory, CPU, file size, open files), a clean environment, "
        "a wall-clock kill of the whole process tree and a fresh work dir; on Linux a "
        "seccomp filter refuses programs, new processes and sockets (network=True allows "
        "TCP/UDP; seccomp=False turns it off); NOT a security boundary: the code can read "
        "and write the caller's files and signal the caller's processes"
    )

    def __init__(self, interpreter: str | None = None, *, seccomp: bool = True,
                 **options: Any) -> None:  # fmt: skip
        """``seccomp=False`` leaves the filter out; ``options`` are
        :class:`~sandbox_tool.engines.runner_engine.RunnerEngine`'s (``work_root``,
        ``warm``, ``preload``, ``pool_size``, ``max_concurrent``, ``max_queued``)."""
        super().__init__(interpreter, isolation=RlimitsOnly(seccomp=seccomp), **options)

    @classmethod
    def make_isolation(cls, *, accept_degraded: bool = False) -> RlimitsOnly:
        return RlimitsOnly()
