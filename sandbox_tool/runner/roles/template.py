"""The warm template: imports the data-science stack once, then forks runners.

Started by the host's warm pool as::

    python -I -B -c TEMPLATE_BOOTSTRAP <dir holding this package> <socket fd>

over a ``SOCK_SEQPACKET`` socket (one message per datagram, file descriptors
attached). The template imports the preload list (numpy, pandas, matplotlib
with the capturing backend and its font cache), freezes the heap, reports
``{"ready": true, ...}``, then for every ``fork`` message

    {"setup": {...the runner's setup: paths, isolation...}}  + 4 fds
    (the runner's stdin for the request, stdout, stderr, control)

forks a runner supervisor (:func:`runner.roles.supervisor.supervise`) wired to those
fds, and answers ``{"pid": N}``. The supervisor forks the worker, which enters
its sandbox at once and then waits for the execution's request on its stdin:
a request at low load pays only for running its code.

The template starts no threads (unshare needs a single-threaded process,
FIELD_NOTES 1) and dies with its host (``PR_SET_PDEATHSIG``); its runners die
with it.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import socket
import sys
import time
from typing import NoReturn

from ..protocol import ForkAnswer, ForkMessage, RunnerSetup, TemplateConfig, TemplateReady
from ..syscalls import PR_SET_PDEATHSIG, libc, thread_count, try_prctl
from .supervisor import supervise

_MAX_MESSAGE = 1 << 20


def _threads() -> int:
    try:
        return thread_count()
    except OSError:
        return 1


def _preload(modules: list[str]) -> dict[str, str]:
    """Import ``modules``; return those that failed, with the reason."""
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - reported to the host, not fatal
            failed[name] = f"{type(exc).__name__}: {exc}"
    if "matplotlib.pyplot" in sys.modules:
        # load the font list now (from the seeded cache) rather than in every worker
        from matplotlib import font_manager

        font_manager.findfont("DejaVu Sans")
    return failed


def _warm_up() -> None:
    """Run what most executions run first (a numpy reduction, a pandas groupby, a line
    plot saved as PNG) once, so that the lazy imports and caches behind them are made
    here, once, and shared with every runner instead of being rebuilt by each."""
    modules = sys.modules
    try:
        if "numpy" in modules:
            modules["numpy"].mean([1.0, 2.0, 3.0])
        if "pandas" in modules:
            frame = modules["pandas"].DataFrame({"k": [1, 2, 1], "v": [1.0, 2.0, 3.0]})
            frame.groupby("k")["v"].mean()
        if "matplotlib.pyplot" in modules:
            import io

            from matplotlib import font_manager

            plt = modules["matplotlib.pyplot"]
            figure = plt.figure()
            plt.plot([1, 3, 2, 4])
            figure.savefig(io.BytesIO(), format="png", dpi=100, pil_kwargs={"compress_level": 1})
            plt.close("all")
            # the fonts it opened: runners must not inherit their file descriptors
            clear = getattr(getattr(font_manager, "_get_font", None), "cache_clear", None)
            if clear is not None:
                clear()
    except Exception:  # noqa: BLE001 - an optimisation only; the runners work without it
        pass


_MADV_HUGEPAGE, _MADV_NOHUGEPAGE, _MADV_COLLAPSE = 14, 15, 25


class HugeHeap:
    """The template's heap backed by huge pages, and the regions that were marked (which
    every runner forked from the template unmarks)."""

    def __init__(self) -> None:
        self.regions: list[tuple[int, int]] = []

    def collapse(self) -> int:
        """Back the heap with huge pages where the kernel allows it (Linux 6.1+
        ``MADV_COLLAPSE``): every fork then copies fewer page-table entries and every exit
        frees fewer. Returns how many regions were collapsed (0 where unsupported)."""
        import ctypes

        huge = 1 << 21
        try:
            madvise = libc().madvise
            madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            with open("/proc/self/maps") as maps:
                lines = maps.readlines()
        except OSError:
            return 0
        collapsed = 0
        for line in lines:
            fields = line.split()
            # private writable memory with no file behind it: the heap and anonymous maps
            if not fields[1].startswith("rw") or (len(fields) > 5 and fields[5] != "[heap]"):
                continue
            low, high = (int(x, 16) for x in fields[0].split("-"))
            start, end = (low + huge - 1) & ~(huge - 1), high & ~(huge - 1)
            if end > start and madvise(start, end - start, _MADV_HUGEPAGE) == 0:
                self.regions.append((start, end - start))
                collapsed += madvise(start, end - start, _MADV_COLLAPSE) == 0
        return collapsed

    def no_new_huge_pages(self) -> None:
        """In a runner: keep the template's huge pages shared, but let no new ones be made
        (khugepaged would otherwise collapse the pages a long session copies into private
        2 MiB ones)."""
        for start, length in self.regions:
            libc().madvise(start, length, _MADV_NOHUGEPAGE)


def _reap(_signum: int, _frame: object) -> None:
    """Reap every runner that has ended (a SIGCHLD handler)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _start_runner(setup: RunnerSetup, fds: list[int], heap: HugeHeap) -> NoReturn:
    """In the forked child: become a runner supervisor on the given fds."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the template reaps; we wait
        try_prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        heap.no_new_huge_pages()
        os.setsid()
        request_r, stdout_w, stderr_w, control_w = fds
        os.dup2(stdout_w, 1)
        os.dup2(stderr_w, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        for fd in (devnull, stdout_w, stderr_w):
            os.close(fd)
        supervise(setup, control_w, request_r)
    except BaseException:  # noqa: BLE001 - never return into the template's loop
        os._exit(70)


def serve(sock: socket.socket, heap: HugeHeap) -> NoReturn:
    """Fork a runner for every message until the host closes the socket."""
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 4)
        except OSError:
            os._exit(0)
        if not message:
            os._exit(0)  # the host closed its end: the pool is shutting down
        try:
            fork: ForkMessage = json.loads(message)
            setup = fork["setup"]
            if len(fds) != 4:
                raise ValueError(f"expected 4 file descriptors, got {len(fds)}")
            pid = os.fork()
            if pid == 0:
                sock.close()
                _start_runner(setup, fds, heap)
            answer: ForkAnswer = {"pid": pid}
        except Exception as exc:  # noqa: BLE001 - answered, the template lives on
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(json.dumps(answer).encode())


def main(sock_fd: int) -> NoReturn:
    started = time.perf_counter()
    sys.path.pop(0)  # the runner's directory: not for the user's code to import
    try_prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    sock = socket.socket(fileno=sock_fd)
    config: TemplateConfig = json.loads(sock.recv(_MAX_MESSAGE))
    # runners are reaped as they end (so that their CPU time is added to this process's
    # children's, which the host reads to report what runners cost); a supervisor waits
    # for its own worker
    signal.signal(signal.SIGCHLD, _reap)
    from ..layers import namespaces  # noqa: F401 - imported once, for every runner
    from . import cells, worker  # noqa: F401

    failed = _preload(list(config.get("preload", [])))
    _warm_up()
    gc.collect()
    gc.freeze()  # keep the preloaded heap shared with the forks (no refcount writes on GC)
    heap = HugeHeap()
    collapsed = heap.collapse() if sys.platform.startswith("linux") else 0
    ready: TemplateReady = {
        "ready": True,
        "failed": failed,
        "threads": _threads(),
        "huge_page_regions": collapsed,
        "python": sys.version.split()[0],
        "ready_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    sock.send(json.dumps(ready).encode())
    serve(sock, heap)
