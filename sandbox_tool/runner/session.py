"""A session: one sandboxed interpreter that runs many cells and keeps its state.

The worker, already inside its sandbox, reads length-prefixed JSON frames on its
channel (a unix socket to the host): first the session's request (environment,
limits, policies), then one frame per cell. For each cell it runs the code in
the same ``__main__``, answers with one frame (the cell's report, its figures
and the files it wrote, as base64), and ends the cell's stdout and stderr with
the cell's marker so the host can cut the streams per cell. The host ends the
session by closing the channel.

Per-cell limits: CPU (the soft ``RLIMIT_CPU`` moves forward before each cell),
and, from the host, wall clock and output. Memory is limited per session. A
cell that hits a limit ends the session.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import struct
from typing import Any, NoReturn

from . import worker
from .protocol import FIGURES_DIR, read_regular

_HEADER = struct.Struct("!I")
MAX_FRAME = 256 << 20


def read_frame(fd: int) -> dict[str, Any] | None:
    """The next frame, or None at the end of the channel."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    body = _read_exactly(fd, size)
    if body is None:
        return None
    frame: dict[str, Any] = json.loads(body)
    return frame


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def encode_frame(frame: dict[str, Any]) -> bytes:
    body = json.dumps(frame).encode()
    return _HEADER.pack(len(body)) + body


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _files(top: str) -> dict[str, tuple[int, int]]:
    found = {}
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            found[os.path.relpath(path, top)] = (st.st_size, st.st_mtime_ns)
    return found


def _artifacts(
    figures: str, work: str, before: dict[str, tuple[int, int]], budget: int
) -> tuple[list[dict[str, str]], bool, dict[str, tuple[int, int]]]:
    """The cell's figures and changed files (removing the figures), within ``budget``."""
    out: list[dict[str, str]] = []
    truncated = False
    candidates = [
        (name, os.path.join(figures, name), "figure")
        for name in sorted(os.listdir(figures), key=lambda n: (len(n), n))
    ]
    after = _files(work)
    candidates += [
        (name, os.path.join(work, name), "file")
        for name, stamp in sorted(after.items())
        if before.get(name) != stamp
    ]
    for name, path, kind in candidates:
        data = read_regular(path, budget)
        if kind == "figure":
            os.unlink(path)
        if data is None:
            truncated = True
            continue
        budget -= len(data)
        out.append({"name": name, "kind": kind, "data": base64.b64encode(data).decode()})
    return out, truncated, after


def serve(setup: dict[str, Any], channel: int) -> NoReturn:
    """Run cells from ``channel`` until the host closes it."""
    first = read_frame(channel)
    if first is None:
        os._exit(0)
    request = {**setup, **first}
    try:
        main = worker.start_namespace(request)
    except BaseException as exc:  # noqa: BLE001 - reported to the host, then the end
        _write_all(channel, encode_frame({"status": "runner_error", "message": repr(exc)}))
        os._exit(71)
    _write_all(channel, encode_frame({"status": "ready"}))
    max_bytes = int(request["max_result_bytes"])
    paths = request["paths"]
    figures = os.path.join(paths["meta"], FIGURES_DIR)
    files = _files(paths["work"])
    while True:
        cell = read_frame(channel)
        if cell is None:
            os._exit(0)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = int(usage.ru_utime + usage.ru_stime) + 1
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = used + int(cell["cpu_seconds"])
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        if "inputs" in cell:
            main.__dict__["inputs"] = cell["inputs"]
        report = worker.run_code(main, cell["code"], max_bytes, cell=True)
        try:
            report["artifacts"], report["artifacts_truncated"], files = _artifacts(
                figures, paths["work"], files, int(cell["max_artifact_bytes"])
            )
        except OSError as exc:
            report["artifacts"], report["figure_error"] = [], f"artifacts lost: {exc}"
        marker = cell["marker"].encode()
        for fd in (1, 2):
            try:
                os.write(fd, marker)
            except OSError:
                pass  # the code closed it: the host waits for the cell's end until its timeout
        _write_all(channel, encode_frame(report))
