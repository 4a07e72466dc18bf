"""The framed channel of a warm runner: one execution, or a session of many cells.

The worker, already inside its sandbox, reads length-prefixed JSON frames on its
channel (a unix socket to the host): first the execution's request
(environment, limits, policies, inputs), then one frame per cell. It answers
the request with ``{"status": "ready", "isolation": {...}}`` (the layers it is
running under, reported before any user code ran), and each cell with one frame:
the cell's report, its figures and the files it wrote (base64), and how much CPU
and memory the process has used. It ends the cell's stdout and stderr with the
cell's marker so that the host can cut the streams per cell without waiting for
them to close.

A request with ``"one_shot": true`` is a single execution: the worker runs one
cell (whose value is ``result`` or the last expression),
answers, and exits at once. The host answers its caller as soon as the frame
and the markers are in, and the sandbox is torn down afterwards, off the
critical path. Otherwise the channel is a session: cells run in the same
``__main__`` until the host closes the channel.

A worker whose request is not on its channel yet (usually one forked ahead, waiting in
a pool) first rehearses a cell (:func:`.worker.rehearse`), so that the pages of the
template's heap its path writes are copied before the request comes, not while the
caller waits.

Before a cell's answer is sent, every process the cell started is killed and reaped
(:mod:`..strays`): a session keeps its state in ``__main__``, not in processes.

Per-cell limits: CPU (the soft ``RLIMIT_CPU`` moves forward before each cell
that names ``cpu_seconds``), and, from the host, wall clock and output. Memory
is limited per channel. A cell that hits a limit ends the channel.
"""

from __future__ import annotations

import os
import select
from typing import NoReturn

from ..framing import HEADER, encode_frame, read_frame, write_all
from ..layers.limits import move_cpu_limit
from ..protocol import (
    FIGURES_DIR,
    Cell,
    ExecutionRequest,
    IsolationSummary,
    RunnerRequest,
    RunnerSetup,
)
from ..strays import adopt_orphans, end_strays
from . import worker
from .answering import answer_ready, build_answer, files_of

# Bound now: the code may replace module attributes (json.dumps = None) before its
# answer is sent.
_write, _exit = os.write, os._exit


def _readable(fd: int) -> bool:
    """Whether ``fd`` has something to read now (poll: no FD_SETSIZE bound, as select has)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def serve(setup: RunnerSetup, channel: int, isolation: IsolationSummary | None) -> NoReturn:
    """Run cells from ``channel`` until the host closes it (or after one, for a one-shot).

    The cells' markers go to copies of stdout and stderr made before any code ran, so
    that code redirecting its own streams does not hide the end of a cell. If the code
    broke the channel itself (closed its fd), a one-shot's report goes to the report
    file instead, which the host reads once the runner has ended.
    """
    streams = [os.dup(1), os.dup(2)]
    if not _readable(channel):  # usually a runner waiting in a pool: time to spare
        try:
            worker.rehearse()
        except Exception:  # noqa: BLE001 - an optimisation: the request still runs
            pass
    first: ExecutionRequest | None = read_frame(channel)
    if first is None:
        _exit(0)
    request: RunnerRequest = {**setup, **first, "framed": True}
    if request.get("scope") == "batch":
        from . import scoped

        scoped.serve(request, channel, streams, isolation)  # never returns
    one_shot = bool(request.get("one_shot"))
    main = answer_ready(channel, isolation, lambda: worker.start_namespace(request))
    max_bytes = int(request["max_result_bytes"])
    paths = request["paths"]
    figures = os.path.join(paths["meta"], FIGURES_DIR)
    files = files_of(paths["work"])
    # the worker reaps the cell's orphans itself; kill(-1) is safe only in a pid
    # namespace of the sandbox's own
    namespaces = isolation.get("namespaces") if isolation is not None else None
    own_pid_namespace = bool(namespaces and namespaces.get("pid"))
    adopt_orphans()
    while True:
        cell: Cell | None = read_frame(channel)
        if cell is None:
            _exit(0)
        if cell.get("cpu_seconds") is not None:
            move_cpu_limit(int(cell["cpu_seconds"] or 0))
        if "inputs" in cell:
            main.__dict__["inputs"] = cell["inputs"]
        report = worker.run_code(main, cell["code"], max_bytes, cell=not one_shot)
        end_strays(own_pid_namespace)  # state lives in __main__, never in stray processes
        answer, contents, files = build_answer(report, cell, figures, paths["work"], files,
                                               keep=one_shot)  # fmt: skip
        marker = cell["marker"].encode()
        for fd in streams:
            try:
                _write(fd, marker)
            except OSError:
                pass  # the code closed it: the host reads that stream to its end instead
        try:
            write_all(channel, encode_frame(answer))
            for data in contents:  # raw frames: no base64, no JSON on either side
                write_all(channel, HEADER.pack(len(data)))
                write_all(channel, data)
        except BaseException:  # noqa: BLE001 - the code broke its channel
            if not one_shot:
                _exit(72)
            worker.write_report(paths["meta"], report)  # the host falls back to the file
        if one_shot:
            _exit(0)
