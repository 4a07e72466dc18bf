"""Drive one runner process: feed it the request, collect what comes back.

Shared by every engine that runs the runner, whether it was started cold
(:func:`run_runner`) or forked earlier from a warm template (:func:`drive`).
Enforces the wall-clock timeout and the output cap from the host side, and
leaves no process behind: on a timeout, an output overflow or a cancellation
the whole tree is killed before this returns.

The runner's supervisor holds the control pipe until it exits, so the end of
the control pipe is the end of a cold execution. A warm one ends earlier, when
the worker's answer frame and the end-of-cell markers of its output are in
(:mod:`sandbox_tool.engines.channel`); if the worker dies first, the
supervisor's report says how, as for a cold one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox_tool.engines.channel import ChannelError, MarkerCutter, read_frame
from sandbox_tool.engines.proctree import kill_tree

__all__ = ["Framed", "RunnerPipes", "RunnerRun", "drive", "run_runner"]

TRUNCATION_MARKER = "\n[... output truncated: the limit is {limit} bytes ...]\n"
_READ_CHUNK = 65536
_DRAIN_SECONDS = 2.0


@dataclass
class RunnerRun:
    """What the host saw of one runner process."""

    stdout: bytes = b""
    stderr: bytes = b""
    control: dict[str, Any] | None = None
    """The supervisor's report, or None if it did not deliver one (or was not waited for)."""
    answer: dict[str, Any] | None = None
    """A warm runner's answer frame: the worker's report with its artifacts and usage."""
    isolation: dict[str, Any] | None = None
    """The layers a warm runner reported before any user code ran (its ready frame)."""
    protocol_error: str | None = None
    """The channel broke its protocol (which only the code can make it do)."""
    timed_out: bool = False
    output_exceeded: bool = False
    duration_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class Framed:
    """A warm runner's execution over its channel: the frames to send (request and
    cell), the marker that ends the cell's output, the largest answer frame allowed."""

    frames: bytes
    marker: bytes
    max_frame: int


@dataclass
class RunnerPipes:
    """The four channels of a runner: the host's ends and the runner's ends."""

    request_r: int
    request_w: int
    stdout_r: int
    stdout_w: int
    stderr_r: int
    stderr_w: int
    control_r: int
    control_w: int

    @classmethod
    def create(cls) -> RunnerPipes:
        """The request channel is a socket pair (a session answers on it); the rest pipes."""
        fds: list[int] = []
        try:
            host, runner = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            fds += [runner.detach(), host.detach()]
            for _ in range(3):
                fds.extend(os.pipe())
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return cls(*fds)

    def runner_ends(self) -> tuple[int, int, int, int]:
        """stdin (the request), stdout, stderr, control: as the runner gets them."""
        return self.request_r, self.stdout_w, self.stderr_w, self.control_w

    def close_runner_ends(self) -> None:
        for fd in self.runner_ends():
            _close(fd)

    def close_host_ends(self) -> None:
        self.close_driven_ends()
        _close(self.control_r)

    def close_driven_ends(self) -> None:
        """The host's ends that driving the runner consumes: all but the control pipe."""
        for fd in (self.request_w, self.stdout_r, self.stderr_r):
            _close(fd)

    def close_all(self) -> None:
        self.close_runner_ends()
        self.close_host_ends()


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class _OutputBudget:
    def __init__(self, limit: int) -> None:
        self.left = limit
        self.exceeded = asyncio.Event()

    def take(self, chunk: bytes) -> bytes:
        if self.left >= len(chunk):
            self.left -= len(chunk)
            return chunk
        kept = chunk[: max(self.left, 0)]
        self.left = 0
        self.exceeded.set()
        return kept


