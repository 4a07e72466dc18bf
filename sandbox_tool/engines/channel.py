"""The host's side of a warm runner's framed channel.

The runner's side is :mod:`sandbox_tool.runner.roles.cells`, the framing itself
:mod:`sandbox_tool.runner.framing`.

A warm runner's worker reads length-prefixed JSON frames on a unix socket and
answers each cell with one frame, after ending the cell's stdout and stderr
with the cell's marker. Everything here treats what comes back as written by
the code: frames are size-capped before they are read, and artifact names are
only names.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
from typing import Any

from sandbox_tool.engines.workspace import mime_type, unique_name
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import Artifact
from sandbox_tool.runner.framing import HEADER, encode_frame
from sandbox_tool.runner.protocol import MAX_ARTIFACT_FILES

__all__ = [
    "ChannelError",
    "MarkerCutter",
    "OutputFlood",
    "artifacts_from_report",
    "encode_frame",
    "frame_limit",
    "new_marker",
    "read_frame",
    "read_until_marker",
]


class ChannelError(Exception):
    """The runner's channel broke its protocol (a frame too large or not JSON): only the
    code running in the sandbox can cause that."""


class OutputFlood(Exception):
    """The code printed more than its output budget."""


def frame_limit(options: ExecutionOptions) -> int:
    """The largest answer frame a cell with ``options`` can legitimately send: its result
    (JSON and repr), a traceback and its artifacts in base64."""
    return 4 * options.max_output_bytes + 2 * options.max_artifact_bytes + (1 << 20)


def new_marker() -> bytes:
    """A marker that ends a cell's stdout and stderr; the code cannot guess it."""
    return f"\n\x1esandbox-tool-cell-{secrets.token_hex(8)}\n".encode()


async def read_frame(reader: asyncio.StreamReader, limit: int) -> dict[str, Any] | None:
    """The next frame, or None at the end of the channel."""
    try:
        header = await reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(header)
        if size > limit:
            raise ChannelError(f"the sandbox sent a frame of {size} bytes (at most {limit})")
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None  # the runner is gone (it may have died before reading the host's frames)
    try:
        frame = json.loads(body)
    except ValueError as exc:
        raise ChannelError(f"the sandbox sent a frame that is not JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise ChannelError("the sandbox sent a frame that is not a JSON object")
    return frame


class MarkerCutter:
    """Finds a cell's marker in a stream read in chunks, the marker possibly split
    across them. :meth:`feed` returns the bytes known to be output (everything before
    the marker; the last ``len(marker) - 1`` bytes are held back until it is clear they
    are not the marker's start) and whether the marker came; what follows the marker is
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
        keep = max(len(self.marker) - 1, 0)
        cut = max(0, len(self.held) - keep)
        out = bytes(self.held[:cut])
        del self.held[:cut]
        return out

    def flush(self) -> bytes:
        """At the end of the stream: what was held back was output after all."""
        out, self.held = bytes(self.held), bytearray()
        return out


async def read_until_marker(
    reader: asyncio.StreamReader, marker: bytes, sink: bytearray, budget: list[int]
) -> bool:
    """Append ``reader``'s data to ``sink`` up to ``marker`` (dropped); True if it came,
    False at the end of the stream. Raises :class:`OutputFlood` past ``budget[0]`` bytes
    (shared by the streams of one cell)."""
    cutter = MarkerCutter(marker)
    while not cutter.found:
        chunk = await reader.read(1 << 16)
        out = cutter.feed(chunk) if chunk else cutter.flush()
        sink += out
        budget[0] -= len(out)
        if budget[0] < 0:
            raise OutputFlood
        if not chunk:
            return False
    return True


def artifacts_from_report(report: dict[str, Any], max_bytes: int) -> list[Artifact]:
    """The artifacts of an answer frame (figures, then files), with unique names; more
    than the runner ever sends (files, or bytes beyond ``max_bytes``) is a protocol error."""
    items = report.get("artifacts") or []
    if not isinstance(items, list) or len(items) > MAX_ARTIFACT_FILES:
        raise ChannelError(f"the sandbox sent more than {MAX_ARTIFACT_FILES} artifacts")
    artifacts: list[Artifact] = []
    names: set[str] = set()
    total = 0
    for item in items:
        try:
            name, kind = str(item["name"]), str(item["kind"])
            data = base64.b64decode(item["data"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ChannelError(f"the sandbox sent a malformed artifact: {exc}") from None
        total += len(data)
        if total > max_bytes:
            raise ChannelError(f"the sandbox sent more than {max_bytes} bytes of artifacts")
        unique = unique_name(name, names)  # at most MAX_ARTIFACT_FILES: a short walk
        kind = kind if kind in ("figure", "file") else "file"
        artifacts.append(Artifact(name=unique, kind=kind, data=data, mime_type=mime_type(unique)))
    return artifacts
