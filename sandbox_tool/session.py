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
ends by itself. A session keeps its state in ``__main__``, never in processes:
before a cell's answer comes back, every process the cell started (a
subprocess, a daemon, a ``setsid`` spinner) has been killed, so nothing the
cell started runs between cells. Sessions are isolated from each other and from the host
exactly as single executions are: each is its own sandbox.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any, Protocol

from sandbox_tool.calls import check_call
from sandbox_tool.engines.runners import requests
from sandbox_tool.engines.runners.answers import AnswerContext, to_result
from sandbox_tool.engines.runners.driver import RunnerChannel
from sandbox_tool.engines.runners.treewatch import POLL_SECONDS
from sandbox_tool.errors import (
    BuiltinNotAllowed,
    EngineError,
    ExecutionError,
    ImportNotAllowed,
    SandboxError,
    UsageError,
)
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import ExecutionResult
from sandbox_tool.runner.framing import encode_frame
from sandbox_tool.streaming import OnOutput, relay

if TYPE_CHECKING:
    from sandbox_tool.engines.isolation.base import Isolation
    from sandbox_tool.engines.runners.runner import Runner

__all__ = ["Session", "SessionHost"]


class SessionHost(Protocol):
    """What a session needs of its engine (a
    :class:`~sandbox_tool.engines.runner_engine.RunnerEngine`)."""

    @property
    def name(self) -> str: ...

    isolation: Isolation

    def degraded(self, options: ExecutionOptions) -> list[str]: ...

    async def release(self, runner: Runner, warm: bool, channel: RunnerChannel) -> None: ...


#: How long a session's sandbox may take to apply its request and report its layers.
_OPEN_SECONDS = 60.0
#: Errors of the code itself: the interpreter and its state are intact after them.
_KEEPS_SESSION = (ExecutionError, ImportNotAllowed, BuiltinNotAllowed)