async def _reader(fd: int, transports: list[asyncio.BaseTransport]) -> asyncio.StreamReader:
    """A StreamReader on ``fd`` in the running loop; the transport owns the fd from now."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_READ_CHUNK, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", buffering=0)
    )
    transports.append(transport)
    return reader


async def _pump(
    reader: asyncio.StreamReader, sink: bytearray, budget: _OutputBudget, marker: bytes = b""
) -> None:
    """Copy ``reader`` into ``sink`` within ``budget``, to its end or up to ``marker``."""
    cutter = MarkerCutter(marker)
    while not cutter.found:
        chunk = await reader.read(_READ_CHUNK)
        out = cutter.feed(chunk) if chunk else cutter.flush()
        if out and not budget.exceeded.is_set():
            sink += budget.take(out)
        if not chunk:
            return


async def _answer(
    reader: asyncio.StreamReader, max_frame: int, pumps: asyncio.Future[Any]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A warm runner's ready frame and answer frame (None where the channel ended first),
    the answer only once both output streams have reached the cell's marker."""
    ready = await read_frame(reader, max_frame)
    if ready is None or ready.get("status") != "ready":
        return ready, None
    answer = await read_frame(reader, max_frame)
    if answer is not None:
        await pumps
    return ready, answer


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except (BrokenPipeError, ConnectionResetError):
        pass  # the runner died before reading: its report says why
    finally:
        _close(fd)


