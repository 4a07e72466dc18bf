"""An event loop in its own thread, for synchronous callers of async resources that must
stay on one loop (a session's pipes and processes).

>>> thread = LoopThread()
>>> async def answer() -> int:
...     return 42
>>> thread.run(answer())
42
>>> thread.close()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import ExecutionResult
from sandbox_tool.streaming import OnOutput

__all__ = ["LoopThread", "OnLoop"]

T = TypeVar("T")


class LoopThread:
    """A daemon thread running one event loop until :meth:`close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="sandbox-tool-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the thread's loop and wait for it (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def forward(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the thread's loop and await it from the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        """Stop the loop and join the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class OnLoop:
    """A code runner (a session) whose executions run on a :class:`LoopThread`, whatever
    loop (or ``asyncio.run``) awaits them."""

    keeps_state = True

    def __init__(self, runner: Any, thread: LoopThread) -> None:
        self.runner = runner
        self.thread = thread
        self.default_options: ExecutionOptions = runner.default_options

    async def execute(
        self,
        code: str,
        inputs: Any = None,
        options: ExecutionOptions | dict[str, Any] | None = None,
        *,
        on_output: OnOutput | None = None,
    ) -> ExecutionResult:
        """Run the cell on the thread's loop; ``on_output`` is called there too."""
        streaming: dict[str, Any] = {} if on_output is None else {"on_output": on_output}
        result: ExecutionResult = await self.thread.forward(
            self.runner.execute(code, inputs, options, **streaming)
        )
        return result

    async def aclose(self) -> None:
        """End the session, on the thread's loop."""
        await self.thread.forward(self.runner.aclose())
