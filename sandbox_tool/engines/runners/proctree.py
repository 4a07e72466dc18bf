"""Killing a whole process tree, setsid'd descendants included."""

from __future__ import annotations

import os
import signal
import time

import psutil

__all__ = ["kill_tree"]


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
