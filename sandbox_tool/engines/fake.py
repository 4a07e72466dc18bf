"""An engine that runs nothing: for testing the tool and agent layers without processes.

>>> from sandbox_tool.result import ExecutionResult
from sandbox_tool.streaming import OnOutput, Tap, relay
>>> engine = FakeEngine(lambda code, inputs, options: ExecutionResult(result=42, engine="fake"))

The handler returns an ``ExecutionResult`` or raises a ``SandboxError``, exactly
as a real engine would; ``calls`` records every request. The answer's stdout and stderr
reach an ``on_output`` callback as if they had been streamed, once the handler is done.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from sandbox_tool.engines.base import Engine, EngineInfo
from sandbox_tool.errors import SandboxError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import ExecutionResult
from sandbox_tool.streaming import OnOutput, Tap, relay

__all__ = ["FakeEngine", "Handler"]

Handler = Callable[[str, Any, ExecutionOptions], ExecutionResult | Awaitable[ExecutionResult]]


class FakeEngine(Engine):
    """Answers every execution with ``handler(code, inputs, options)`` (sync or async)."""

    name = "fake"
    security_level = 0
    summary = "runs nothing: answers with a handler; for tests"
    #: It records the options, ``environment`` included, and runs nothing.
    supports_environments = True

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.calls: list[tuple[str, Any, ExecutionOptions]] = []

    @classmethod
    def probe(cls, interpreter: str | None = None) -> EngineInfo:
        return EngineInfo(cls.name, True, cls.security_level, "test double; runs nothing")

    async def execute(
        self,
        code: str,
        inputs: Any,
        options: ExecutionOptions,
        *,
        on_output: OnOutput | None = None,
    ) -> ExecutionResult:
        self.calls.append((code, inputs, options))
        async with relay(on_output) as tap:
            try:
                answer = self.handler(code, inputs, options)
                if inspect.isawaitable(answer):
                    answer = await answer
            except SandboxError as exc:
                _replay(tap, exc.stdout, exc.stderr)
                raise
            assert isinstance(answer, ExecutionResult)
            _replay(tap, answer.stdout, answer.stderr)
        update: dict[str, Any] = {}
        if not answer.engine:
            update["engine"] = self.name
        if answer.isolation is None:
            update["isolation"] = {"mode": "fake"}  # no layer: nothing ran
        return answer.model_copy(update=update) if update else answer


def _replay(tap: Tap | None, stdout: str, stderr: str) -> None:
    """The answer's output, as a real engine would have streamed it."""
    if tap is not None:
        if stdout:
            tap("stdout", stdout.encode())
        if stderr:
            tap("stderr", stderr.encode())
