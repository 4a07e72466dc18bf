"""What a client sees while its call runs: the code's output and signs of life.

Each piece of output (whole lines, :mod:`sandbox_tool.streaming`) becomes

- a log message (``notifications/message``, level ``info``, logger ``stdout`` or
  ``stderr``, the text as data) on the call's own stream, as far as the client's
  logging level lets it (on 2026-07-28 connections only when the call asked for logs);
- a progress notification, when the call asked for progress (a ``progressToken``): its
  value is the seconds elapsed, its message the last line printed.

While the code prints nothing, a progress notification every ``heartbeat`` seconds
says it is still running (clients that reset their timeout on progress keep waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator
from typing import Any, get_args

from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import LoggingLevel

from sandbox_tool.streaming import Output

__all__ = ["LEVELS", "CallReporter"]

#: Logging levels, least severe first.
LEVELS: tuple[LoggingLevel, ...] = get_args(LoggingLevel)
#: The level of the output's log messages.
OUTPUT_LEVEL: LoggingLevel = "info"
_MESSAGE_CHARS = 200


class CallReporter:
    """One call's reporter: pass :meth:`on_output` to the execution, inside ``async with``
    (which runs the heartbeat). ``stdout`` and ``stderr`` keep what was streamed."""

    def __init__(
        self,
        session: ServerSession,
        request_id: Any,
        *,
        min_level: LoggingLevel = "debug",
        heartbeat: float = 5.0,
    ) -> None:
        self._session = session
        self._request_id = request_id
        self._log = LEVELS.index(OUTPUT_LEVEL) >= LEVELS.index(min_level)
        self._heartbeat = heartbeat
        self._loop = asyncio.get_running_loop()
        self._started = self._last_sent = self._loop.time()
        self._progress = 0.0
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    async def on_output(self, event: Output) -> None:
        (self.stdout if event.stream == "stdout" else self.stderr).append(event.text)
        if self._log:
            with warnings.catch_warnings():
                # the logging capability is deprecated in 2026-07-28 (kept for 12 months)
                # and is what 2025 clients show; the SDK gates it per request on new ones
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                sending = self._session.send_log_message(
                    OUTPUT_LEVEL, event.text, event.stream, related_request_id=self._request_id
                )
            await sending
        lines = event.text.strip().splitlines()
        await self._report(lines[-1][:_MESSAGE_CHARS] if lines else "")

    async def _report(self, message: str) -> None:
        now = self._loop.time()
        # progress must grow with every notification, even two in the same instant
        self._progress = max(round(now - self._started, 3), self._progress + 0.001)
        self._last_sent = now
        await self._session.report_progress(self._progress, None, message)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            if self._loop.time() - self._last_sent >= self._heartbeat:
                elapsed = self._loop.time() - self._started
                await self._report(f"still running ({elapsed:.0f} s)")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CallReporter]:
        """The heartbeat, for as long as the call runs."""
        beat = asyncio.ensure_future(self._beat())
        try:
            yield self
        finally:
            beat.cancel()
            with contextlib.suppress(BaseException):
                await beat
