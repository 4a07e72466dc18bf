"""Several byte streams over one: how a runner's four channels cross a microVM's exec.

A runner talks to the host over four channels (its framed socket, stdout, stderr and
its supervisor's control pipe). Inside a microVM there are no host file descriptors:
the VM's exec gives one process a stdin, a stdout and a stderr. So both ends multiplex:
the host's relay (``sandbox_tool/engines/vm/relay.py``) and the runner's guest role
(:mod:`.roles.guest`) exchange tagged frames, each a tag byte, a 4-byte big-endian
length and that many bytes::

    host -> guest   S start (JSON)   F file header (JSON)   B file bytes
                    G go              C channel bytes        T stop (SIGTERM)   K kill
    guest -> host   C channel bytes   O stdout   E stderr    R control pipe
                    F file header     B file bytes           X the end (JSON)   D diagnostic

An empty ``C``, ``O``, ``E`` or ``R`` frame is the end of that stream. A file is one
``F`` frame (``{"path": "work/x.csv", "size": n}``) then ``B`` frames holding exactly
``n`` bytes. Stdlib only: it runs in the guest, and the host's relay imports it without
importing sandbox_tool.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Collection, Iterator
from typing import Any

from .framing import read_exactly, write_all
from .protocol import Paths

__all__ = [
    "CHUNK",
    "GUEST_BOOTSTRAP",
    "HEADER",
    "MAX_PAYLOAD",
    "STREAMS",
    "TO_GUEST",
    "TO_HOST",
    "Decoder",
    "FileSink",
    "MuxError",
    "chunks",
    "encode",
    "encode_json",
    "file_frames",
    "inside_workspace",
    "read",
    "write",
]

GUEST_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from runner.roles.guest import main; main(sys.argv[1], sys.argv[2])"
)
"""Starts the guest's end (:mod:`.roles.guest`): ``python3 -I -B -c GUEST_BOOTSTRAP <dir
holding the runner package> run`` (or ``probe``)."""

HEADER = struct.Struct("!cI")
"""A frame's tag and the length of its payload."""
CHUNK = 1 << 16
"""The largest payload a sender puts in one data frame."""
MAX_PAYLOAD = 1 << 20
"""The largest payload a receiver accepts (a ``S`` frame carries the runner's setup)."""

START, FILE, BYTES, GO, CHANNEL, STOP, KILL = b"S", b"F", b"B", b"G", b"C", b"T", b"K"
STDOUT, STDERR, CONTROL, EXIT, DIAGNOSTIC = b"O", b"E", b"R", b"X", b"D"
STREAMS = (CHANNEL, STDOUT, STDERR, CONTROL)
"""The tags of the runner's four streams."""
TO_GUEST = frozenset({START, FILE, BYTES, GO, CHANNEL, STOP, KILL})
TO_HOST = frozenset({*STREAMS, FILE, BYTES, EXIT, DIAGNOSTIC})


class MuxError(ValueError):
    """The other end broke the multiplexing protocol."""


def encode(tag: bytes, payload: bytes = b"") -> bytes:
    """One frame."""
    return HEADER.pack(tag, len(payload)) + payload


def encode_json(tag: bytes, value: Any) -> bytes:
    return encode(tag, json.dumps(value).encode())


def chunks(tag: bytes, data: bytes) -> Iterator[bytes]:
    """``data`` as frames of at most :data:`CHUNK` bytes (none for empty data: an empty
    frame would mean the end of the stream)."""
    for start in range(0, len(data), CHUNK):
        yield encode(tag, data[start : start + CHUNK])


def file_frames(path: str, data: bytes) -> Iterator[bytes]:
    """A file's header frame and its bytes."""
    yield encode_json(FILE, {"path": path, "size": len(data)})
    yield from chunks(BYTES, data)


class Decoder:
    """Frames out of a byte stream read in arbitrary pieces. :meth:`feed` returns the
    complete frames so far; a frame announcing more than ``max_payload`` bytes, or a tag
    outside ``tags``, raises :class:`MuxError` before its payload is buffered."""

    def __init__(self, tags: Collection[bytes], max_payload: int = MAX_PAYLOAD) -> None:
        self.tags = frozenset(tags)
        self.max_payload = max_payload
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER.size:
            tag, size = HEADER.unpack_from(self._buffer)
            if tag not in self.tags:
                raise MuxError(f"unknown frame tag {tag!r}")
            if size > self.max_payload:
                raise MuxError(f"a frame of {size} bytes (at most {self.max_payload})")
            end = HEADER.size + size
            if len(self._buffer) < end:
                break
            frames.append((tag, bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back (at the end of the stream: a cut frame)."""
        return len(self._buffer)


def read(fd: int, max_payload: int = MAX_PAYLOAD) -> tuple[bytes, bytes] | None:
    """The next frame from a blocking ``fd``, or None at its end."""
    header = read_exactly(fd, HEADER.size)
    if header is None:
        return None
    tag, size = HEADER.unpack(header)
    if size > max_payload:
        raise MuxError(f"a frame of {size} bytes (at most {max_payload})")
    payload = read_exactly(fd, size) if size else b""
    if payload is None:
        return None
    return tag, payload


def write(fd: int, tag: bytes, payload: bytes = b"") -> None:
    write_all(fd, encode(tag, payload))


def inside_workspace(paths: Paths, rel: str) -> str | None:
    """``work/x`` or ``meta/x`` as a path in the execution's dirs; None for anything else
    (absolute, ``..``, another dir)."""
    top, _, rest = rel.partition("/")
    parts = rest.split("/")
    if top not in ("work", "meta") or not rest or any(p in ("", ".", "..") for p in parts):
        return None
    return os.path.join(paths["work"] if top == "work" else paths["meta"], *parts)


class FileSink:
    """Receives files sent as ``F`` + ``B`` frames: :meth:`header` opens one (through
    ``open_file``, which says where it goes or None to drop it) and :meth:`data` writes its
    bytes; the file is closed once all of them came."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._left = 0
        self._dropping = False

    def header(self, payload: bytes, open_file: Any) -> None:
        if self._left:
            raise MuxError("a file header inside another file")
        try:
            head = json.loads(payload)
            path, size = str(head["path"]), int(head["size"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MuxError(f"a malformed file header: {exc!r}") from None
        if size < 0:
            raise MuxError("a file of negative size")
        self._fd = open_file(path, size)
        self._dropping = self._fd is None
        self._left = size
        if not size:
            self._close()

    def data(self, payload: bytes) -> None:
        if len(payload) > self._left:
            raise MuxError("more file bytes than its header announced")
        self._left -= len(payload)
        if self._fd is not None:
            write_all(self._fd, payload)
        if not self._left:
            self._close()

    @property
    def open(self) -> bool:
        """Inside a file whose bytes have not all come."""
        return self._left > 0

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._dropping = False
