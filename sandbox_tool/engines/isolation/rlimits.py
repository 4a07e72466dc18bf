"""No sandbox: the runner's own rlimits, a clean environment, a fresh work dir and, on
Linux, a seccomp filter the worker installs on itself.

The native engine's strategy. It is not a security boundary: the code runs as the
caller's user and sees the caller's files. Where the kernel allows it without privileges
(seccomp with ``no_new_privs`` works for any user), the worker refuses, before any code
runs, to start programs (``execve``), new processes (``fork``, ``vfork``, ``clone``
without ``CLONE_THREAD``) and sockets (all but ``socketpair``; TCP and UDP with
``network=True``), through the process engine's filter
(:mod:`sandbox_tool.runner.layers.seccomp`). ``RlimitsOnly(seccomp=False)`` (the native
engine's ``seccomp=False``) leaves it out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Hashable
from typing import Any

from sandbox_tool.engines.isolation.base import Isolation, Probe
from sandbox_tool.engines.runners.requests import RUNNER_PARENT
from sandbox_tool.engines.runners.treewatch import MEMORY_BOUND
from sandbox_tool.engines.runners.workspace import Workspace
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.runner.protocol import Confinement

__all__ = ["NATIVE_STILL_ALLOWS", "RlimitsOnly", "native_filter"]

#: What the native engine never stops, filter or not (each result's ``degraded`` says it).
NATIVE_STILL_ALLOWS = (
    "filesystem: not isolated: the code reads and writes every file the caller can",
    "processes: not isolated: the code can signal the caller's other processes and read "
    "their /proc files (environment included)",
)

_PROBE = (
    "import sys; sys.path.insert(0, sys.argv[1]); from runner.layers import seccomp; "
    "seccomp.apply({'programs': False, 'processes': False, 'unix_sockets': False}); print('ok')"
)


def native_filter(network: bool) -> dict[str, Any]:
    """The seccomp spec of a native worker."""
    return {"network": network, "unix_sockets": False, "programs": False, "processes": False}


class RlimitsOnly(Isolation):
    """rlimits (memory, CPU, file size, open files, processes where honoured) and, on Linux
    unless ``seccomp=False``, a filter against programs, processes and sockets."""

    name = "rlimits"

    def __init__(self, *, seccomp: bool = True) -> None:
        #: The filter was asked for (and this is Linux, where it exists).
        self.seccomp = seccomp and sys.platform.startswith("linux")
        #: Why the filter cannot be installed here, once :meth:`prepare` ran (None: it can).
        self.filter_missing: str | None = None
        #: What :meth:`prepare` runs in a child of the interpreter: prints ``ok`` once the
        #: filter is installed.
        self.probe_code = _PROBE

    def probe(self, interpreter: str) -> Probe:
        limits = "rlimits" if sys.platform.startswith(("linux", "darwin")) else "no rlimits"
        extra = ", seccomp (no programs, processes or sockets)" if self.seccomp else ""
        return True, f"subprocess of {interpreter} with {limits}{extra}; not a security boundary"

    def prepare(self, interpreter: str) -> None:
        """Install the filter once in a throw-away child: a kernel without seccomp makes
        the engine run without it and say so in ``degraded``, never fail later."""
        if not self.seccomp:
            return
        try:
            out = subprocess.run(
                [interpreter, "-I", "-B", "-c", self.probe_code, RUNNER_PARENT],
                capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
                stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.filter_missing = f"the probe failed: {exc}"
            return
        if out.stdout.strip() != "ok":
            lines = (out.stderr.strip() or f"exit status {out.returncode}").splitlines()
            self.filter_missing = lines[-1]

    @property
    def filtering(self) -> bool:
        """The worker installs the filter."""
        return self.seccomp and self.filter_missing is None

    def pool_key(self, options: ExecutionOptions) -> Hashable:
        return options.network if self.filtering else None

    def confine(self, ws: Workspace, key: Hashable) -> Confinement | None:
        if not self.filtering:
            return None
        return {"mode": "native", "seccomp": native_filter(bool(key))}

    def layers(self, reported: dict[str, Any] | None) -> dict[str, Any]:
        if reported is not None:
            return reported
        return {"mode": "native", "namespaces": None, "private_root": False,
                "no_new_privs": False, "landlock": {"applied": False},
                "seccomp": {"applied": False}}  # fmt: skip

    def degraded(self, options: ExecutionOptions) -> list[str]:
        notes = list(NATIVE_STILL_ALLOWS)
        linux = sys.platform.startswith("linux")
        if not self.filtering:
            why = (
                "turned off (NativeEngine(seccomp=False))"
                if linux and not self.seccomp
                else f"not available here ({self.filter_missing})"
                if linux
                else "Linux only"
            )
            notes.append(
                f"seccomp: {why}: the code can run programs, start processes and open sockets"
            )
            if not options.network:
                notes.append("network: the native engine cannot turn the network off")
            if linux and os.geteuid() == 0:
                notes.append("max_processes: RLIMIT_NPROC does not apply to root")
            elif not linux:
                notes.append("max_processes: RLIMIT_NPROC is not set outside Linux")
        notes.append("max_disk_mb: the native engine writes to the host disk without a cap")
        if sys.platform == "darwin":
            notes.append("memory_mb: macOS does not enforce RLIMIT_AS")
        elif not linux:
            notes.append(f"limits: rlimits are untested on {sys.platform}")
        else:
            # no pid namespace: the host's poll sees only what stays in the worker's tree
            notes.append(MEMORY_BOUND + "; without a pid namespace, only the processes "
                         "that stay in the worker's tree")  # fmt: skip
        return notes