class Session:
    """A running session; get one with ``PythonSandbox.session()``."""

    keeps_state = True

    def __init__(
        self,
        engine: SessionHost,
        runner: Runner,
        warm: bool,
        options: ExecutionOptions,
        idle_timeout: float,
    ) -> None:
        self.engine = engine
        self.default_options = options
        self.idle_timeout = idle_timeout
        self._runner = runner
        self._warm = warm
        self._channel = RunnerChannel(runner.pid, runner.pipes, runner.tree)
        self._closed = False
        self._ended_because: str | None = None
        self._lock = asyncio.Lock()
        self._idle: asyncio.TimerHandle | None = None
        self._isolation: dict[str, Any] | None = None
        # The CPU the runner's tree had used before the next cell, as the host measures it
        # (every process of the tree): the worker's own CPU (its frames say it) plus what
        # the rest of the tree had used when the tree was last measured. A cell's budget
        # is its own, not its session's, nor the sandbox's start (gVisor's is large).
        self._worker_cpu = 0.0
        self._rest_of_tree_cpu = 0.0

    async def _open(self) -> None:
        request = requests.execution_request(
            self.default_options, self._runner.ws, session=True,
            sandbox_caps_processes=self.engine.isolation.caps_processes,
        )  # fmt: skip
        ex = await self._channel.exchange(
            encode_frame(request), ready=True, cell=None, timeout=_OPEN_SECONDS
        )
        ready = ex.ready
        if ready is None or ready.get("status") != "ready":
            detail: Any = ready or ex.protocol_error or ("timed out" if ex.timed_out else None)
            if detail is None:  # the runner died: its supervisor says why
                detail = {"reason": ((await self._channel.supervisor_report()) or {}).get(
                    "message")}  # fmt: skip
            await self._end("the session could not start")
            raise EngineError(f"the session could not start: {detail}")
        isolation = ready.get("isolation")
        self._isolation = self.engine.isolation.layers(
            isolation if isinstance(isolation, dict) else None
        )
        if self.engine.isolation.promises_layers and not self._isolation:
            await self._end("the session did not report its isolation layers")
            raise EngineError("the session's sandbox did not report its isolation layers")
        await self._measure_tree(_cpu_of(ready) or 0.0)
        self._touch()

    async def _measure_tree(self, worker_cpu: float) -> None:
        """Measure the runner's tree now, with the worker's own CPU at this moment."""
        usage = await asyncio.to_thread(self._channel.tree.usage)
        self._rest_of_tree_cpu = usage.cpu_seconds - worker_cpu
        self._worker_cpu = worker_cpu

    @property
    def closed(self) -> bool:
        """Whether the session has ended (closed, idle too long, or a cell hit a limit)."""
        return self._closed

    @property
    def ended_because(self) -> str | None:
        """Why it ended, as the next cell's error says it (None while it is open)."""
        return self._ended_because

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
        *,
        on_output: OnOutput | None = None,
    ) -> ExecutionResult:
        """Run one cell in the session's interpreter (its variables persist).

        ``options`` give this cell's wall clock, CPU and output limits; the session's
        memory limit and policies are those it was opened with. ``on_output`` gets what
        the cell prints while it runs (:mod:`sandbox_tool.streaming`).
        """
        opts = check_call(code, inputs, options, self.default_options)
        if opts.packages and opts.packages != self.default_options.packages:
            raise UsageError(
                "a session's packages are chosen when it opens (it has: "
                f"{', '.join(self.default_options.packages) or 'none'}); open a new session "
                "with ExecutionOptions(packages=[...])"
            )
        async with self._lock:
            if self._closed:
                raise UsageError(f"this session has ended ({self._ended_because}); open a new one")
            cell = requests.new_cell(code, opts, inputs=inputs, session=True)
            try:
                # the CPU budget is the cell's: what earlier cells used is not counted
                base = self._rest_of_tree_cpu + self._worker_cpu
                limits = dataclasses.replace(cell.limits, cpu_base=base)
                async with relay(on_output) as tap:
                    ex = await self._channel.exchange(encode_frame(cell.frame), ready=False,
                                                      cell=limits, timeout=opts.timeout,
                                                      on_output=tap)  # fmt: skip
            except asyncio.CancelledError:
                await asyncio.shield(self._end("a cell was cancelled"))
                raise
            used = _cpu_of(ex.answer)
            if used is not None:
                self._worker_cpu = used
                if ex.answered and not ex.cut_short and ex.duration_ms > 1000 * POLL_SECONDS:
                    # a long cell may leave processes the worker did not reap (their CPU
                    # is the tree's, not the worker's): measure the tree again
                    await self._measure_tree(used)
            supervisor = None
            if not ex.answered and not ex.cut_short:
                # the interpreter died: its supervisor's report says how (CPU, signal, memory)
                supervisor = await self._channel.supervisor_report(5.0)
            ctx = AnswerContext(
                engine=self.engine.name, options=opts, degraded=self.engine.degraded(opts),
                require_isolation=self.engine.isolation.promises_layers,
                isolation=self._isolation, in_session=True,
            )  # fmt: skip
            try:
                result = to_result(ex, ctx, supervisor)
            except SandboxError as exc:
                if not ex.answered or ex.cut_short or not isinstance(exc, _KEEPS_SESSION):
                    await self._end(_why(ex, exc))
                raise
            self._touch()
            return result

    async def _end(self, why: str) -> None:
        """Stop the interpreter and release everything (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._ended_because = why
        if self._idle is not None:
            self._idle.cancel()
        await self.engine.release(self._runner, self._warm, self._channel)

    async def aclose(self) -> None:
        """End the session (its interpreter and files are gone afterwards)."""
        await self._end("it was closed")

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _cpu_of(frame: dict[str, Any] | None) -> float | None:
    """The worker's CPU seconds a ready or answer frame reports (None without them)."""
    used = ((frame or {}).get("usage") or {}).get("cpu_seconds")
    if isinstance(used, (int, float)) and not isinstance(used, bool):
        return float(used)
    return None


def _why(ex: Any, exc: SandboxError) -> str:
    """Why a cell ended its session, as the next call's error says it."""
    if ex.timed_out:
        return "a cell ran past its timeout"
    if ex.output_exceeded:
        return "a cell printed too much"
    if ex.overrun is not None:
        return f"a cell's processes together passed the {ex.overrun.kind} budget"
    if ex.protocol_error is not None or isinstance(exc, EngineError):
        return "its channel broke the protocol"
    if not ex.answered:
        return "the interpreter died"
    return f"a cell hit a limit ({type(exc).__name__})"
