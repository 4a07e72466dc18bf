"""A runner as the host holds it: its supervisor's pid, the host's ends of its pipes,
its workspace, and (when this process started it) its ``Popen``."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

from sandbox_tool.engines.runners.pipes import RunnerPipes
from sandbox_tool.engines.runners.proctree import HostTree, ProcessTree, running
from sandbox_tool.engines.runners.workspace import Workspace

__all__ = ["Runner", "running"]


@dataclass
class Runner:
    """A runner forked from the template: its supervisor's pid, the host's pipe ends and
    its workspace. ``key`` says which settings its sandbox was built for.

    Whoever drives the runner consumes (closes) the host's ends of its stdout, stderr
    and channel; the control pipe stays the runner's until it is discarded or released.
    """

    pid: int
    pipes: RunnerPipes
    ws: Workspace
    key: Any
    process: subprocess.Popen[bytes] | None = None
    """Set when this process started the runner itself (it must reap it)."""
    tree: ProcessTree = field(default=None)  # type: ignore[assignment]
    """How the host kills and watches it (default: :class:`HostTree` of ``pid``)."""

    def __post_init__(self) -> None:
        if self.tree is None:
            self.tree = HostTree(self.pid)

    def discard(self) -> None:
        """Kill it now and remove everything (a runner that was never driven)."""
        self.tree.kill()
        self.pipes.close_host_ends()
        self._reap()
        self.ws.cleanup()

    def finish(self, killed: bool) -> None:
        """Once it has ended (or been ``killed``): close its control pipe, remove its
        workspace; whatever is left in its supervisor's session is killed."""
        if not killed:
            self.tree.end()
        with contextlib.suppress(OSError):
            os.close(self.pipes.control_r)
        self._reap()
        self.ws.cleanup()

    def _reap(self) -> None:
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
