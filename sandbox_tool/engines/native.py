"""The native engine: the runner in a plain subprocess with OS resource limits.

Security level 5. **Not a security boundary.** The code runs as the caller's
user, sees the caller's whole filesystem with the caller's permissions, and
can use the network; the import and builtins policies only steer well-meaning
code and give good error messages.

What it does stop or contain:

- runaway resources: ``RLIMIT_AS`` (memory), ``RLIMIT_CPU``, ``RLIMIT_FSIZE``,
  ``RLIMIT_NOFILE``, no core dumps, and ``RLIMIT_NPROC`` where the OS honours
  it (not for root; for other users it counts every process of the user);
- time: a wall-clock timeout kills the whole process tree, setsid'd
  descendants included (the runner's supervisor is the child subreaper);
- leftovers: every process the code started is killed when it ends, and its
  working directory is removed;
- the host's environment: the code gets only ``env_vars`` and what Python
  needs, never the caller's variables (API keys stay out).

By default the runners are forked from a warm template that has the data
science stack imported (:mod:`sandbox_tool.engines.runners.pool`); ``warm=False``
starts a fresh interpreter per execution.

What it does not stop: reading or writing any file the caller can, network
access, signalling the caller's other processes, ptrace, anything a Python
guard cannot see (``ctypes``, subclass walks). Use the ``process`` engine
(namespaces, landlock, seccomp) or a VM engine for untrusted code.
"""

from __future__ import annotations

from sandbox_tool.engines.isolation.rlimits import RlimitsOnly
from sandbox_tool.engines.runner_engine import DEFAULT_PRELOAD, RunnerEngine
from sandbox_tool.engines.runners.requests import RUNNER_PARENT, base_env, sandbox_env

__all__ = ["DEFAULT_PRELOAD", "RUNNER_PARENT", "NativeEngine", "base_env", "sandbox_env"]


class NativeEngine(RunnerEngine):
    """The runner in a subprocess with rlimits: fast, portable, **not a security boundary**.

    >>> engine = NativeEngine()                      # the current interpreter
    >>> engine = NativeEngine(interpreter="/usr/bin/python3", work_root=Path("/tmp"))
    """

    name = "native"
    security_level = 5
    summary = (
        "subprocess with rlimits (memory, CPU, file size, open files, processes where the OS "
        "honours them), a clean environment, a wall-clock kill of the whole process tree and "
        "a fresh work dir; NOT a security boundary: the code can read and write the caller's "
        "files, use the network and signal the caller's processes"
    )

    @classmethod
    def make_isolation(cls, *, accept_degraded: bool = False) -> RlimitsOnly:
        return RlimitsOnly()
