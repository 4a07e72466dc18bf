"""The host's reading of a runner's streams: framed JSON on its channel, and stdout/stderr
cut per cell at a marker within an output budget.

The framing itself (a 4-byte length, then JSON) is defined once, in
:mod:`sandbox_tool.runner.framing`; this module is its asyncio reader. Everything
read here is treated as written by the code: a frame's size is checked before it is
read, a frame that is not a JSON object (or nests deeper than any real answer) is a
protocol error, and output past the budget is cut, never buffered.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any

from sandbox_tool.runner.framing import HEADER

__all__ = [
    "ChannelError",
    "MarkerCutter",
    "OutputBudget",
    "OutputStream",
    "new_marker",
    "read_frame",
    "read_raw",
]

_READ_CHUNK = 1 << 16


class ChannelError(Exception):
    """The runner's channel broke its protocol (a frame too large, not JSON, or not an
    answer): only the code running in the sandbox can cause that."""


def new_marker() -> bytes:
    """A marker that ends a cell's stdout and stderr; the code cannot guess it. It starts
    with a byte that output hardly ever ends with (not a newline), so that the bytes held
    back while the marker may be starting are almost never a line just printed."""
    return f"\x1esandbox-tool-cell-{secrets.token_hex(8)}\n".encode()


async def read_frame(reader: asyncio.StreamReader, limit: int) -> dict[str, Any] | None:
    """The next frame, or None at the end of the channel.

    Raises :class:`ChannelError` for a frame over ``limit`` bytes (before reading its
    body), one that is not JSON, nests too deep to parse, or is not an object."""
    try:
        (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
        if size > limit:
            raise ChannelError(f"the sandbox sent a frame of {size} bytes (at most {limit})")
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None  # the runner is gone (it may have died before reading the host's frames)
    try:
        frame = json.loads(body)
    except RecursionError:
        raise ChannelError("the sandbox sent a frame nested too deep to parse") from None
    except ValueError as exc:
        raise ChannelError(f"the sandbox sent a frame that is not JSON: {exc}") from None
    finally:
        del body
    if not isinstance(frame, dict):
        raise ChannelError("the sandbox sent a frame that is not a JSON object")
    return frame


async def read_raw(reader: asyncio.StreamReader, size: int) -> bytes | None:
    """The next raw frame, which must be ``size`` bytes long (an artifact's content, as
    its answer declared it); None at the end of the channel."""
    try:
        (got,) = HEADER.unpack(await reader.readexactly(HEADER.size))
        if got != size:
            raise ChannelError(f"the sandbox sent {got} bytes for an artifact of {size}")
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class MarkerCutter:
    """Finds a cell's marker in a stream read in chunks, the marker possibly split
    across them. :meth:`feed` returns the bytes known to be output (everything before
    the marker; bytes at the end that may be the marker's start are held back until it
    is clear they are not) and whether the marker came; what follows the marker is
    not the cell's and is dropped."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.held = bytearray()
        self.found = False

    def feed(self, chunk: bytes) -> bytes:
        if self.found:
            return b""
        self.held += chunk
        at = self.held.find(self.marker) if self.marker else -1
        if at >= 0:
            self.found = True
            out = bytes(self.held[:at])
            self.held.clear()
            return out
        cut = len(self.held) - self._marker_start()
        out = bytes(self.held[:cut])
        del self.held[:cut]
        return out

    def _marker_start(self) -> int:
        """How many bytes at the end of ``held`` may be the start of the marker (so the
        output printed so far reaches the host at once, as it streams)."""
        first = self.marker[:1]
        at = self.held.find(first, max(0, len(self.held) - len(self.marker) + 1)) if first else -1
        while at >= 0:
            if self.marker.startswith(self.held[at:]):
                return len(self.held) - at
            at = self.held.find(first, at + 1)
        return 0

    def flush(self) -> bytes:
        """At the end of the stream: what was held back was output after all."""
        out, self.held = bytes(self.held), bytearray()
        return out


