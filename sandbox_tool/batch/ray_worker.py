"""What runs inside a Ray actor: one per worker node, keeping that node's warm sandbox
pool for the whole batch. It imports no Ray itself (the executor turns it into an
actor class), so it is tested, and runs, like any object.

Chunks arrive as lists of JSON-ready items; the results stream back one by one
(a Ray generator), as wire dicts (:meth:`~sandbox_tool.batch.items.BatchResult.to_wire`),
in the order they complete. Several chunks may run at once on one actor; together they
run at most ``concurrency`` items at a time.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from sandbox_tool.batch.mapping import (
    BatchStream,
    check_concurrency,
    default_concurrency,
    limited,
    local_results,
)
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.sandbox import PythonSandbox

__all__ = ["SandboxWorker"]


class SandboxWorker:
    """A node's sandbox for a batch: ``engine`` with ``options`` as every item's
    defaults, at most ``concurrency`` items at once (default: the engine's)."""

    def __init__(self, engine: str, options: dict[str, Any], concurrency: int | None) -> None:
        defaults = ExecutionOptions.model_validate(options)
        self.sandbox = PythonSandbox(engine, options=defaults)
        self.concurrency = check_concurrency(concurrency, default_concurrency(self.sandbox.engine))
        self._slots: asyncio.Semaphore | None = None

    async def ready(self) -> dict[str, Any]:
        """Start the warm pool now; where this worker runs."""
        await self.sandbox.start()
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "engine": self.sandbox.engine_name,
            "concurrency": self.concurrency,
        }

    async def run(self, items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        """The results of one chunk, as they complete."""
        if self._slots is None:  # made in the actor's event loop
            self._slots = asyncio.Semaphore(self.concurrency)
        scope = limited(self.sandbox.batch_executor, self._slots)
        stream = BatchStream(local_results(items, scope, len(items), self.sandbox.default_options))
        async with stream:
            async for res in stream:
                yield res.to_wire()

    async def shutdown(self) -> None:
        """Stop the warm pool (its template and waiting runners)."""
        await self.sandbox.aclose()
