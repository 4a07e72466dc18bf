"""The tool's definition, independent of any framework: name, description, arguments.

Rendered for LangChain by :mod:`sandbox_tool.tool.langchain_tool` and for OpenAI by
:mod:`sandbox_tool.tool.openai_functions`.

>>> spec = ToolSpec(name="run_python", description="Run Python.")
>>> spec.parameters["required"]
['code']
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CODE_DESCRIPTION", "ArgumentsError", "ToolSpec", "parse_arguments"]

CODE_DESCRIPTION = (
    "The Python source to run, as plain code (no Markdown fences). End with an expression "
    "or set `result` to return a value."
)


def _parameters() -> dict[str, Any]:
    # Only `code`: every extra field is one more thing a model can get wrong, and
    # OpenAI's strict mode would make each of them required.
    return {
        "type": "object",
        "properties": {"code": {"type": "string", "description": CODE_DESCRIPTION}},
        "required": ["code"],
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class ToolSpec:
    """What a model is told about the tool. ``parameters`` is a JSON schema that also
    satisfies OpenAI's strict mode (every property required, no extra ones)."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=_parameters)


class ArgumentsError(ValueError):
    """The model's arguments for the tool were not usable; the message tells it why."""


_FENCE = re.compile(r"^\s*```[\w+-]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)


def parse_arguments(arguments: str | dict[str, Any] | None) -> str:
    """The ``code`` out of a tool call's arguments (a JSON text or a dict).

    Markdown fences around the code, which small models often add, are removed.

    >>> parse_arguments('{"code": "```python\\nprint(1)\\n```"}')
    'print(1)'
    """
    if isinstance(arguments, str):
        try:
            # strict=False: a raw line break inside the "code" string (small models
            # write them) is unambiguous, so take it rather than refuse the call
            arguments = json.loads(arguments, strict=False) if arguments.strip() else {}
        except ValueError as exc:
            raise ArgumentsError(f"the arguments are not valid JSON ({exc})") from exc
    if not isinstance(arguments, dict):
        raise ArgumentsError("the arguments must be a JSON object")
    code = arguments.get("code")
    if not isinstance(code, str) or not code.strip():
        got = ", ".join(sorted(arguments)) or "nothing"
        raise ArgumentsError(f'a "code" string is required (got: {got})')
    match = _FENCE.match(code)
    return match.group(1) if match else code
