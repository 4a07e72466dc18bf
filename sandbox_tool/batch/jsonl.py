"""JSON lines in and out: the input read lazily with bad lines reported by number, the
output appended one complete line at a time and resumable.

An output line is written by one ``write`` of the whole line, so a run stopped by a
signal leaves only complete lines; a run killed outright may leave a partial last
line, which :meth:`OutputFile.open` removes before it resumes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sandbox_tool.batch.items import BatchItem, problems_text
from sandbox_tool.errors import UsageError

__all__ = ["BadLine", "OutputFile", "count_lines", "id_key", "json_objects", "read_items"]

#: ``on_bad(line_number, reason)``: told of each input line that is skipped.
BadLine = Callable[[int, str], None]


def id_key(value: Any) -> str:
    """An id as a set key that keeps ``1`` and ``"1"`` apart."""
    return json.dumps(value)


def count_lines(path: Path) -> int:
    """The non-blank lines of ``path``, counted without parsing them."""
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def json_objects(lines: Iterable[str], on_bad: BadLine, what: str) -> Iterator[tuple[int, Any]]:
    """(line number, object) for each non-blank line that is a JSON object; the others
    go to ``on_bad``."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            on_bad(number, f"not JSON ({exc})")
            continue
        if not isinstance(data, dict):
            on_bad(number, f"{what} is a JSON object, not {type(data).__name__}")
            continue
        yield number, data


def read_items(
    lines: Iterable[str], on_bad: BadLine, skip: set[str] | None = None
) -> Iterator[BatchItem]:
    """The items of a JSONL stream, lazily. Each line is an object with ``id`` (str or
    int), ``code`` and optionally ``inputs``, ``files`` and ``options``; a line that is
    not (or repeats an id) goes to ``on_bad`` and is skipped; ids in ``skip`` (already
    done) are passed over."""
    seen: set[str] = set()
    for number, data in json_objects(lines, on_bad, "an item"):
        try:
            item = BatchItem.model_validate(data)
        except ValidationError as exc:
            on_bad(number, problems_text(exc))
            continue
        if item.id is None:
            on_bad(number, "'id' is missing: every line needs one (a str or an int)")
            continue
        key = id_key(item.id)
        if key in seen:
            on_bad(number, f"id {item.id!r} repeats an earlier line's")
            continue
        seen.add(key)
        if skip is None or key not in skip:
            yield item


class OutputFile:
    """An output file opened for appending whole lines (see :meth:`open`)."""

    def __init__(self, fd: int, done: set[str], repaired: bool) -> None:
        self._fd = fd
        #: The keys of the lines already there (resuming).
        self.done = done
        #: A partial last line was cut off before resuming.
        self.repaired = repaired
        self.written = 0

    @classmethod
    def open(
        cls, path: Path, *, resume: bool, overwrite: bool, key: Callable[[dict[str, Any]], str]
    ) -> OutputFile:
        """Open ``path``. With ``resume`` the complete lines already there are kept and
        their ``key`` recorded in :attr:`done`; an existing file is otherwise refused
        unless ``overwrite``."""
        exists = path.exists() and path.stat().st_size > 0
        if exists and not (resume or overwrite):
            raise UsageError(
                f"{path} exists: add --resume to skip the items it already has, or "
                "--overwrite to start again"
            )
        done: set[str] = set()
        repaired = False
        if exists and resume:
            done, keep = _complete_lines(path, key)
            if keep < path.stat().st_size:
                os.truncate(path, keep)
                repaired = True
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if resume else os.O_TRUNC)
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise UsageError(f"cannot open the output {path}: {exc}") from exc
        return cls(fd, done, repaired)

    def write(self, line: dict[str, Any]) -> None:
        """Append ``line`` whole (one ``write`` call per line)."""
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self.written += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _complete_lines(path: Path, key: Callable[[dict[str, Any]], str]) -> tuple[set[str], int]:
    """The keys of the complete lines of ``path`` and the offset where they end (what
    follows is a line cut short by a kill)."""
    done: set[str] = set()
    end = 0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                data = json.loads(raw)
                done.add(key(data))
            except (ValueError, KeyError, TypeError):
                break  # a line we did not write completely: everything after it is redone
            end += len(raw)
    return done, end
