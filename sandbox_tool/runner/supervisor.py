"""The runner's supervisor: forks the worker, outlives it, reports how it ended."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36


def prctl(option: int, value: int) -> bool:
    """Call prctl(2) on Linux; False elsewhere or on failure."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(option, value, 0, 0, 0) == 0)


def _read_request() -> dict[str, Any]:
    chunks = []
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    request: dict[str, Any] = json.loads(b"".join(chunks))
    return request


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc scan)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the fields after the command name, which may itself hold spaces and parens
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def reap_everything(worker_pgid: int | None) -> None:
    """Kill and reap every process the worker left behind.

    On Linux this process is the child subreaper, so orphaned descendants,
    setsid'd daemons included, are re-parented to it: kill its children until
    none is left. Elsewhere, kill the worker's process group.
    """
    if worker_pgid is not None:
        try:
            os.killpg(worker_pgid, signal.SIGKILL)
        except OSError:
            pass
    me = os.getpid()
    linux = sys.platform.startswith("linux")
    while True:
        if linux:
            for kid in _children(me):
                try:
                    os.kill(kid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def main(control_fd: int) -> None:
    """Entry point: run one execution and report on ``control_fd``."""
    request = _read_request()
    sys.path.pop(0)  # the runner's directory: not for the user's code to import
    subreaper = prctl(_PR_SET_CHILD_SUBREAPER, 1)
    # Not dumpable: same-uid code cannot open /proc/<this pid>/fd/N to forge the report.
    prctl(_PR_SET_DUMPABLE, 0)

    pid = os.fork()
    if pid == 0:
        from .worker import run

        run(request, control_fd)  # never returns
        os._exit(70)

    _, status, usage = os.wait4(pid, 0)
    reap_everything(pid)

    report = {
        "exit_code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        # ru_maxrss is KiB on Linux and bytes on macOS
        "maxrss_kb": usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "subreaper": subreaper,
    }
    data = json.dumps(report).encode()
    while data:
        data = data[os.write(control_fd, data) :]
    os._exit(0)
