"""The host's side of a warm runner's framed channel (see :mod:`sandbox_tool.runner.session`).

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

from sandbox_tool.engines.workspace import mime_type
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import Artifact
from sandbox_tool.runner.session import encode_frame

__all__ = [
    "ChannelError",
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
        header = await reader.readexactly(4)
        size = int.from_bytes(header, "big")
        if size > limit:
            raise ChannelError(f"the sandbox sent a frame of {size} bytes (at most {limit})")
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
    try:
        frame = json.loads(body)
    except ValueError as exc:
        raise ChannelError(f"the sandbox sent a frame that is not JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise ChannelError("the sandbox sent a frame that is not a JSON object")
    return frame


async def read_until_marker(
    reader: asyncio.StreamReader, marker: bytes, sink: bytearray, budget: list[int]
) -> bool:
    """Append ``reader``'s data to ``sink`` up to ``marker`` (dropped); True if it came,
    False at the end of the stream. Raises :class:`OutputFlood` past ``budget[0]`` bytes
    (shared by the streams of one cell)."""
    while True:
        chunk = await reader.read(1 << 16)
        if not chunk:
            return False
        before = len(sink)
        sink += chunk
        at = sink.find(marker, max(0, before - len(marker)))
        if at >= 0:
            del sink[at:]  # what came after the marker is not the cell's
        budget[0] -= len(sink) - before
        if budget[0] < 0:
            raise OutputFlood
        if at >= 0:
            return True


def artifacts_from_report(report: dict[str, Any]) -> list[Artifact]:
    """The artifacts of an answer frame (figures, then files), with unique names."""
    artifacts: list[Artifact] = []
    names: set[str] = set()
    for item in report.get("artifacts") or []:
        try:
            name, kind = str(item["name"]), str(item["kind"])
            data = base64.b64decode(item["data"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ChannelError(f"the sandbox sent a malformed artifact: {exc}") from None
        while name in names:
            name = f"_{name}"
        names.add(name)
        kind = kind if kind in ("figure", "file") else "file"
        artifacts.append(Artifact(name=name, kind=kind, data=data, mime_type=mime_type(name)))
    return artifacts
