"""The one driver of a runner's channel: every execution, cold or warm, one-shot or a
session's cell, goes through :class:`RunnerChannel`.

A runner is a process tree (supervisor, maybe a sandbox, the worker) with four
channels to the host (:class:`~.pipes.RunnerPipes`): a unix socket carrying framed
JSON both ways, the worker's stdout and stderr, and the supervisor's control pipe,
which it holds until it exits and on which it reports how the worker ended.

An exchange sends frames (the execution request, a cell, or both at once) and waits
for the answers they call for: the ready frame (the layers the sandbox reported
before any user code ran) and the cell's answer frame, whose output ends with the
cell's marker on both streams. It enforces, from the host, the wall-clock timeout,
the output budget and the CPU and memory budgets of the whole tree (:mod:`.treewatch`); on any of
them, or on a protocol error, it kills the whole tree before it returns, after giving
the runner ``stop_grace`` seconds to stop the code and save its
files. When the channel ends without an answer, the worker died: the supervisor's
report (:meth:`RunnerChannel.supervisor_report`) says how.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sandbox_tool.engines.runners.frames import (
    ChannelError,
    OutputBudget,
    OutputStream,
    read_frame,
    read_raw,
)
from sandbox_tool.engines.runners.pipes import RunnerPipes, close_quietly
from sandbox_tool.engines.runners.proctree import HostTree, ProcessTree
from sandbox_tool.engines.runners.treewatch import POLL_SECONDS, Overrun, watch_tree
from sandbox_tool.runner.protocol import MAX_ARTIFACT_FILES
from sandbox_tool.streaming import Tap

__all__ = ["CellLimits", "Exchange", "RunnerChannel", "parse_report"]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

_READ_CHUNK = 1 << 16
_DRAIN_SECONDS = 2.0
#: The ready frame and the supervisor's report are small: they never need more.
SMALL_FRAME = 1 << 20


@dataclass(frozen=True)
class CellLimits:
    """What bounds one cell's exchange: its marker, output budget and largest answer."""

    marker: bytes
    max_output_bytes: int
    max_frame: int
    max_artifact_bytes: int
    cpu_seconds: float = 0.0
    """The cell's CPU budget for the runner's whole tree (0: none; :mod:`.treewatch`)."""
    memory_bytes: int = 0
    """What the runner's processes may hold together (0: no bound; :mod:`.treewatch`)."""
    cpu_base: float = 0.0
    """The CPU seconds the tree had used before the cell (a session's earlier cells)."""


@dataclass
class Exchange:
    """What the host saw of one exchange with a runner."""

    stdout: bytes = b""
    stderr: bytes = b""
    ready: dict[str, Any] | None = None
    """The ready frame (or a ``runner_error`` frame) when the request was sent."""
    answer: dict[str, Any] | None = None
    """The worker's answer frame: its report, artifacts and usage."""
    timed_out: bool = False
    output_exceeded: bool = False
    protocol_error: str | None = None
    """The channel broke its protocol (which only the code can make it do)."""
    artifact_data: list[bytes] = field(default_factory=list)
    """The contents of the answer's artifacts, in the order of its list."""
    overrun: Overrun | None = None
    """The budget of the whole tree (CPU or memory) the host stopped the runner for."""
    duration_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return self.answer is not None

    @property
    def cut_short(self) -> bool:
        """Ended by the host (timeout, output flood, CPU or memory total, protocol
        error): the tree
        is dead."""
        return (
            self.timed_out
            or self.output_exceeded
            or self.protocol_error is not None
            or self.overrun is not None
        )


