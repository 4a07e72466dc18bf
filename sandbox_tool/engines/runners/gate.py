"""Backpressure: at most N executions at once, a bounded queue behind them, refusal beyond.

Loop-agnostic (a thread lock and per-waiter futures woken with
``call_soon_threadsafe``), since executions may come from several event loops.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from types import TracebackType

from sandbox_tool.errors import EngineError

__all__ = ["Gate"]


class Gate:
    """``async with gate:`` admits ``limit`` holders at once and queues ``queue`` more;
    one more raises :class:`~sandbox_tool.errors.EngineError` at once."""

    def __init__(self, limit: int, queue: int) -> None:
        if limit < 1 or queue < 0:
            raise ValueError("limit must be at least 1 and queue at least 0")
        self.limit = limit
        self.queue = queue
        self.running = 0
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.running < self.limit:
                self.running += 1
                return
            if len(self._waiters) >= self.queue:
                raise EngineError(
                    f"the engine is saturated: {self.running} executions running and "
                    f"{len(self._waiters)} waiting; retry later, or raise the engine's "
                    "max_concurrent or max_queued"
                )
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock:
                if (loop, waiter) in self._waiters:
                    self._waiters.remove((loop, waiter))
                    raise
            # the slot was handed over just as we were cancelled: pass it on
            self._release()
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()

    def _release(self) -> None:
        with self._lock:
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                if not waiter.done() and not loop.is_closed():
                    # the slot goes to the next waiter: ``running`` stays the same
                    loop.call_soon_threadsafe(_grant, waiter)
                    return
            self.running -= 1


def _grant(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
