"""No sandbox: the runner's own rlimits, a clean environment and a fresh work dir.

The native engine's strategy. It is not a security boundary: the code runs as the
caller's user with the caller's filesystem and network.
"""

from __future__ import annotations

import os
import sys

from sandbox_tool.engines.isolation.base import Isolation, Probe
from sandbox_tool.options import ExecutionOptions

__all__ = ["RlimitsOnly"]


class RlimitsOnly(Isolation):
    """rlimits (memory, CPU, file size, open files, processes where honoured), nothing else."""

    name = "rlimits"

    def probe(self, interpreter: str) -> Probe:
        limits = "rlimits" if sys.platform.startswith(("linux", "darwin")) else "no rlimits"
        return True, f"subprocess of {interpreter} with {limits}; not a security boundary"

    def degraded(self, options: ExecutionOptions) -> list[str]:
        notes = []
        if not options.network:
            notes.append("network: the native engine cannot turn the network off")
        notes.append("max_disk_mb: the native engine writes to the host disk without a cap")
        if sys.platform.startswith("linux") and os.geteuid() == 0:
            notes.append("max_processes: RLIMIT_NPROC does not apply to root")
        elif not sys.platform.startswith("linux"):
            notes.append("max_processes: RLIMIT_NPROC is not set outside Linux")
        if sys.platform == "darwin":
            notes.append("memory_mb: macOS does not enforce RLIMIT_AS")
        elif not sys.platform.startswith("linux"):
            notes.append(f"limits: rlimits are untested on {sys.platform}")
        return notes
