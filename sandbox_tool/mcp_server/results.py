"""The tool as MCP sees it: its definition and the results of its calls.

The name, description and input schema are the tool's one spec (what the OpenAI and
LangChain renderings use too); the result's text is the tool's model-facing message,
never restated here.
"""

from __future__ import annotations

import base64
from typing import Any

import mcp_types as types

from sandbox_tool.tool import PythonTool, ToolOutcome

__all__ = ["OUTPUT_SCHEMA", "call_result", "structured", "tool_definition"]

_NULLABLE_NUMBER = {"type": ["number", "null"]}

#: The structured content of every call: the CLI's ``--json`` shape.
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean", "description": "whether the code ran to completion"},
        "engine": {"type": "string"},
        "result": {"description": "the value of `result` or of the last expression, as JSON"},
        "stdout": {"type": "string"},
        "stderr": {"type": "string"},
        "error": {
            "type": ["object", "null"],
            "description": "the error's type, message and details, when the call failed",
        },
        "artifacts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "mime_type": {"type": "string"},
                    "size": {"type": "integer"},
                },
                "required": ["name", "mime_type", "size"],
            },
        },
        "duration_ms": _NULLABLE_NUMBER,
        "peak_memory_mb": _NULLABLE_NUMBER,
    },
    "required": ["ok", "result", "stdout", "stderr", "error", "artifacts"],
}


def tool_definition(tool: PythonTool) -> types.Tool:
    """``tool`` as ``tools/list`` shows it."""
    spec = tool.spec
    return types.Tool(
        name=spec.name,
        title="Run Python",
        description=spec.description,
        input_schema=spec.parameters,
        output_schema=OUTPUT_SCHEMA,
        annotations=types.ToolAnnotations(
            title="Run Python",
            read_only_hint=False,
            # what it writes stays in its sandbox
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=tool.options.network,
        ),
    )


def structured(outcome: ToolOutcome, engine: str, stdout: str, stderr: str) -> dict[str, Any]:
    """The JSON result (``sandbox-tool run --json``'s shape). ``stdout`` and ``stderr`` are
    what was streamed, for a failed call (a result carries its own)."""
    if outcome.result is not None:
        return outcome.result.to_json_dict()
    return {
        "ok": False,
        "engine": engine,
        "result": None,
        "stdout": stdout,
        "stderr": stderr,
        "error": outcome.error or {"type": "InvalidArguments", "message": outcome.text},
        "artifacts": [
            {"name": a.name, "mime_type": a.mime_type, "size": a.size} for a in outcome.artifacts
        ],
        "duration_ms": None,
        "peak_memory_mb": None,
    }


def call_result(
    outcome: ToolOutcome, *, images: bool, structured_content: dict[str, Any]
) -> types.CallToolResult:
    """A call's result: the model's message, then every image the code made (PNG figures
    and image files, base64), and the JSON result; a failure is ``isError`` with the
    same message, never a protocol error."""
    content: list[types.TextContent | types.ImageContent] = [
        types.TextContent(type="text", text=outcome.text)
    ]
    if images:
        content += [
            types.ImageContent(
                type="image", data=base64.b64encode(a.data).decode("ascii"), mime_type=a.mime_type
            )
            for a in outcome.images
        ]
    return types.CallToolResult(
        content=list(content), structured_content=structured_content, is_error=not outcome.ok
    )
