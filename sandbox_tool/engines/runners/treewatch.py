"""The sandbox-wide CPU and memory budgets: the host watches a runner's whole tree.

``RLIMIT_CPU`` and ``RLIMIT_AS`` bound each process, not the sandbox: three
re-forking spinners used 16 CPU-s under ``cpu_seconds=1``, and six forked
children of 200 MB each put 1.2 GB on the host under ``memory_mb=600``. While a
cell runs longer than one poll interval, the host walks the runner's tree every
:data:`POLL_SECONDS` (its supervisor, the sandbox's pid 1, the worker and whatever
the code started) and stops the runner once

- the CPU the tree used during the cell passes its budget: the user and system
  time of every live process plus what their reaped children used (their
  ``children_user``/``children_system`` times, where a dead process's CPU goes once
  it is reaped), or
- the memory its processes hold passes ``memory_mb``: each one's proportional
  share of resident memory (``Pss`` in ``/proc/<pid>/smaps_rollup``, so pages shared
  with the warm template or between forked children count once in total), or its
  resident size where smaps_rollup cannot be read (the sandbox's pid 1 for a
  non-root caller).

A cell that ends before the first interval costs nothing. What it can miss: CPU
used and memory held only between two polls (a spike shorter than
``POLL_SECONDS``; ``RLIMIT_AS`` still bounds each process), and memory that belongs
to no process (a tmpfs's files, bounded by ``max_disk_mb``). It runs outside the
sandbox, so the code can neither forge nor stop it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import psutil

__all__ = ["MEMORY_BOUND", "POLL_SECONDS", "Overrun", "TreeUsage", "tree_usage", "watch_tree"]

POLL_SECONDS = 0.1

#: What bounds ``memory_mb`` where no delegated cgroup memory controller exists (none
#: is used yet): the engines' ``degraded`` notes say it.
MEMORY_BOUND = (
    "memory_mb: no cgroup bounds the sandbox's memory; it bounds each process's "
    "virtual size (RLIMIT_AS) and, from the host, the processes' resident memory "
    f"together, polled every {POLL_SECONDS:g} s while a cell runs (a spike between "
    "two polls can pass)"
)


@dataclass(frozen=True)
class TreeUsage:
    cpu_seconds: float
    memory_bytes: int


@dataclass(frozen=True)
class Overrun:
    """Which budget the tree passed, and its total then (CPU seconds or bytes)."""

    kind: Literal["cpu", "memory"]
    total: float


def _pss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _usage(proc: psutil.Process) -> tuple[float, int]:
    try:
        t = proc.cpu_times()
        cpu = float(t.user + t.system + t.children_user + t.children_system)
        memory = _pss_bytes(proc.pid)
        return cpu, memory if memory is not None else int(proc.memory_info().rss)
    except psutil.Error:
        return 0.0, 0  # gone since the walk: its CPU is in its reaper's children times


def tree_usage(pid: int) -> TreeUsage:
    """CPU seconds used by ``pid``, its live descendants and every child they reaped,
    and the memory they hold now."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return TreeUsage(0.0, 0)
    cpu, memory = 0.0, 0
    for proc in tree:
        c, m = _usage(proc)
        cpu, memory = cpu + c, memory + m
    return TreeUsage(cpu, memory)


async def watch_tree(
    usage: Callable[[], TreeUsage],
    cpu_seconds: float,
    cpu_base: float,
    memory_bytes: int,
) -> Overrun:
    """Return once the tree (``usage()`` measures it, blocking) has used more than
    ``cpu_seconds`` beyond ``cpu_base`` (what it had used before the cell), or holds more
    than ``memory_bytes`` (0: no memory budget); runs until cancelled otherwise. It
    polls at once, then every :data:`POLL_SECONDS` (the driver starts it one interval
    into a cell)."""
    while True:
        now = await asyncio.to_thread(usage)
        if now.cpu_seconds - cpu_base > cpu_seconds:
            return Overrun("cpu", now.cpu_seconds - cpu_base)
        if memory_bytes and now.memory_bytes > memory_bytes:
            return Overrun("memory", float(now.memory_bytes))
        await asyncio.sleep(POLL_SECONDS)
