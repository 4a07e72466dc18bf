"""The tool for OpenAI function calling: Chat Completions and the Responses API.

Needs no ``openai`` import: definitions and replies are plain dicts, and a tool call
may be an SDK object or a dict.

>>> functions = OpenAIFunctions(tool)                                     # doctest: +SKIP
>>> response = client.responses.create(model=m, input=items,
...                                    tools=functions.responses_tools())  # doctest: +SKIP
>>> for call in response.output:                                          # doctest: +SKIP
...     if call.type == "function_call":
...         items += [call, *(await functions.handle(call)).messages]

In Chat Completions a tool message carries text only, so plots follow it in a
user message; in the Responses API the ``function_call_output`` carries them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox_tool.errors import UsageError
from sandbox_tool.sandbox import run_sync
from sandbox_tool.tool.python_tool import PythonTool, ToolOutcome

__all__ = ["OpenAIFunctions", "ToolReply"]


@dataclass(frozen=True)
class ToolReply:
    """What answering one tool call gives."""

    messages: list[dict[str, Any]]
    """Items to append to the conversation (``messages`` or Responses ``input``)."""
    outcome: ToolOutcome
    """The tool's outcome: ``ok``, the text, the result and the plots."""
    call_id: str = ""
    """The id the model gave the call."""


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


class OpenAIFunctions:
    """Renders a :class:`PythonTool` as OpenAI function definitions and answers its calls.

    Plots go into the replies unless the tool was made with ``images=False`` (for
    text-only models); its text lists them either way.
    """

    def __init__(self, tool: PythonTool, *, strict: bool = True) -> None:
        self.tool = tool
        self.strict = strict

    def chat_completions_tools(self) -> list[dict[str, Any]]:
        """``tools=`` for ``client.chat.completions.create`` (``install_packages`` too when
        the tool has installs on)."""
        return [
            {
                "type": "function",
                "function": {
                    "name": spec.name,
                    "description": spec.description,
                    "parameters": spec.parameters,
                    "strict": self.strict,
                },
            }
            for spec in self.tool.specs
        ]

    def responses_tools(self) -> list[dict[str, Any]]:
        """``tools=`` for ``client.responses.create``."""
        return [
            {
                "type": "function",
                "name": spec.name,
                "description": spec.description,
                "parameters": spec.parameters,
                "strict": self.strict,
            }
            for spec in self.tool.specs
        ]

    async def handle(self, call: Any) -> ToolReply:
        """Run one tool call, from Chat Completions (``message.tool_calls[i]``) or the
        Responses API (an output item of type ``function_call``), and return the items
        to append to the conversation."""
        if _get(call, "type") == "function_call":
            call_id = _get(call, "call_id")
            outcome = await self._outcome(_get(call, "name"), _get(call, "arguments"))
            return ToolReply(self._responses_items(call_id, outcome), outcome, call_id)
        function = _get(call, "function")
        if function is None:
            raise UsageError(
                "not an OpenAI tool call: expected a Chat Completions tool call (with "
                "`function`) or a Responses `function_call` item"
            )
        call_id = _get(call, "id")
        outcome = await self._outcome(_get(function, "name"), _get(function, "arguments"))
        return ToolReply(self._chat_messages(call_id, outcome), outcome, call_id)

    def handle_sync(self, call: Any) -> ToolReply:
        """:meth:`handle` for synchronous code."""
        return run_sync(self.handle(call))

    async def _outcome(self, name: Any, arguments: Any) -> ToolOutcome:
        if self.tool.installer is not None:
            return await self.tool.call(str(name), arguments)
        if name != self.tool.name:
            text = f"There is no tool named {name!r}; the only tool is {self.tool.name}."
            return ToolOutcome(ok=False, text=text)
        return await self.tool.run_arguments(arguments)

    def _chat_messages(self, call_id: str, outcome: ToolOutcome) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [
            {"role": "tool", "tool_call_id": call_id, "content": outcome.text}
        ]
        urls = outcome.image_data_urls() if self.tool.images else []
        if urls:
            names = ", ".join(a.name for a in outcome.images)
            content: list[dict[str, Any]] = [
                {"type": "text", "text": f"The plots from the {self.tool.name} call: {names}."}
            ]
            content += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
            messages.append({"role": "user", "content": content})
        return messages

    def _responses_items(self, call_id: str, outcome: ToolOutcome) -> list[dict[str, Any]]:
        urls = outcome.image_data_urls() if self.tool.images else []
        output: str | list[dict[str, Any]] = outcome.text
        if urls:
            output = [{"type": "input_text", "text": outcome.text}]
            output += [{"type": "input_image", "image_url": url, "detail": "auto"} for url in urls]
        return [{"type": "function_call_output", "call_id": call_id, "output": output}]
