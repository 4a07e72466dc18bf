"""A cell's answer: its report, the figures and files it made, and the usage so far
(stdlib only; the framed worker (:mod:`.cells`) and a batch scope's items
(:mod:`.scoped`) build theirs here)."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from typing import Literal, TypeVar, cast

from ..files import read_regular
from ..framing import encode_frame, write_all
from ..protocol import (
    MAX_ARTIFACT_FILES,
    AnswerFrame,
    ArtifactItem,
    Cell,
    IsolationSummary,
    ReadyFrame,
    RunnerErrorFrame,
    Usage,
    WorkerReport,
)

__all__ = ["answer_ready", "build_answer", "files_of", "usage"]

_T = TypeVar("_T")


def answer_ready(channel: int, isolation: IsolationSummary | None, start: Callable[[], _T]) -> _T:
    """Answer the request on ``channel``: ``start()`` (what the worker does with it before
    any cell), then the ready frame; if ``start`` fails, a ``runner_error`` frame and the
    end of this process (no user code has run)."""
    try:
        started = start()
    except BaseException as exc:  # noqa: BLE001 - reported to the host, then the end
        failed: RunnerErrorFrame = {"status": "runner_error", "message": repr(exc)}
        write_all(channel, encode_frame(failed))
        os._exit(71)
    ready: ReadyFrame = {"status": "ready", "isolation": isolation, "usage": usage()}
    write_all(channel, encode_frame(ready))
    return started


def files_of(top: str) -> dict[str, tuple[int, int]]:
    found = {}
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            found[os.path.relpath(path, top)] = (st.st_size, st.st_mtime_ns)
    return found


def _artifacts(
    figures: str, work: str, before: dict[str, tuple[int, int]], budget: int, keep: bool
) -> tuple[list[ArtifactItem], list[bytes], bool, dict[str, tuple[int, int]]]:
    """The cell's figures and changed files within ``budget`` (their items and contents);
    the figures are removed unless ``keep`` (a one-shot's stay for the host, in case the
    channel fails)."""
    out: list[ArtifactItem] = []
    contents: list[bytes] = []
    truncated = False
    candidates: list[tuple[str, str, Literal["figure", "file"]]] = [
        (name, os.path.join(figures, name), "figure")
        for name in sorted(os.listdir(figures), key=lambda n: (len(n), n))
    ]
    after = files_of(work)
    candidates += [
        (name, os.path.join(work, name), "file")
        for name, stamp in sorted(after.items())
        if before.get(name) != stamp
    ]
    for index, (name, path, kind) in enumerate(candidates):
        if index >= MAX_ARTIFACT_FILES:
            truncated = True
            break
        data = read_regular(path, budget)
        if kind == "figure" and not keep:
            os.unlink(path)
        if data is None:
            truncated = True
            continue
        budget -= len(data)
        out.append({"name": name, "kind": kind, "size": len(data)})
        contents.append(data)
    return out, contents, truncated, after


def usage() -> Usage:
    """CPU seconds and peak resident memory of this process and the children it reaped."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return {
        "cpu_seconds": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
        "maxrss_kb": max(own.ru_maxrss, kids.ru_maxrss),
    }


def build_answer(
    report: WorkerReport, cell: Cell, figures: str, work: str,
    files: dict[str, tuple[int, int]], *, keep: bool,
) -> tuple[AnswerFrame, list[bytes], dict[str, tuple[int, int]]]:  # fmt: skip
    """A cell's answer frame (its report, artifacts and usage), the artifacts' contents,
    and the work dir's files now (what the next cell's changes are measured against)."""
    answer = cast(AnswerFrame, dict(report))
    contents: list[bytes] = []
    try:
        answer["artifacts"], contents, answer["artifacts_truncated"], files = _artifacts(
            figures, work, files, int(cell["max_artifact_bytes"]), keep=keep
        )
    except BaseException as exc:  # noqa: BLE001 - the code may have broken os or io
        answer["artifacts"], answer["figure_error"] = [], f"artifacts lost: {exc!r}"
    answer["usage"] = usage()
    return answer, contents, files