class RunnerChannel:
    """The host's end of one runner: ``pid`` is its supervisor (``tree``, how the host
    kills and watches it, is :class:`HostTree` of ``pid`` unless given); the runner's ends
    of ``pipes`` must be closed in this process already. :meth:`open` takes over the
    host's ends of the socket, stdout and stderr (a duplicate of the control pipe is read,
    the original stays with whoever tears the runner down); :meth:`close` gives them up.
    """

    def __init__(self, pid: int, pipes: RunnerPipes, tree: ProcessTree | None = None) -> None:
        self.pid = pid
        self.pipes = pipes
        self.tree: ProcessTree = tree or HostTree(pid)
        self._transports: list[asyncio.BaseTransport] = []
        self._stdout: OutputStream | None = None
        self._stderr: OutputStream | None = None
        self._channel: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._control: asyncio.Future[bytes] | None = None
        self._opened = False
        self._killed = False

    async def open(self) -> None:
        """Attach the runner's streams to the running loop (once)."""
        if self._opened:
            return
        self._opened = True
        pipes = self.pipes
        control_fd = os.dup(pipes.control_r)
        own = [pipes.stdout_r, pipes.stderr_r, control_fd, pipes.request_w]
        try:
            self._stdout = await self._output(own.pop(0))
            self._stderr = await self._output(own.pop(0))
            control = await self._reader(own.pop(0))
            self._control = asyncio.ensure_future(_read_to_end(control, SMALL_FRAME))
            self._channel, self._writer = await asyncio.open_unix_connection(
                sock=socket.socket(fileno=own.pop(0)), limit=_READ_CHUNK
            )
            _read_size(self._writer.transport)
        except BaseException:
            for fd in own:
                close_quietly(fd)
            await self.close()
            raise

    async def _reader(self, fd: int) -> asyncio.StreamReader:
        """A StreamReader on ``fd``; the transport owns the fd from now."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_READ_CHUNK, loop=loop)
        await self._pipe(fd, lambda: asyncio.StreamReaderProtocol(reader, loop=loop))
        return reader

    async def _output(self, fd: int) -> OutputStream:
        """The runner's stdout or stderr on ``fd``, read in callbacks."""
        return await self._pipe(fd, OutputStream)

    async def _pipe(self, fd: int, protocol: Callable[[], _P]) -> _P:
        """Read ``fd`` with ``protocol``; the transport owns the fd from now."""
        loop = asyncio.get_running_loop()
        transport, made = await loop.connect_read_pipe(protocol, os.fdopen(fd, "rb", buffering=0))
        self._transports.append(transport)
        _read_size(transport)
        return made

    async def exchange(
        self,
        frames: bytes,
        *,
        ready: bool,
        cell: CellLimits | None,
        timeout: float,
        stop_grace: float = 0.0,
        on_output: Tap | None = None,
    ) -> Exchange:
        """Send ``frames``; read the ready frame if ``ready``, then, for a ``cell``, its
        answer and its output up to the marker. Never raises for what the runner does:
        a timeout, an output flood or a broken protocol is in the :class:`Exchange`, and
        the runner's tree is dead when this returns with one of them. ``on_output`` sees
        the cell's output as it is read (within its budget; :mod:`sandbox_tool.streaming`)."""
        await self.open()
        assert self._writer is not None
        loop = asyncio.get_running_loop()
        run = Exchange()
        started = time.perf_counter()
        out, err = bytearray(), bytearray()
        # one task per exchange: the streams are read in callbacks, the output budget and
        # the tree's budgets resolve plain futures (a cell's overhead is mostly loop turns)
        flooded: asyncio.Future[None] = loop.create_future()
        budget = OutputBudget(cell.max_output_bytes if cell is not None else 0, flooded)
        self._writer.write(frames)
        streams: tuple[asyncio.Future[bool], ...] = ()
        body: asyncio.Future[None] | None = None
        watch: _TreeWatch | None = None
        try:
            if cell is not None:
                assert self._stdout is not None and self._stderr is not None
                tap_out = tap_err = None
                if on_output is not None:
                    tap_out = functools.partial(on_output, "stdout")
                    tap_err = functools.partial(on_output, "stderr")
                streams = (
                    self._stdout.read_cell(cell.marker, out, budget, tap_out),
                    self._stderr.read_cell(cell.marker, err, budget, tap_err),
                )
                watch = _TreeWatch.start(self.tree, cell)
            body = asyncio.ensure_future(self._answers(run, ready, cell, streams))
            waited: set[asyncio.Future[Any]] = {body, flooded}
            if watch is not None:
                waited.add(watch.overrun)
            done, _ = await asyncio.wait(waited, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            failed = flooded.exception() if flooded in done else None
            if failed is not None:
                raise failed  # the streaming callback's error
            if watch is not None and watch.overrun in done and body not in done:
                run.overrun = watch.overrun.result()
            elif body in done and not budget.exceeded:
                try:
                    body.result()
                except ChannelError as exc:
                    run.protocol_error = str(exc)
            else:
                run.output_exceeded = budget.exceeded
                run.timed_out = not run.output_exceeded
            if run.cut_short:
                await self.kill(stop_grace if not run.protocol_error else 0.0)
                if not budget.exceeded and not all(s.done() for s in streams):
                    # what the code printed before the kill (its tree is dead: they end)
                    await asyncio.wait(streams, timeout=_DRAIN_SECONDS)
        except BaseException:
            await asyncio.shield(self.kill())  # cancelled, or a bug: never leave it running
            raise
        finally:
            if flooded.done():
                flooded.exception()  # seen, raised or not
            flooded.cancel()
            for reading in streams:  # cancelled with the body, or done
                if reading.done() and not reading.cancelled():
                    reading.exception()
            for stream in (self._stdout, self._stderr):
                if cell is not None and stream is not None:
                    stream.abandon()
            if watch is not None:
                await watch.stop()
            if body is not None:
                body.cancel()  # done or not, its exception is retrieved here
                with contextlib.suppress(BaseException):
                    await body
            run.stdout, run.stderr = bytes(out), bytes(err)
            run.duration_ms = (time.perf_counter() - started) * 1000
        return run

    async def _answers(
        self,
        run: Exchange,
        ready: bool,
        cell: CellLimits | None,
        streams: tuple[asyncio.Future[bool], ...],
    ) -> None:
        """The frames the exchange calls for, then (for a cell) both streams at the cell's
        marker, or at their end: code that closed them, or a worker that died."""
        assert self._channel is not None
        if ready:
            run.ready = await read_frame(self._channel, SMALL_FRAME)
        if cell is not None and (not ready or (run.ready or {}).get("status") == "ready"):
            run.answer = await read_frame(self._channel, cell.max_frame)
            if run.answer is not None:
                run.artifact_data = await self._artifact_data(run.answer, cell)
        for stream in streams:
            await stream

    async def _artifact_data(self, answer: dict[str, Any], cell: CellLimits) -> list[bytes]:
        """The raw frames that follow an answer, one per artifact it lists, each of the
        size it declared; never more than the cell's artifact budget."""
        assert self._channel is not None
        items = answer.get("artifacts") or []
        if not isinstance(items, list) or len(items) > MAX_ARTIFACT_FILES:
            raise ChannelError(f"the sandbox sent more than {MAX_ARTIFACT_FILES} artifacts")
        sizes: list[int] = []
        for item in items:
            size = item.get("size") if isinstance(item, dict) else None
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ChannelError("the sandbox sent an artifact without a valid size")
            sizes.append(size)
        if sum(sizes) > cell.max_artifact_bytes:
            raise ChannelError(
                f"the sandbox sent more than {cell.max_artifact_bytes} bytes of artifacts"
            )
        contents = []
        for size in sizes:
            data = await read_raw(self._channel, size)
            if data is None:
                raise ChannelError("the sandbox's channel ended inside an artifact")
            contents.append(data)
        return contents

    async def supervisor_report(self, timeout: float = _DRAIN_SECONDS) -> dict[str, Any] | None:
        """The supervisor's report, once it has exited (None if it did not deliver one in
        ``timeout`` seconds, or was killed)."""
        if not await self.ended(timeout):
            return None
        assert self._control is not None
        if self._control.cancelled() or self._killed:
            return None
        return parse_report(self._control.result())

    async def ended(self, timeout: float) -> bool:
        """Whether the supervisor exits (closes its control pipe) within ``timeout``."""
        await self.open()
        assert self._control is not None
        if not self._control.done():
            await asyncio.wait({self._control}, timeout=timeout)
        return self._control.done()

    async def kill(self, stop_grace: float = 0.0) -> None:
        """Stop the runner: SIGTERM and up to ``stop_grace`` seconds for its supervisor to
        stop the code and save its files, then SIGKILL for the whole tree."""
        self._killed = True
        if stop_grace > 0 and self._control is not None:
            self.tree.terminate()
            await asyncio.wait({self._control}, timeout=stop_grace)
        await asyncio.to_thread(self.tree.kill)

    async def close(self) -> None:
        """Give up the host's ends of the streams (the runner sees its channel end)."""
        self.close_now()
        # a pipe transport closes its fd in a callback: let it run before the loop may end
        await asyncio.sleep(0)

    def close_now(self) -> None:
        """:meth:`close` without yielding to the event loop: the transports close their
        fds in callbacks already scheduled, ahead of anything the caller schedules next."""
        if self._control is not None:
            self._control.cancel()
        if self._writer is not None:
            self._writer.close()  # its transport closes the socket by itself
            self._writer = None
        for transport in self._transports:
            transport.close()
        self._transports.clear()


class _TreeWatch:
    """The tree's CPU and memory budgets for one cell (:mod:`.treewatch`): nothing runs
    for a cell shorter than one poll interval; after it, a task polls the tree.
    :attr:`overrun` resolves with the budget the tree passed."""

    def __init__(self, tree: ProcessTree, cell: CellLimits) -> None:
        loop = asyncio.get_running_loop()
        self.overrun: asyncio.Future[Overrun] = loop.create_future()
        self._tree, self._cell = tree, cell
        self._task: asyncio.Task[Overrun] | None = None
        self._timer = loop.call_later(POLL_SECONDS, self._begin)

    @classmethod
    def start(cls, tree: ProcessTree, cell: CellLimits) -> _TreeWatch | None:
        return cls(tree, cell) if cell.cpu_seconds > 0 or cell.memory_bytes > 0 else None

    def _begin(self) -> None:
        cell = self._cell
        self._task = asyncio.ensure_future(
            watch_tree(self._tree.usage, cell.cpu_seconds or float("inf"), cell.cpu_base,
                       cell.memory_bytes)
        )  # fmt: skip
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[Overrun]) -> None:
        if task.cancelled() or self.overrun.done():
            return
        error = task.exception()
        if error is not None:  # the tree could not be measured: the exchange fails safe
            self.overrun.set_exception(error)
        else:
            self.overrun.set_result(task.result())

    async def stop(self) -> None:
        self._timer.cancel()
        if self.overrun.done() and not self.overrun.cancelled():
            self.overrun.exception()  # seen, whether the exchange used it or not
        self.overrun.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


def _read_size(transport: asyncio.BaseTransport) -> None:
    """Read at most 64 KiB at a time (asyncio's transports read 256 KiB): a buffer that
    size comes from the heap, where a 256 KiB one is a fresh mmap, fault and munmap per
    read, which made a session cell's host CPU a third larger (measured with perf)."""
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = _READ_CHUNK  # type: ignore[attr-defined]


async def _read_to_end(reader: asyncio.StreamReader, limit: int) -> bytes:
    data = bytearray()
    while chunk := await reader.read(_READ_CHUNK):
        if len(data) < limit:
            data += chunk[: limit - len(data)]
    return bytes(data)


def parse_report(data: bytes | None) -> dict[str, Any] | None:
    """A JSON object read from the runner (a report), or None if it is not one."""
    if not data:
        return None
    try:
        report = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return report if isinstance(report, dict) else None
