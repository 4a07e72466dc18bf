"""Reading the files the code wrote, never through a link it planted (stdlib only)."""

from __future__ import annotations

import os
import stat

__all__ = ["read_regular"]


def read_regular(path: str, limit: int) -> bytes | None:
    """A regular file's content, never through a symlink (the code controls the files);
    None if it is not one or holds more than ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, 1 << 20)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks) if size <= limit else None
    finally:
        os.close(fd)
