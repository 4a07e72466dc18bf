"""A sandbox shared by a batch's items, one at a time, each in a fresh process: the host's
side of a batch scope (:mod:`sandbox_tool.batch.scope` decides which items use one; the
runner's side is :mod:`sandbox_tool.runner.roles.scoped`).

It is opened as a session is (one warm runner, its request with ``"scope": "batch"``) and
runs one item per cell. An item that hits a limit (timeout, output, the tree's CPU or
memory), breaks the protocol, is cancelled, or changed a file that was there when the
scope opened ends it; the next item gets a new one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any, Protocol

from sandbox_tool.engines.runners import requests
from sandbox_tool.engines.runners.answers import AnswerContext, to_result
from sandbox_tool.engines.runners.driver import RunnerChannel
from sandbox_tool.errors import EngineError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import ExecutionResult
from sandbox_tool.runner.framing import encode_frame

if TYPE_CHECKING:
    from sandbox_tool.engines.isolation.base import Isolation
    from sandbox_tool.engines.runners.runner import Runner

__all__ = ["ScopeHost", "SharedSandbox"]

_OPEN_SECONDS = 60.0


class ScopeHost(Protocol):
    """What a shared sandbox needs of its engine (a ``RunnerEngine``)."""

    @property
    def name(self) -> str: ...

    isolation: Isolation

    def degraded(self, options: ExecutionOptions) -> list[str]: ...

    async def release(
        self, runner: Runner, warm: bool, channel: RunnerChannel, stop: bool = True
    ) -> None: ...


class SharedSandbox:
    """One sandbox serving a batch scope's items, one at a time."""

    def __init__(self, engine: ScopeHost, runner: Runner, warm: bool, options: ExecutionOptions):
        self.engine = engine
        self.options = options
        self._runner, self._warm = runner, warm
        self._channel = RunnerChannel(runner.pid, runner.pipes, runner.tree)
        self._isolation: dict[str, Any] | None = None
        self._cpu_used = 0.0
        self.ended_because: str | None = None

    @property
    def closed(self) -> bool:
        return self.ended_because is not None

    async def open(self) -> None:
        """Send the scope's request; raise ``EngineError`` if the sandbox does not start
        and report its layers."""
        request = requests.execution_request(
            self.options, self._runner.ws, session=True,
            sandbox_caps_processes=self.engine.isolation.caps_processes,
        )  # fmt: skip
        request["scope"] = "batch"
        ex = await self._channel.exchange(
            encode_frame(request), ready=True, cell=None, timeout=_OPEN_SECONDS
        )
        ready = ex.ready or {}
        reported = ready.get("isolation")
        self._isolation = self.engine.isolation.layers(
            reported if isinstance(reported, dict) else None
        )
        if ready.get("status") != "ready" or (
            self.engine.isolation.promises_layers and not self._isolation
        ):
            await self.aclose("it could not start")
            raise EngineError(f"the batch scope's sandbox could not start: {ready or ex}")

    async def execute(self, code: str, inputs: Any, opts: ExecutionOptions) -> ExecutionResult:
        """Run one item in a fresh process of this sandbox."""
        if self.closed:
            raise EngineError(f"this shared sandbox has ended ({self.ended_because})")
        cell = requests.new_cell(code, opts, inputs=inputs, session=True)
        limits = dataclasses.replace(cell.limits, cpu_base=self._cpu_used)
        try:
            ex = await self._channel.exchange(
                encode_frame(cell.frame), ready=False, cell=limits, timeout=opts.timeout
            )
        except asyncio.CancelledError:
            await asyncio.shield(self.aclose("an item was cancelled"))
            raise
        answer, supervisor = ex.answer, None
        ends: str | None = None
        if answer is not None and answer.get("status") == "ended":
            supervisor, ex.answer = answer, None  # the item's process died without answering
            ends = answer.get("message") if isinstance(answer.get("message"), str) else None
        elif answer is not None and "scope_end" in answer:
            ends = str(answer.pop("scope_end"))
        usage = (ex.answer or supervisor or {}).get("usage") or {}
        if isinstance(usage.get("cpu_seconds"), (int, float)):
            self._cpu_used = float(usage["cpu_seconds"])
        if ex.cut_short or (ex.answer is None and supervisor is None):
            ends = ends or "an item was stopped"
        ctx = AnswerContext(
            engine=self.engine.name, options=opts, degraded=self.engine.degraded(opts),
            require_isolation=self.engine.isolation.promises_layers, isolation=self._isolation,
        )  # fmt: skip
        try:
            return to_result(ex, ctx, supervisor)
        finally:
            if ends is not None:
                await asyncio.shield(self.aclose(ends))

    async def aclose(self, why: str = "it was closed", *, idle: bool = False) -> None:
        """Stop the sandbox and release its runner (idempotent). ``idle``: no item runs,
        so closing its channel ends it (the pool kills it if it takes more than a second)."""
        if self.closed:
            return
        self.ended_because = why
        await self.engine.release(self._runner, self._warm, self._channel, stop=not idle)
