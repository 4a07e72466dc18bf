"""Length-prefixed JSON frames over a file descriptor, and writing all of a buffer.

A frame is a 4-byte big-endian length (:data:`HEADER`) followed by that many bytes of
JSON. The runner reads its channel with :func:`read_frame` and answers with
:func:`encode_frame` and :func:`write_all`; the host's asyncio side
(``sandbox_tool.engines.channel``) uses the same header and encoding. Stdlib only, and
light: the host imports this module too.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from typing import Any

__all__ = ["HEADER", "MAX_FRAME", "encode_frame", "read_exactly", "read_frame", "write_all"]

HEADER = struct.Struct("!I")
"""A frame's length, before its body."""
MAX_FRAME = 256 << 20
"""The largest frame the runner reads (the host caps what it reads per frame itself)."""

# Bound now: the code may replace module attributes (json.dumps = None, os.write = None)
# before its answer is sent.
_dumps, _loads = json.dumps, json.loads
_read, _write = os.read, os.write


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a pipe or socket may take it in several writes)."""
    view = memoryview(data)
    while view:
        view = view[_write(fd, view) :]


def read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd``, or None if it ends first."""
    chunks, left = [], size
    while left:
        chunk = _read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> Any:
    """The next frame's JSON value, or None at the end of the channel; ValueError if it
    claims more than :data:`MAX_FRAME` bytes or is not JSON. The caller says what type it
    expects (a :mod:`.protocol` message)."""
    header = read_exactly(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    body = read_exactly(fd, size)
    if body is None:
        return None
    return _loads(body)


def encode_frame(frame: Mapping[str, Any]) -> bytes:
    """``frame`` as JSON behind its length."""
    body = _dumps(frame).encode()
    return HEADER.pack(len(body)) + body
