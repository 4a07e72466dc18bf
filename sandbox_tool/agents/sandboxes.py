"""The sandbox an agent run gets: a ``run_python`` tool over a new sandbox that sees the
run's files, and its closing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from sandbox_tool import ExecutionOptions, ImportPolicy, PythonSandbox
from sandbox_tool.engines import Engine
from sandbox_tool.tool import PythonTool

__all__ = ["Files", "build_tool", "close_tool", "file_map"]

Files = Sequence[Path] | Mapping[str, Path]
"""Host files the code may read: paths (seen under their own names) or name -> path."""


def file_map(files: Path | Files) -> dict[str, Path]:
    """``files`` as ``ExecutionOptions.files`` takes them (name -> host path)."""
    if isinstance(files, Path):
        return {files.name: files}
    if isinstance(files, Mapping):
        return dict(files)
    return {path.name: path for path in files}


def build_tool(
    files: Path | Files, *, engine: Engine | str = "auto", images: bool = True
) -> PythonTool:
    """A ``run_python`` tool on a new sandbox that sees ``files`` (read-only, in its
    working directory); close it with :func:`close_tool`."""
    options = ExecutionOptions(
        files=file_map(files),
        import_policy=ImportPolicy.data_science_whitelist(),
        timeout=30,
    )
    return PythonTool(PythonSandbox(engine, options=options), images=images)


async def close_tool(tool: PythonTool) -> None:
    """Close the sandbox of a tool made by :func:`build_tool` (stops its warm pool)."""
    await tool.aclose()
