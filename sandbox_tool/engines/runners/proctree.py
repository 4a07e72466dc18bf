"""A runner's process tree as the host acts on it: killing it whole (setsid'd descendants
included), signalling its supervisor, watching its usage.

:class:`ProcessTree` is what the driver, the pool and the engine use; :class:`HostTree`
is the one for a runner whose processes are this host's. A runner inside a sandbox the
host cannot see into (gVisor) brings its own (:mod:`sandbox_tool.engines.runsc.links`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from typing import Protocol

import psutil

from sandbox_tool.engines.runners.treewatch import TreeUsage, tree_usage

__all__ = ["HostTree", "ProcessTree", "kill_tree", "running"]


class ProcessTree(Protocol):
    """The host's handle on one runner's processes."""

    def kill(self, wait: float = 0.0) -> None:
        """SIGKILL the supervisor and everything below it; with ``wait``, wait up to that
        long for them to be gone."""

    def terminate(self) -> None:
        """Ask the supervisor to stop the code (SIGTERM): it may save its files first."""

    def end(self) -> None:
        """The runner has ended by itself: kill whatever it left."""

    def alive(self) -> bool:
        """Whether the supervisor is still there."""

    def usage(self) -> TreeUsage:
        """CPU seconds the tree used and the memory it holds now (blocking)."""


@dataclass(frozen=True)
class HostTree:
    """A runner whose processes are this host's: ``pid`` is its supervisor, which leads its
    own session (and, on Linux, is the child subreaper of its descendants)."""

    pid: int

    def kill(self, wait: float = 0.0) -> None:
        kill_tree(self.pid, wait=wait)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    def end(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)

    def alive(self) -> bool:
        return running(self.pid)

    def usage(self) -> TreeUsage:
        return tree_usage(self.pid)


def running(pid: int) -> bool:
    """Whether ``pid`` is still there (a zombie counts)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def kill_tree(pid: int, *, deadline: float = 2.0, wait: float = 0.0) -> None:
    """SIGKILL ``pid`` and every descendant, then its process group.

    The runner's supervisor is the child subreaper on Linux, so descendants
    whose parent died, daemons that called ``setsid`` included, are re-parented
    to it and stay in its tree. Descendants are killed before the supervisor
    (killing it first would hand them to init); the walk repeats until no
    living descendant is left, which catches processes forked during the walk.
    With ``wait``, wait up to that long for every killed process to be gone.
    """
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        root = None
    end = time.monotonic() + deadline
    killed: list[psutil.Process] = [root] if root is not None else []
    while root is not None and time.monotonic() < end:
        try:
            living = [p for p in root.children(recursive=True) if _alive(p)]
        except psutil.Error:
            break
        if not living:
            break
        for proc in living:
            try:
                proc.send_signal(signal.SIGKILL)
                killed.append(proc)
            except psutil.Error:
                pass
        time.sleep(0.002)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    if wait > 0:
        end = time.monotonic() + wait
        while time.monotonic() < end and any(_alive(p) for p in killed):
            time.sleep(0.005)