class OutputBudget:
    """The bytes of output one cell may still print, shared by its stdout and stderr.
    ``flooded`` (a future of the exchange) is resolved when the cell prints past it, and
    holds the exception of a streaming callback that failed (:meth:`fail`)."""

    def __init__(self, limit: int, flooded: asyncio.Future[None] | None = None) -> None:
        self.left = limit
        self.exceeded = False
        self._flooded = flooded

    def take(self, chunk: bytes) -> bytes:
        """The part of ``chunk`` within the budget; past it, :attr:`exceeded` is set."""
        if self.left >= len(chunk):
            self.left -= len(chunk)
            return chunk
        kept = chunk[: max(self.left, 0)]
        self.left = 0
        self.exceeded = True
        if self._flooded is not None and not self._flooded.done():
            self._flooded.set_result(None)
        return kept

    def fail(self, error: Exception) -> None:
        """The cell's output could not be delivered (its streaming callback raised)."""
        if self._flooded is not None and not self._flooded.done():
            self._flooded.set_exception(error)


class _CellOutput:
    """One cell's reading of one stream: output up to the marker into ``sink``, within
    the budget, seen by ``tap``; ``done`` says whether the marker came (False: the stream
    ended first). Past the budget the output is cut and ``done`` resolves; an exception
    of ``tap`` goes to the budget's future (:meth:`OutputBudget.fail`)."""

    def __init__(
        self,
        marker: bytes,
        sink: bytearray,
        budget: OutputBudget,
        tap: Callable[[bytes], None] | None,
        done: asyncio.Future[bool],
    ) -> None:
        self.cutter = MarkerCutter(marker)
        self.sink, self.budget, self.tap, self.done = sink, budget, tap, done

    def feed(self, chunk: bytes) -> None:
        self._keep(self.cutter.feed(chunk))
        if self.cutter.found:
            self._finish(True)

    def end(self) -> None:
        self._keep(self.cutter.flush())
        self._finish(False)

    def _keep(self, out: bytes) -> None:
        if not out or self.budget.exceeded:
            return
        kept = self.budget.take(out)
        self.sink += kept
        if self.tap is not None and kept:
            try:
                self.tap(kept)
            except Exception as exc:  # noqa: BLE001  # a streaming callback's bug: raised by the exchange
                self.budget.fail(exc)
                self._finish(False)
                return
        if self.budget.exceeded:
            self._finish(False)

    def _finish(self, found: bool) -> None:
        if not self.done.done():
            self.done.set_result(found)


class OutputStream(asyncio.Protocol):
    """The host's end of a runner's stdout or stderr, read in the loop's callbacks (no
    task per cell): :meth:`read_cell` starts a cell's reading and returns its future.
    What arrives between cells waits for the next one (reading pauses past
    ``held_limit`` bytes); what follows a cell's marker in the same read is dropped."""

    def __init__(self, held_limit: int = 4 * _READ_CHUNK) -> None:
        self._held = bytearray()
        self._held_limit = held_limit
        self._cell: _CellOutput | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._paused = False
        self.ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        cell = self._cell
        if cell is None:
            self._held += data
            if len(self._held) > self._held_limit and self._transport is not None:
                self._transport.pause_reading()
                self._paused = True
            return
        cell.feed(data)
        if cell.done.done():
            self._cell = None

    def eof_received(self) -> bool | None:
        self._end()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()

    def _end(self) -> None:
        self.ended = True
        if self._cell is not None:
            self._cell.end()
            self._cell = None

    def read_cell(
        self,
        marker: bytes,
        sink: bytearray,
        budget: OutputBudget,
        tap: Callable[[bytes], None] | None = None,
    ) -> asyncio.Future[bool]:
        """Read the next cell's output: resolves True at ``marker``, False when the
        stream ends first or the budget is passed."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        cell = self._cell = _CellOutput(marker, sink, budget, tap, done)
        if self._held:
            held, self._held = bytes(self._held), bytearray()
            self.data_received(held)
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        if self.ended and not done.done():
            cell.end()
            self._cell = None
        return done

    def abandon(self) -> None:
        """Stop the current cell's reading (its exchange is over)."""
        self._cell = None
