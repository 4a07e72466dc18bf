"""The sandbox-wide CPU budget: the host sums the CPU time of a runner's whole tree.

``RLIMIT_CPU`` bounds each process, not the sandbox: three re-forking spinners used
16 CPU-s under ``cpu_seconds=1``. While a cell runs longer than one poll interval,
the host sums, every :data:`POLL_SECONDS`, the user and system time of every live
process of the runner's tree (its supervisor, the sandbox's pid 1, the worker and
whatever the code started) plus what their reaped children used (their
``children_user``/``children_system`` times, which is where a dead process's CPU goes
once it is reaped), and stops the runner once the cell's share passes its budget.
A cell that ends before the first interval costs nothing.

What it can miss: CPU used between two polls (at most ``POLL_SECONDS`` times the
cores), and a process whose time was never reaped into a live one (a zombie's
is counted while it is one). It runs outside the sandbox, so the code cannot
forge or stop it.
"""

from __future__ import annotations

import asyncio

import psutil

__all__ = ["POLL_SECONDS", "tree_cpu_seconds", "watch_cpu"]

POLL_SECONDS = 0.1


def _cpu(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return 0.0  # gone since the walk: its time is in its reaper's children times
    return float(t.user + t.system + t.children_user + t.children_system)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used by ``pid``, its live descendants and every child they reaped."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    return sum(_cpu(p) for p in tree)


async def watch_cpu(pid: int, limit: float, base: float) -> float:
    """Return the tree's CPU seconds beyond ``base`` once they pass ``limit``; runs until
    cancelled otherwise. ``base``: what the tree had used before the cell began."""
    while True:
        await asyncio.sleep(POLL_SECONDS)
        used = await asyncio.to_thread(tree_cpu_seconds, pid) - base
        if used > limit:
            return used
