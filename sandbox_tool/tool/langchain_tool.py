"""The tool as a LangChain ``BaseTool`` (needs ``pip install 'sandbox-tool[langchain]'``).

``response_format="content_and_artifact"``: a tool call gives a ``ToolMessage`` whose
content is the text for the model and whose ``artifact`` is the
:class:`~sandbox_tool.tool.ToolOutcome` (result, error, plot PNGs).

>>> tool = LangChainPythonTool.from_tool(PythonTool(PythonSandbox("native")))  # doctest: +SKIP
>>> model = chat_model.bind_tools([tool])                                       # doctest: +SKIP
>>> message = tool.invoke(ai_message.tool_calls[0])                             # doctest: +SKIP
>>> message.artifact.images                                                     # doctest: +SKIP
[Artifact(name='figure-1.png', mime_type='image/png', kind='figure')]

While the code runs, what it prints goes to the run's callbacks: ``on_text`` and the
custom event :data:`OUTPUT_EVENT` (``astream_events`` shows it).
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForToolRun,
        CallbackManagerForToolRun,
    )
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import ArgsSchema, BaseTool
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "the LangChain tool needs langchain-core: pip install 'sandbox-tool[langchain]'"
    ) from exc

from sandbox_tool.sandbox import run_sync
from sandbox_tool.streaming import OnOutput, Output
from sandbox_tool.tool.python_tool import PythonTool, ToolOutcome
from sandbox_tool.tool.spec import CODE_DESCRIPTION, ArgumentsError, parse_arguments

__all__ = ["OUTPUT_EVENT", "LangChainPythonTool", "RunPythonArgs", "images_message"]


class RunPythonArgs(BaseModel):
    """Arguments of ``run_python``."""

    code: str = Field(description=CODE_DESCRIPTION)


class LangChainPythonTool(BaseTool):
    """``run_python`` for LangChain chat models (``bind_tools``), sync and async."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "run_python"
    description: str = ""
    args_schema: ArgsSchema | None = RunPythonArgs
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    python_tool: PythonTool
    """The framework-neutral tool that runs the code and writes the messages."""

    @classmethod
    def from_tool(cls, tool: PythonTool) -> LangChainPythonTool:
        """Wrap ``tool``; name and description come from its spec."""
        return cls(
            name=tool.spec.name,
            description=tool.spec.description,
            python_tool=tool,
            handle_validation_error=lambda exc: tool.arguments_message(_brief(exc)),
        )

    async def _arun(
        self, code: str, run_manager: AsyncCallbackManagerForToolRun | None = None
    ) -> tuple[str, ToolOutcome]:
        return await self._call(code, _forward_async(run_manager))

    def _run(
        self, code: str, run_manager: CallbackManagerForToolRun | None = None
    ) -> tuple[str, ToolOutcome]:
        return run_sync(self._call(code, _forward_sync(run_manager)))

    async def _call(self, code: str, on_output: OnOutput | None) -> tuple[str, ToolOutcome]:
        try:
            code = parse_arguments({"code": code})
        except ArgumentsError as exc:
            outcome = ToolOutcome(ok=False, text=self.python_tool.arguments_message(exc))
        else:
            outcome = await self.python_tool.run(code, on_output=on_output)
        return outcome.text, outcome


#: The custom event that carries the code's output while it runs (``astream_events``
#: shows it as ``on_custom_event`` with this name and ``{"stream", "text"}`` as data);
#: callback handlers also get the text through ``on_text``.
OUTPUT_EVENT = "sandbox_tool_output"


def _forward_async(run_manager: AsyncCallbackManagerForToolRun | None) -> OnOutput | None:
    """The code's output to the tool run's callbacks, as it is printed."""
    if run_manager is None:
        return None
    children = run_manager.get_child()

    async def forward(event: Output) -> None:
        await run_manager.on_text(event.text, stream=event.stream)
        data = {"stream": event.stream, "text": event.text}
        await children.on_custom_event(OUTPUT_EVENT, data, run_id=run_manager.run_id)

    return forward


def _forward_sync(run_manager: CallbackManagerForToolRun | None) -> OnOutput | None:
    """:func:`_forward_async` for the sync path (called on the loop ``run_sync`` runs)."""
    if run_manager is None:
        return None
    children = run_manager.get_child()

    def forward(event: Output) -> None:
        run_manager.on_text(event.text, stream=event.stream)
        data = {"stream": event.stream, "text": event.text}
        children.on_custom_event(OUTPUT_EVENT, data, run_id=run_manager.run_id)

    return forward


def _brief(exc: Exception) -> ArgumentsError:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return ArgumentsError(str(exc))
    parts = [f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in errors()]
    return ArgumentsError("; ".join(parts))


def images_message(outcome: Any, *, tool_name: str = "run_python") -> HumanMessage | None:
    """A ``HumanMessage`` showing the plots of a tool call (LangChain's standard image
    blocks), to send after its ``ToolMessage``; ``None`` when there are none.
    ``outcome`` is the ``ToolMessage.artifact``.

    Tool messages carry text only for most providers, hence a separate message.
    """
    if not isinstance(outcome, ToolOutcome) or not outcome.images:
        return None
    names = ", ".join(a.name for a in outcome.images)
    blocks: list[str | dict[str, Any]] = [
        {"type": "text", "text": f"The plots from the {tool_name} call: {names}."}
    ]
    for art in outcome.images:
        data = base64.b64encode(art.data).decode("ascii")
        blocks.append({"type": "image", "base64": data, "mime_type": art.mime_type})
    return HumanMessage(content=blocks)
