"""Sessions: one sandboxed interpreter whose state (variables, imports, DataFrames)
lasts across executions, as a notebook kernel's does.

>>> async with sandbox.session() as s:                       # doctest: +SKIP
...     await s.execute("import pandas as pd\\ndf = pd.DataFrame({'a': [1, 2]})")
...     (await s.execute("df['a'].sum()")).result
3

Every cell gets the per-execution limits of its options (wall clock, CPU,
output) and its own artifacts; memory is limited for the whole session. A cell
that raises keeps the session; a cell that hits a limit ends it, and its error
says that the state is lost. A session left idle for ``idle_timeout`` seconds
ends by itself. Sessions are isolated from each other and from the host
exactly as single executions are: each is its own sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from typing import TYPE_CHECKING, Any

from sandbox_tool.engines import channel, outcome
from sandbox_tool.engines.proctree import kill_tree
from sandbox_tool.errors import (
    EngineError,
    ExecutionFailed,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    SandboxError,
    Timeout,
    UsageError,
)
from sandbox_tool.options import ExecutionOptions, coerce_options
from sandbox_tool.result import ExecutionResult

if TYPE_CHECKING:
    from sandbox_tool.engines.native import NativeEngine
    from sandbox_tool.engines.pool import Runner

__all__ = ["Session"]

_LOST = " The session has ended and its state is lost: open a new session."


class Session:
    """A running session; get one with ``PythonSandbox.session()``."""

    keeps_state = True

    def __init__(
        self, engine: NativeEngine, runner: Runner, options: ExecutionOptions, idle_timeout: float
    ) -> None:
        self.engine = engine
        self.default_options = options
        self.idle_timeout = idle_timeout
        self._runner = runner
        self._closed = False
        self._ended_because: str | None = None
        self._lock = asyncio.Lock()
        self._transports: list[asyncio.BaseTransport] = []
        self._readers: dict[str, asyncio.StreamReader] = {}
        self._channel: asyncio.StreamWriter | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._isolation: dict[str, Any] | None = None

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        pipes = self._runner.pipes
        for name, fd in (("stdout", pipes.stdout_r), ("stderr", pipes.stderr_r)):
            reader = asyncio.StreamReader(limit=1 << 16, loop=loop)
            transport, _ = await loop.connect_read_pipe(
                lambda r=reader: asyncio.StreamReaderProtocol(r, loop=loop),  # type: ignore[misc]
                os.fdopen(fd, "rb", buffering=0),
            )
            self._transports.append(transport)
            self._readers[name] = reader
        channel_reader, self._channel = await asyncio.open_unix_connection(
            sock=_socket_from_fd(pipes.request_w), limit=1 << 16
        )
        self._readers["channel"] = channel_reader
        opts = self.default_options
        first = self.engine.execution_request("", None, opts, self._runner.ws)
        first["limits"]["cpu_seconds"] = None  # set per cell
        self._channel.write(channel.encode_frame(first))
        try:
            answer = await asyncio.wait_for(
                channel.read_frame(self._readers["channel"], 1 << 20), 60
            )
        except (asyncio.TimeoutError, channel.ChannelError) as exc:
            answer = {"error": str(exc) or type(exc).__name__}
        if answer is None or answer.get("status") != "ready":
            if answer is None:  # the runner died: its supervisor says why
                answer = {"reason": ((await self._control()) or {}).get("message")}
            await self._end("the session could not start")
            raise EngineError(f"the session could not start: {answer}")
        self._isolation = answer.get("isolation")
        if self.engine.requires_isolation_report() and not self._isolation:
            await self._end("the session did not report its isolation layers")
            raise EngineError("the session's sandbox did not report its isolation layers")
        self._touch()

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(
            self.idle_timeout,
            lambda: loop.create_task(self._end(f"it was idle for {self.idle_timeout:g} s")),
        )

    async def execute(
        self,
        code: str,
        inputs: Any = None,
        options: ExecutionOptions | dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Run one cell in the session's interpreter (its variables persist).

        ``options`` give this cell's wall clock, CPU and output limits; the session's
        memory limit and policies are those it was opened with.
        """
        if not isinstance(code, str):
            raise UsageError(f"code must be a str, not {type(code).__name__}")
        opts = coerce_options(options, self.default_options)
        async with self._lock:
            if self._closed:
                raise UsageError(f"this session has ended ({self._ended_because}); open a new one")
            started = time.perf_counter()
            marker = channel.new_marker()
            cell: dict[str, Any] = {
                "code": code, "cpu_seconds": opts.cpu_limit_seconds, "marker": marker.decode(),
                "max_artifact_bytes": opts.max_artifact_bytes,
            }  # fmt: skip
            if inputs is not None:
                cell["inputs"] = inputs
            assert self._channel is not None
            self._channel.write(channel.encode_frame(cell))
            out, err = bytearray(), bytearray()
            budget = [opts.max_output_bytes]
            reading = asyncio.gather(
                channel.read_frame(self._readers["channel"], channel.frame_limit(opts)),
                channel.read_until_marker(self._readers["stdout"], marker, out, budget),
                channel.read_until_marker(self._readers["stderr"], marker, err, budget),
            )
            try:
                report, _, _ = await asyncio.wait_for(reading, opts.timeout)
            except asyncio.TimeoutError:
                await self._end("a cell ran past its timeout")
                raise Timeout(
                    f"the cell ran longer than {opts.timeout:g} s and was killed; make it "
                    "faster or raise ExecutionOptions.timeout." + _LOST,
                    limit=opts.timeout, **self._common(out, err, started),
                ) from None  # fmt: skip
            except channel.ChannelError as exc:
                await self._end("its channel broke the protocol")
                raise EngineError(
                    f"the session's channel broke its protocol, so it was ended: {exc}; do "
                    "not write to the runner's file descriptors." + _LOST,
                    **self._common(out, err, started),
                ) from None
            except channel.OutputFlood:
                await self._end("a cell printed too much")
                raise OutputLimitExceeded(
                    f"the cell printed more than {opts.max_output_bytes} bytes and was "
                    "stopped; print less or raise ExecutionOptions.max_output_bytes." + _LOST,
                    limit=opts.max_output_bytes, **self._common(out, err, started),
                ) from None  # fmt: skip
            except asyncio.CancelledError:
                await asyncio.shield(self._end("a cell was cancelled"))
                raise
            self._touch()
            return await self._finish(report, out, err, started, opts)

    def _common(self, out: bytearray, err: bytearray, started: float) -> dict[str, Any]:
        return {
            "stdout": out.decode(errors="replace"),
            "stderr": err.decode(errors="replace"),
            "engine": self.engine.name,
            "duration_ms": (time.perf_counter() - started) * 1000,
        }

    async def _finish(
        self, report: dict[str, Any] | None, out: bytearray, err: bytearray, started: float,
        opts: ExecutionOptions,
    ) -> ExecutionResult:  # fmt: skip
        common = self._common(out, err, started)
        if report is None:
            # the interpreter died: its supervisor's report says how (CPU, signal, memory)
            error = await self._death(common, opts)
            await self._end("the interpreter died")
            error.message += _LOST
            raise error
        try:
            common["artifacts"] = channel.artifacts_from_report(report, opts.max_artifact_bytes)
        except channel.ChannelError as exc:
            await self._end("its channel broke the protocol")
            raise EngineError(f"the session's channel broke its protocol: {exc}." + _LOST,
                              **common) from None  # fmt: skip
        if report.get("status") == "ok":
            return ExecutionResult(
                result=report.get("result"), result_repr=report.get("result_repr"),
                result_type=report.get("result_type"),
                result_truncated=bool(report.get("result_truncated")),
                artifacts_truncated=bool(report.get("artifacts_truncated")),
                degraded=self.engine.degraded(opts), isolation=self._isolation, **common,
            )  # fmt: skip
        error = outcome.code_error(report, self.default_options, common)
        if isinstance(error, MemoryLimitExceeded):
            await self._end("a cell ran out of memory")
            error.message += _LOST
        raise error

    async def _death(self, common: dict[str, Any], opts: ExecutionOptions) -> SandboxError:
        run = outcome.RunnerRun(stdout=b"", stderr=common["stderr"].encode(), control=None)
        run.control = await self._control()
        try:
            outcome.build_outcome(outcome.Outcome(run, None, [], False, self.engine.name, opts, []))
        except SandboxError as exc:
            exc.stdout = common["stdout"]
            return exc
        return ExecutionFailed("the session's interpreter ended without a report", **common)

    async def _control(self) -> dict[str, Any] | None:
        """The supervisor's report, once it has exited."""
        fd = self._runner.pipes.control_r
        data = await asyncio.to_thread(_read_to_end, fd, 5.0)
        try:
            report = json.loads(data)
        except ValueError:
            return None
        return report if isinstance(report, dict) else None

    async def _end(self, why: str) -> None:
        """Stop the interpreter and release everything (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._ended_because = why
        if self._idle is not None:
            self._idle.cancel()
        if self._channel is not None:
            self._channel.close()
            with contextlib.suppress(Exception):
                await self._channel.wait_closed()
        await asyncio.to_thread(kill_tree, self._runner.pid, wait=2.0)
        for transport in self._transports:
            transport.close()
        await asyncio.sleep(0)
        pool = self.engine.pool
        if pool is not None:
            pool.release(self._runner)
        else:  # a runner of its own, killed above
            await asyncio.to_thread(self._runner.finish, True)

    async def aclose(self) -> None:
        """End the session (its interpreter and files are gone afterwards)."""
        await self._end("it was closed")

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _socket_from_fd(fd: int) -> Any:
    import socket

    return socket.socket(fileno=fd)


def _read_to_end(fd: int, timeout: float) -> bytes:
    import select

    chunks, deadline = [], time.monotonic() + timeout
    poller = select.poll()  # any fd number, unlike select()
    poller.register(fd, select.POLLIN)
    while (left := deadline - time.monotonic()) > 0:
        if not poller.poll(left * 1000):
            break
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
