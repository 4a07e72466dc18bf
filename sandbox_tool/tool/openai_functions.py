"""The tool for OpenAI function calling: Chat Completions and the Responses API.

Needs no ``openai`` import: definitions and replies are plain dicts, and a tool call
may be an SDK object or a dict. Answer all the tool calls of one model turn with
:meth:`OpenAIFunctions.handle_turn` and append its ``messages``:

>>> functions = OpenAIFunctions(tool)                                      # doctest: +SKIP
>>> message = (await client.chat.completions.create(model=m, messages=messages,
...            tools=functions.chat_completions_tools())).choices[0].message  # doctest: +SKIP
>>> messages.append(message)                                                # doctest: +SKIP
>>> messages += (await functions.handle_turn(message.tool_calls)).messages  # doctest: +SKIP

Where plots go: in Chat Completions a tool message carries text only, so the plots of
the whole turn follow its group of tool messages in one user message (a user message
between two tool messages is refused); in the Responses API each
``function_call_output`` carries its own. ``PythonTool(images=False)`` (for a model or
server that takes no images) sends none, and the text says they are not shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox_tool.errors import UsageError
from sandbox_tool.sandbox import run_sync
from sandbox_tool.tool.messages import plots_caption
from sandbox_tool.tool.python_tool import PythonTool, ToolOutcome

__all__ = ["OpenAIFunctions", "ToolReply", "TurnReply"]


@dataclass(frozen=True)
class ToolReply:
    """What answering one tool call gives."""

    messages: list[dict[str, Any]]
    """Items to append to the conversation (``messages`` or Responses ``input``) when
    this call is the only one of its turn; in a turn of several calls append
    :attr:`TurnReply.messages` instead (Chat Completions wants every tool message
    before the plots)."""
    outcome: ToolOutcome
    """The tool's outcome: ``ok``, the text, the result and the plots."""
    call_id: str = ""
    """The id the model gave the call."""


@dataclass(frozen=True)
class TurnReply:
    """What answering all the tool calls of one model turn gives."""

    messages: list[dict[str, Any]]
    """Items to append to the conversation, in order: Chat Completions: one tool
    message per call, then one user message with every plot of the turn; Responses:
    one ``function_call_output`` per call, its plots inside."""
    replies: list[ToolReply]
    """Each call's reply, in call order (their ``outcome`` and ``call_id``)."""

    @property
    def outcomes(self) -> list[ToolOutcome]:
        """The tool's outcome of each call, in call order."""
        return [reply.outcome for reply in self.replies]


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
        to append to the conversation when it is the turn's only call."""
        return (await self.handle_turn([call])).replies[0]

    def handle_sync(self, call: Any) -> ToolReply:
        """:meth:`handle` for synchronous code."""
        return run_sync(self.handle(call))

    async def handle_turn(self, calls: Any) -> TurnReply:
        """Run every tool call of one model turn, in order (a conversation's calls share
        one interpreter, so the second may use what the first defined), and return the
        items to append after the model's message: see :attr:`TurnReply.messages`.

        ``calls``: ``message.tool_calls`` (Chat Completions, ``None`` for none) or the
        Responses output items (items of other types are skipped)."""
        replies: list[ToolReply] = []
        for call in calls or []:
            if _get(call, "type") == "function_call":
                call_id = _get(call, "call_id")
                outcome = await self._outcome(_get(call, "name"), _get(call, "arguments"))
                replies.append(ToolReply(self._responses_items(call_id, outcome), outcome, call_id))
                continue
            if _get(call, "type") in ("message", "reasoning", "output_text"):
                continue  # the other items of a Responses output
            function = _get(call, "function") or _get(call, "custom")  # custom: not ours
            if function is None:
                raise UsageError(
                    "not an OpenAI tool call: expected a Chat Completions tool call (with "
                    "`function`) or a Responses `function_call` item"
                )
            call_id = _get(call, "id")
            arguments = _get(function, "arguments") or _get(function, "input")
            outcome = await self._outcome(_get(function, "name"), arguments)
            tool_message = {"role": "tool", "tool_call_id": call_id, "content": outcome.text}
            alone = [tool_message, *self._chat_plots([outcome])]
            replies.append(ToolReply(alone, outcome, call_id))
        # Chat Completions: every tool message first, then the turn's plots in one message
        chat = [r for r in replies if r.messages[0].get("role") == "tool"]
        messages = [m for r in replies for m in (r.messages[:1] if r in chat else r.messages)]
        return TurnReply(messages + self._chat_plots([r.outcome for r in chat]), replies)

    def handle_turn_sync(self, calls: Any) -> TurnReply:
        """:meth:`handle_turn` for synchronous code."""
        return run_sync(self.handle_turn(calls))

    async def _outcome(self, name: Any, arguments: Any) -> ToolOutcome:
        if self.tool.installer is not None:
            return await self.tool.call(str(name), arguments)
        if name != self.tool.name:
            text = f"There is no tool named {name!r}; the only tool is {self.tool.name}."
            return ToolOutcome(ok=False, text=text)
        return await self.tool.run_arguments(arguments)

    def _chat_plots(self, outcomes: list[ToolOutcome]) -> list[dict[str, Any]]:
        """The user message with the plots of a turn's calls (none without plots)."""
        if not self.tool.images or not any(o.images for o in outcomes):
            return []
        caption = plots_caption(self.tool.name, [[a.name for a in o.images] for o in outcomes])
        content: list[dict[str, Any]] = [{"type": "text", "text": caption}]
        for outcome in outcomes:
            urls = outcome.image_data_urls()
            content += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
        return [{"role": "user", "content": content}]

    def _responses_items(self, call_id: str, outcome: ToolOutcome) -> list[dict[str, Any]]:
        urls = outcome.image_data_urls() if self.tool.images else []
        output: str | list[dict[str, Any]] = outcome.text
        if urls:
            output = [{"type": "input_text", "text": outcome.text}]
            output += [{"type": "input_image", "image_url": url, "detail": "auto"} for url in urls]
        return [{"type": "function_call_output", "call_id": call_id, "output": output}]