async def drive(
    pid: int,
    pipes: RunnerPipes,
    request: dict[str, Any] | None,
    *,
    timeout: float,
    max_output_bytes: int,
    stop_grace: float = 0.0,
    reap: Callable[[], Awaitable[object]] | None = None,
    framed: Framed | None = None,
) -> RunnerRun:
    """Run one execution on the runner ``pid`` (its supervisor) through ``pipes``.

    A cold runner gets ``request`` on its stdin and the execution ends when its
    supervisor has reported. A warm runner gets ``framed`` on its channel and the
    execution ends as soon as its answer frame is in: the runner is then still
    ending, and the caller tears it down (the control pipe stays open for that:
    this reads a duplicate of it). If the runner dies without answering, its
    supervisor's report says how, as for a cold one.

    The runner's ends must be closed in this process already. On a timeout or an
    output overflow the tree is killed; with ``stop_grace`` the runner first gets
    SIGTERM and that many seconds to stop the code and save its files. ``reap``
    waits for the process when this process is its parent.
    """
    run = RunnerRun()
    started = time.perf_counter()
    out, err, control = bytearray(), bytearray(), bytearray()
    budget = _OutputBudget(max_output_bytes)
    tasks: list[asyncio.Future[Any]] = []
    transports: list[asyncio.BaseTransport] = []
    writer: asyncio.StreamWriter | None = None
    control_fd = os.dup(pipes.control_r) if framed is not None else pipes.control_r
    # fds not yet handed to a transport or a writer, closed here at the end
    own = [pipes.stdout_r, pipes.stderr_r, control_fd, pipes.request_w]
    try:
        readers = []
        for fd in own[:3]:
            readers.append(await _reader(fd, transports))
            own.remove(fd)
        stdout, stderr, ctl = readers
        marker = framed.marker if framed is not None else b""
        pumps = asyncio.gather(
            _pump(stdout, out, budget, marker), _pump(stderr, err, budget, marker)
        )
        ended = asyncio.ensure_future(_pump(ctl, control, _OutputBudget(1 << 20)))
        overflow = asyncio.ensure_future(budget.exceeded.wait())
        tasks += [pumps, ended, overflow]
        waiting = {ended, overflow}
        answered: asyncio.Future[Any] | None = None
        own.remove(pipes.request_w)
        if framed is not None:
            channel, writer = await asyncio.open_unix_connection(
                sock=socket.socket(fileno=pipes.request_w), limit=_READ_CHUNK
            )
            writer.write(framed.frames)
            answered = asyncio.ensure_future(_answer(channel, framed.max_frame, pumps))
            tasks.append(answered)
            waiting.add(answered)
        else:
            data = json.dumps(request).encode()
            if len(data) <= 65536:  # an empty pipe takes that much without blocking
                _write_all(pipes.request_w, data)
            else:
                tasks.append(
                    asyncio.ensure_future(asyncio.to_thread(_write_all, pipes.request_w, data))
                )

        deadline = time.monotonic() + timeout
        while True:
            done, _ = await asyncio.wait(waiting, timeout=max(0.0, deadline - time.monotonic()),
                                         return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            if answered in waiting and ended in done and not answered.done():
                # the runner has ended, so its streams are at their end: an answer it sent
                # (after code that closed or redirected its streams) is readable now
                await asyncio.wait({answered}, timeout=_DRAIN_SECONDS)
                done = {answered} if answered.done() else done
            if answered is None or answered not in done:
                break
            if budget.exceeded.is_set():
                done = {overflow}  # the code printed too much before it answered
                break
            waiting.discard(answered)
            try:
                ready, run.answer = answered.result()
            except ChannelError as exc:
                run.protocol_error = str(exc)
                break
            run.isolation = (ready or {}).get("isolation")
            if ready is not None and ready.get("status") == "runner_error":
                run.answer = ready  # the worker could not apply the request
            if run.answer is not None:
                return run
            # the channel ended without an answer: the worker died, its supervisor says how
        if ended not in done and run.protocol_error is None:
            run.output_exceeded = overflow in done
            run.timed_out = not run.output_exceeded
            if stop_grace > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                await asyncio.wait({ended}, timeout=stop_grace)
            await asyncio.to_thread(kill_tree, pid)
        elif run.protocol_error is not None:
            await asyncio.to_thread(kill_tree, pid)
        await asyncio.wait({ended}, timeout=_DRAIN_SECONDS)
        if reap is not None:
            await reap()
        if run.timed_out or run.output_exceeded or not ended.done():
            await asyncio.to_thread(kill_tree, pid)
        else:
            # the supervisor killed its tree before it reported and exited; its session
            # is all that could be left
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(asyncio.shield(pumps), _DRAIN_SECONDS)
        except asyncio.TimeoutError:
            run.notes.append("output pipes stayed open after the process tree was killed")
        run.output_exceeded = run.output_exceeded or budget.exceeded.is_set()
        if not run.timed_out and not run.output_exceeded and ended.done():
            run.control = _parse_control(bytes(control))
    except BaseException:
        # cancelled, or a bug: never leave the tree running
        await asyncio.shield(asyncio.to_thread(kill_tree, pid))
        raise
    finally:
        run.duration_ms = (time.perf_counter() - started) * 1000
        run.stdout, run.stderr = bytes(out), bytes(err)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for transport in transports:
            transport.close()
        if writer is not None:
            writer.close()
        for fd in own:
            _close(fd)
        # a pipe transport closes its fd in a callback: let it run before the loop may end
        await asyncio.sleep(0)
    return run


def _parse_control(data: bytes) -> dict[str, Any] | None:
    try:
        report = json.loads(data)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


async def run_runner(
    argv: Sequence[str],
    request: dict[str, Any],
    *,
    env: dict[str, str],
    cwd: str,
    timeout: float,
    max_output_bytes: int,
    stop_grace: float = 0.0,
) -> RunnerRun:
    """Start ``argv`` (the runner bootstrap; the control fd number is appended) cold and
    :func:`drive` it."""
    pipes = RunnerPipes.create()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, str(pipes.control_w),
            stdin=pipes.request_r, stdout=pipes.stdout_w, stderr=pipes.stderr_w,
            pass_fds=(pipes.control_w,), start_new_session=True, env=env, cwd=cwd,
        )  # fmt: skip
    except BaseException:
        pipes.close_all()
        raise
    pipes.close_runner_ends()
    try:
        return await drive(
            proc.pid, pipes, request, timeout=timeout, max_output_bytes=max_output_bytes,
            stop_grace=stop_grace, reap=proc.wait,
        )  # fmt: skip
    finally:
        if proc.returncode is None:
            kill_tree(proc.pid)
            with contextlib.suppress(BaseException):
                await proc.wait()
