"""What an execution returns."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Artifact", "ExecutionResult", "safe_artifact_name", "write_artifacts"]


def safe_artifact_name(name: str) -> str:
    """``name`` as a plain relative path that stays inside any directory it is joined to:
    no root, no ``..`` or ``.`` parts, no backslashes or control characters.

    >>> safe_artifact_name("../../etc/cron.d/evil")
    'etc/cron.d/evil'
    """
    cleaned = "".join(ch for ch in name.replace("\\", "/") if ch.isprintable())
    parts = [p for p in PurePosixPath(cleaned).parts if p not in ("/", ".", "..")]
    return "/".join(p for p in parts if p.strip(" ."))[:255] or "artifact"


def write_artifacts(directory: Path, artifacts: list[Artifact]) -> dict[str, Path]:
    """Write each artifact under ``directory`` (created if missing) by its safe name; a
    name that would still land outside it (through a symlink already there) is refused
    with ``ValueError``. Returns where each artifact's name was written."""
    top = directory.resolve()
    top.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for art in artifacts:
        dest = (top / safe_artifact_name(art.name)).resolve()
        if not dest.is_relative_to(top) or dest == top:
            raise ValueError(f"artifact {art.name!r} would be written outside {directory}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(art.data)
        paths[art.name] = dest
    return paths


class Artifact(BaseModel):
    """A file the code produced: an open matplotlib figure (as PNG) or a file it wrote."""

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    name: str
    """File name, relative to the working directory (``chart.png``, ``out/summary.csv``);
    captured figures are named ``figure-1.png``, ``figure-2.png``..."""
    mime_type: str
    """MIME type guessed from the name (``image/png``, ``text/csv``...)."""
    data: bytes = Field(repr=False)
    """The file's content."""
    kind: str = "file"
    """``figure`` for a captured matplotlib figure, ``file`` for a file the code wrote."""

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)

    @property
    def is_image(self) -> bool:
        """Whether a model that takes images can be shown this artifact."""
        return self.mime_type.startswith("image/")


class ExecutionResult(BaseModel):
    """The outcome of an execution that completed.

    ``result`` is the JSON value of the variable ``result`` when the code set
    one, or else of the last expression statement (as a notebook shows it).
    numpy scalars and arrays become numbers and lists; a pandas ``Series`` a
    ``{index: value}`` object; a ``DataFrame`` ``{"columns": [...], "index": [...],
    "data": [[...]]}``; anything else its ``repr``. ``result_repr`` is the text a
    notebook would print for it.
    """

    model_config = ConfigDict(frozen=True)

    result: Any = None
    """JSON value of ``result`` (or of the last expression)."""
    result_repr: str | None = None
    """Human-readable text of the value (``repr``, or a DataFrame's table)."""
    result_type: str | None = None
    """Qualified type name of the value (``int``, ``pandas.DataFrame``...)."""
    stdout: str = ""
    stderr: str = ""
    artifacts: list[Artifact] = Field(default_factory=list)
    duration_ms: float = 0.0
    """Wall-clock time of the execution as the host saw it, process start included."""
    peak_memory_mb: float | None = None
    """Peak resident memory of the code's process, where the engine can measure it."""
    engine: str = ""
    """Name of the engine that ran the code."""
    result_truncated: bool = False
    """The value was larger than ``max_output_bytes``; ``result`` holds a shortened repr."""
    artifacts_truncated: bool = False
    """Some files were left out (too many or past ``max_artifact_bytes``)."""
    isolation: dict[str, Any] | None = None
    """The isolation layers the code ran under, as the sandbox reported them before any
    code ran (``mode``, namespaces, private root, uid, capabilities, landlock, seccomp;
    gVisor's ``kernel`` and ``runsc``); every runner engine reports them, the native
    engine its filter. None only for an engine that runs nothing (a test double)."""
    degraded: list[str] = Field(default_factory=list)
    """Limits or isolation layers the engine could not apply to this execution, each
    with the reason (e.g. ``"max_processes: RLIMIT_NPROC is ignored for root"``)."""

    def to_json_dict(self, *, artifact_paths: dict[str, str] | None = None) -> dict[str, Any]:
        """The CLI's JSON shape for a success (artifacts without their bytes)."""
        return {
            "ok": True,
            "engine": self.engine,
            "result": self.result,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": None,
            "artifacts": _artifact_entries(self.artifacts, artifact_paths),
            "duration_ms": round(self.duration_ms, 3),
            "peak_memory_mb": self.peak_memory_mb,
            "isolation": self.isolation,
            "degraded": self.degraded,
        }


def _artifact_entries(
    artifacts: list[Artifact], paths: dict[str, str] | None
) -> list[dict[str, Any]]:
    entries = []
    for art in artifacts:
        entry: dict[str, Any] = {"name": art.name, "mime_type": art.mime_type, "size": art.size}
        if paths is not None and art.name in paths:
            entry["path"] = paths[art.name]
        entries.append(entry)
    return entries


def error_json_dict(error: Any, *, artifact_paths: dict[str, str] | None = None) -> dict[str, Any]:
    """The CLI's JSON shape for a :class:`~sandbox_tool.errors.SandboxError`."""
    return {
        "ok": False,
        "engine": error.engine or "",
        "result": None,
        "stdout": error.stdout,
        "stderr": error.stderr,
        "error": error.to_dict(),
        "artifacts": _artifact_entries(error.artifacts, artifact_paths),
        "duration_ms": round(error.duration_ms or 0.0, 3),
        "peak_memory_mb": error.peak_memory_mb,
        "isolation": error.isolation,
        "degraded": list(error.degraded),
    }
