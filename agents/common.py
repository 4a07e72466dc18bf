"""What every agent loop shares besides the turn loop: the prompt, the key, the tool.

The turn loop itself is :mod:`agents.loop`, its record :mod:`agents.run`, the command
line :mod:`agents.cli`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from agents.loop import ToolChoice, ToolChoicePolicy, tool_choice
from agents.run import AgentRun
from sandbox_tool import ExecutionOptions, ImportPolicy, PythonSandbox
from sandbox_tool.engines import Engine
from sandbox_tool.tool import PythonTool

__all__ = [
    "AgentRun",
    "ToolChoice",
    "ToolChoicePolicy",
    "api_key",
    "build_tool",
    "close_tool",
    "system_prompt",
    "tool_choice",
]

Files = Sequence[Path] | Mapping[str, Path]
"""Host files the code may read: paths (seen under their own names) or name -> path."""


def system_prompt(file_names: str | Sequence[str]) -> str:
    """The instructions of a data-analysis task on these files (in the working directory)."""
    names = [file_names] if isinstance(file_names, str) else list(file_names)
    if len(names) == 1 and names[0].endswith(".csv"):
        (csv_name,) = names
        return (
            "You are a careful data analyst. Answer the user's question about the CSV file "
            f"'{csv_name}' (in the working directory) by running Python with the run_python "
            "tool: load it with pandas.read_csv('" + csv_name + "'). Look at the data before "
            "you compute. When you know the answer, reply with a short plain-text answer."
        )
    where = (
        "The files " + ", ".join(f"'{n}'" for n in names) + " are in the working directory. "
        if names
        else ""
    )
    return (
        "You are a careful data analyst. Answer the user's question by running Python with "
        f"the run_python tool. {where}Look at the data before you compute. When you know "
        "the answer, reply with a short plain-text answer."
    )


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
    if isinstance(tool.runner, PythonSandbox):
        await tool.runner.aclose()


def api_key(base_url: str | None) -> str | None:
    """The key to use: OPENAI_API_KEY, or a placeholder for a local server that needs none."""
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    return "not-needed" if base_url else None
