"""A batch scope's runner: one sandbox for the items of a batch, a fresh process per item.

Opt-in (``PythonSandbox.map(..., scope="batch")``, docs/batch.md). The worker of an
ordinary warm runner, already inside its sandbox (namespaces, private root, landlock,
seccomp, process cap), gets a request with ``"scope": "batch"`` and becomes the scope's
*parent*: it never runs code itself and is not dumpable (the items, which run as the same
uid, can neither trace it nor read its memory). It applies the request's environment,
limits and import policy to itself once (every item inherits them), then for every cell
on its channel it

1. reseeds the random generators and forks a fresh process, the *item*, which gives the
   cell a new ``__main__`` (with the builtins policy), runs it as a single execution,
   kills the processes it started, and writes its answer to a private pipe (the item
   never holds the channel, so it cannot write a frame the host would read as another
   item's);
2. waits for the item to end, then kills and reaps every process left in the sandbox
   (``kill(-1)`` from here reaches all of them but pid 1 and this one);
3. removes every file and directory the item added to the work, tmp and meta dirs; if one
   that was there when the scope opened changed or went (or cannot be removed), the scope
   ends after this answer (``scope_end`` in the answer) and the host opens a new one;
4. forwards the answer, checked to be exactly one answer frame and the artifact frames it
   declares, or, if the item ended without one, an ``ended`` frame with its exit status
   (:class:`~runner.protocol.ItemEnded`); then ends the cell's stdout and stderr with its
   marker.

So an item's processes are dead and its files gone before its answer reaches the host,
and the next item starts from the same state as the first: a process forked from this
one, which no code has run in.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import stat
from typing import Any, NoReturn

from ..framing import HEADER, encode_frame, read_frame, write_all
from ..layers.limits import move_cpu_limit
from ..protocol import (
    FIGURES_DIR,
    Cell,
    IsolationSummary,
    ItemEnded,
    RunnerRequest,
)
from ..strays import adopt_orphans, end_strays
from ..syscalls import PR_SET_DUMPABLE, try_prctl
from . import worker
from .answering import answer_ready, build_answer, files_of

__all__ = ["serve"]

_exit = os._exit
#: What an item may send back (its answer and artifacts) is bounded by the host's budget;
#: this bounds what the parent holds if an item writes without end.
_MAX_ANSWER = 512 << 20

Snapshot = dict[str, tuple[int, int, int]]


def serve(
    request: RunnerRequest, channel: int, streams: list[int], isolation: IsolationSummary | None
) -> NoReturn:
    """Run every cell of ``channel`` in a fresh process until the host closes it."""
    try_prctl(PR_SET_DUMPABLE, 0)
    adopt_orphans()
    paths = request["paths"]
    roots = [paths["work"], paths["tmp"], paths["meta"]]
    baseline = {root: _snapshot(root) for root in roots}
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda _s, _f: None)
    # once, here: every item's process inherits them (its __main__ is its own)
    user_builtins = answer_ready(channel, isolation, lambda: worker.apply_request(request))
    closed_in_item = [channel, wake_r, wake_w, *streams]
    # kill(-1) reaches only the sandbox in a pid namespace of its own; elsewhere this
    # process, the subreaper of every item's processes, kills its children
    namespaces = isolation.get("namespaces") if isolation is not None else None
    own_pids = bool(namespaces and namespaces.get("pid"))
    while True:
        cell: Cell | None = read_frame(channel)
        if cell is None:
            _exit(0)
        try:
            data, status, usage = _run_item(
                request, cell, user_builtins, closed_in_item, wake_r, own_pids
            )
            end_strays(own_pids)  # whatever the item left, wherever it was re-parented
            dirty = _clean(roots, baseline)
            frame = _checked(data, dirty) or encode_frame(_ended(status, usage, dirty))
        except Exception as exc:  # noqa: BLE001 - a bug here: this item's error, the scope's end
            dirty = f"the scope's runner failed: {exc!r}"
            frame = encode_frame(_ended(1 << 8, None, dirty))
        write_all(channel, frame)
        marker = cell["marker"].encode()
        for fd in streams:
            try:
                write_all(fd, marker)
            except OSError:
                pass
        if dirty:
            _exit(0)


def _run_item(
    request: RunnerRequest, cell: Cell, user_builtins: dict[str, Any], close: list[int],
    wake_r: int, own_pids: bool,
) -> tuple[bytes, int, Any]:  # fmt: skip
    """Fork the item, collect what it writes on its answer pipe until it has ended; its
    answer bytes, wait status and resource usage."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    base = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    answer_r, answer_w = os.pipe()
    worker.reseed()  # here, before the fork: each item starts from a fresh random state
    pid = os.fork()
    if pid == 0:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in (answer_r, *close):
            os.close(fd)
        _item(request, cell, user_builtins, answer_w, base)
    os.close(answer_w)
    chunks: list[bytes] = []
    size, status, usage = 0, None, None
    poller = select.poll()
    poller.register(answer_r, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    reading = True
    while status is None:
        for fd, _ in poller.poll():
            if fd == answer_r:
                chunk = os.read(answer_r, 1 << 16)
                if chunk and size < _MAX_ANSWER:
                    chunks.append(chunk)
                    size += len(chunk)
                elif not chunk:
                    poller.unregister(answer_r)
                    reading = False
            else:
                _drain(wake_r)
        got, st, ru = os.wait4(pid, os.WNOHANG)
        if got == pid:
            status, usage = st, ru
    if reading:  # every writer is dead once the leftovers are: the pipe ends
        end_strays(own_pids)
        while size < _MAX_ANSWER and (chunk := os.read(answer_r, 1 << 16)):
            chunks.append(chunk)
            size += len(chunk)
    os.close(answer_r)
    return b"".join(chunks), status, usage


def _item(
    request: RunnerRequest, cell: Cell, user_builtins: dict[str, Any], answer_w: int,
    base_cpu: float,
) -> NoReturn:  # fmt: skip
    """In the item's process: run the cell once, as a one-shot execution, and answer."""
    try:
        adopt_orphans()
        try_prctl(PR_SET_DUMPABLE, 1)
        main = worker.new_main(user_builtins, cell.get("inputs", request.get("inputs")))
        if cell.get("cpu_seconds") is not None:
            move_cpu_limit(int(cell["cpu_seconds"] or 0))
        paths = request["paths"]
        figures = os.path.join(paths["meta"], FIGURES_DIR)
        files = files_of(paths["work"])
        report = worker.run_code(main, cell["code"], int(request["max_result_bytes"]))
        end_strays(False)  # never kill(-1) here: it would reach the parent
        answer, contents, _ = build_answer(report, cell, figures, paths["work"], files, keep=True)
        answer["usage"]["cpu_seconds"] += base_cpu  # the tree's, as a session's answer has
        write_all(answer_w, b"".join([encode_frame(answer)] +
                                     [HEADER.pack(len(c)) + c for c in contents]))  # fmt: skip
    except BaseException:  # noqa: BLE001 - the parent reports the item's end
        _exit(72)
    _exit(0)


def _checked(data: bytes, dirty: str | None) -> bytes | None:
    """``data`` if it is one answer frame followed by exactly the artifact frames it lists
    (with ``scope_end`` added when the scope ends), else None."""
    try:
        (size,) = HEADER.unpack_from(data)
        answer = json.loads(data[HEADER.size : HEADER.size + size])
        pos = HEADER.size + size
        if not isinstance(answer, dict) or answer.get("status") not in ("ok", "error"):
            return None
        for item in answer.get("artifacts") or ():
            (length,) = HEADER.unpack_from(data, pos)
            if not isinstance(item, dict) or item.get("size") != length:
                return None
            pos += HEADER.size + length
        if pos != len(data):
            return None
    except Exception:  # noqa: BLE001 - whatever the item wrote, it is not an answer
        return None
    if dirty is None:
        return data
    answer["scope_end"] = dirty
    return encode_frame(answer) + data[HEADER.size + size :]


def _ended(status: int, usage: Any, dirty: str | None) -> ItemEnded:
    ended: ItemEnded = {
        "status": "ended",
        "exit_code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "maxrss_kb": int(usage.ru_maxrss) if usage is not None else 0,
        "cpu_seconds": (usage.ru_utime + usage.ru_stime) if usage is not None else 0.0,
        "subreaper": True,
    }
    if dirty is not None:
        ended["message"] = dirty
    return ended


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _snapshot(root: str) -> Snapshot:
    """Every entry under ``root`` (``"."`` for itself): mode, and size and mtime for files."""
    found: Snapshot = {}
    paths = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        paths += [os.path.join(dirpath, name) for name in (*dirnames, *filenames)]
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        plain = stat.S_ISREG(st.st_mode)
        found[os.path.relpath(path, root)] = (
            st.st_mode, st.st_size if plain else 0, st.st_mtime_ns if plain else 0
        )  # fmt: skip
    return found


def _clean(roots: list[str], baseline: dict[str, Snapshot]) -> str | None:
    """Remove what the item added under ``roots``; why the scope must end, if it must."""
    try:
        for root in roots:
            now = _snapshot(root)
            before = baseline[root]
            changed = sorted(k for k, v in before.items() if now.get(k) != v)
            if changed:
                return f"an item changed or removed {os.path.join(root, changed[0])}"
            added = [k for k in now if k not in before]
            if not added:
                continue
            for rel in sorted(added, key=len):
                path = os.path.join(root, rel)
                if os.path.lexists(path):  # else removed with its directory
                    _remove(path)
            if any(k not in before for k in _snapshot(root)):
                return f"an item left files in {root} that could not be removed"
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the next item gets a new scope
        return f"an item left files that could not be removed: {exc!r}"
    return None


def _remove(top: str) -> None:
    """Remove ``top`` and what it holds, first making each directory readable and
    writable (the item may have made it neither; this process owns it: same uid)."""
    if not os.path.isdir(top) or os.path.islink(top):
        os.unlink(top)
        return
    dirs = [top]
    index = 0
    while index < len(dirs):
        os.chmod(dirs[index], 0o700)
        with os.scandir(dirs[index]) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    dirs.append(entry.path)
                else:
                    os.unlink(entry.path)
        index += 1
    for path in reversed(dirs):  # the deepest first
        os.rmdir(path)
