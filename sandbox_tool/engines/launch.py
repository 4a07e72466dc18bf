"""Start the runner in a subprocess, feed it the request, collect what comes back.

Shared by the engines that run the runner as a child process. Enforces the
wall-clock timeout and the output cap from the host side, and always leaves
no process behind: on timeout, output overflow or cancellation the whole tree
is killed before this returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox_tool.engines.proctree import kill_tree

__all__ = ["RunnerRun", "run_runner"]

TRUNCATION_MARKER = "\n[... output truncated: the limit is {limit} bytes ...]\n"
_READ_CHUNK = 65536
_DRAIN_SECONDS = 2.0


@dataclass
class RunnerRun:
    """What the host saw of one runner process."""

    stdout: bytes = b""
    stderr: bytes = b""
    control: dict[str, Any] | None = None
    """The supervisor's report, or None if it did not deliver one."""
    returncode: int | None = None
    timed_out: bool = False
    output_exceeded: bool = False
    duration_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


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


async def _pump(
    stream: asyncio.StreamReader | None, sink: bytearray, budget: _OutputBudget
) -> None:
    if stream is None:
        return
    while True:
        chunk = await stream.read(_READ_CHUNK)
        if not chunk:
            return
        if not budget.exceeded.is_set():
            sink += budget.take(chunk)


def _read_control(fd: int) -> dict[str, Any] | None:
    os.set_blocking(fd, False)
    chunks = []
    try:
        while True:
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
    except BlockingIOError:
        return None  # writer still open: the supervisor did not finish
    try:
        data = json.loads(b"".join(chunks))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


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
    """Run ``argv`` (which must end in the runner bootstrap; the control fd number is
    appended) with ``request`` on stdin.

    On a timeout or an output overflow the tree is killed; with ``stop_grace`` the
    runner first gets SIGTERM and that many seconds to stop the code and save its
    files (the process engine's sandbox copies them out of its tmpfs).
    """
    run = RunnerRun()
    control_r, control_w = os.pipe()
    os.set_inheritable(control_w, True)
    started = time.perf_counter()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            str(control_w),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(control_w,),
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
    except BaseException:
        os.close(control_r)
        os.close(control_w)
        raise
    os.close(control_w)

    out, err = bytearray(), bytearray()
    budget = _OutputBudget(max_output_bytes)
    pumps = asyncio.gather(_pump(proc.stdout, out, budget), _pump(proc.stderr, err, budget))
    overflow = asyncio.ensure_future(budget.exceeded.wait())

    async def feed_and_wait() -> int:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(json.dumps(request).encode())
            await proc.stdin.drain()
        proc.stdin.close()
        return await proc.wait()

    waiter = asyncio.ensure_future(feed_and_wait())
    try:
        done, _ = await asyncio.wait(
            {waiter, overflow}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            run.output_exceeded = overflow in done
            run.timed_out = not run.output_exceeded
            if stop_grace > 0:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                await asyncio.wait({waiter}, timeout=stop_grace)
            await asyncio.to_thread(kill_tree, proc.pid)
        run.returncode = await waiter
        # the supervisor has exited; its worker tree is gone or being killed
        await asyncio.to_thread(kill_tree, proc.pid)
        try:
            await asyncio.wait_for(asyncio.shield(pumps), _DRAIN_SECONDS)
        except asyncio.TimeoutError:
            run.notes.append("output pipes stayed open after the process tree was killed")
        run.output_exceeded = run.output_exceeded or budget.exceeded.is_set()
        if not run.timed_out and not run.output_exceeded:
            run.control = _read_control(control_r)
    except BaseException:
        # cancelled, or a bug: never leave the tree running
        await asyncio.shield(asyncio.to_thread(kill_tree, proc.pid))
        raise
    finally:
        run.duration_ms = (time.perf_counter() - started) * 1000
        for task in (waiter, overflow):
            task.cancel()
        pumps.cancel()
        with contextlib.suppress(BaseException):
            await pumps
        with contextlib.suppress(BaseException):
            await waiter
        os.close(control_r)
        if proc.returncode is None:
            kill_tree(proc.pid)
            with contextlib.suppress(BaseException):
                await proc.wait()
        # closes the pipes too, should a pipe have stayed open (asyncio has no public API)
        transport = getattr(proc, "_transport", None)
        if transport is not None:
            transport.close()
    run.stdout, run.stderr = bytes(out), bytes(err)
    return run
