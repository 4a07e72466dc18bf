"""The tool as a LangChain ``BaseTool`` (needs ``pip install 'sandbox-tool[langchain]'``,
langchain-core 1.x).

``response_format="content_and_artifact"``: a tool call gives a ``ToolMessage`` whose
content is the message for the model and whose ``artifact`` is the
:class:`~sandbox_tool.tool.ToolOutcome` (result, error, plot PNGs); its ``status`` is
``"error"`` when the code failed. Drop it into any agent that runs LangChain tools
(``langchain.agents.create_agent``, LangGraph's ``ToolNode``)::

    tool = LangChainPythonTool.from_tool(PythonTool(sandbox), model=model)
    agent = create_agent(model, tools=[tool])

Where the plots go (:attr:`LangChainPythonTool.images`, chosen from ``model``):

- ``"tool_message"``: inside the ``ToolMessage``, as standard image content blocks, for
  providers that take images in tool results (Anthropic, Bedrock Converse, OpenAI's
  Responses API through ``ChatOpenAI(use_responses_api=True)``);
- ``"after_turn"``: a loop of your own sends them in one ``HumanMessage`` after the
  turn's tool messages (:meth:`LangChainPythonTool.ainvoke_turn` does both), for
  providers whose tool results are text only (OpenAI Chat Completions, most
  OpenAI-compatible servers);
- ``"none"``: not sent, and the message tells the model they are not shown to it. The
  default when the provider is unknown or takes images only from the user, since an
  image in a tool result there is refused (OpenAI answers 400).

While the code runs, what it prints goes to the run's callbacks: ``on_text`` and the
custom event :data:`OUTPUT_EVENT` (``astream_events`` shows it).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForToolRun,
        CallbackManagerForToolRun,
    )
    from langchain_core.messages import BaseMessage, HumanMessage, ToolCall, ToolMessage
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import ArgsSchema, BaseTool
    from pydantic import BaseModel
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "the LangChain tool needs langchain-core 1.x: pip install 'sandbox-tool[langchain]' "
        f"({exc})"
    ) from exc

from sandbox_tool.sandbox import run_sync
from sandbox_tool.streaming import OnOutput, Output
from sandbox_tool.tool.messages import plots_caption
from sandbox_tool.tool.python_tool import PythonTool, ToolOutcome
from sandbox_tool.tool.spec import CODE_DESCRIPTION, ArgumentsError, parse_arguments

__all__ = [
    "OUTPUT_EVENT",
    "ImageRoute",
    "LangChainPythonTool",
    "RunPythonArgs",
    "images_in_tool_results",
    "images_message",
]

ImageRoute = Literal["tool_message", "after_turn", "none"]
"""Where a call's plots go: in its ``ToolMessage``, in a ``HumanMessage`` after the
turn's tool messages, or nowhere."""


class RunPythonArgs(BaseModel):
    """Arguments of ``run_python``."""

    code: str = Field(description=CODE_DESCRIPTION)


def images_in_tool_results(model: Any) -> bool:
    """Whether the chat model's provider takes images inside tool results, as LangChain
    sends them. Known: Anthropic, Bedrock Converse, and ``ChatOpenAI`` on the Responses
    API do; OpenAI Chat Completions does not; anything else is taken as not."""
    model = getattr(model, "bound", model)  # a model with bound tools or settings
    kind = type(model)
    module = kind.__module__.split(".")[0]
    if module == "langchain_anthropic" or kind.__name__ == "ChatBedrockConverse":
        return True
    if module == "langchain_openai":
        return getattr(model, "use_responses_api", None) is True or (
            getattr(model, "output_version", None) == "responses/v1"
        )
    return False


def _brief(exc: Exception) -> ArgumentsError:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return ArgumentsError(str(exc))
    parts = [f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in errors()]
    return ArgumentsError("; ".join(parts))


def _image_blocks(outcome: ToolOutcome) -> list[dict[str, Any]]:
    """LangChain's standard image content blocks for the outcome's plots."""
    return [
        {
            "type": "image",
            "base64": base64.b64encode(art.data).decode("ascii"),
            "mime_type": art.mime_type,
        }
        for art in outcome.images
    ]


def _with_status(message: Any) -> Any:
    """A ``ToolMessage`` of a failed execution gets ``status="error"``."""
    if isinstance(message, ToolMessage):
        outcome = message.artifact
        if isinstance(outcome, ToolOutcome) and not outcome.ok and message.status != "error":
            return message.model_copy(update={"status": "error"})
    return message


class LangChainPythonTool(BaseTool):
    """``run_python`` for LangChain chat models (``bind_tools``) and prebuilt agents,
    sync and async. ``LangChainPythonTool(python_tool=t)`` and :meth:`from_tool` give
    the same tool: name and description come from ``t.spec``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "run_python"
    description: str = ""
    args_schema: ArgsSchema | None = RunPythonArgs
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    python_tool: PythonTool
    """The framework-neutral tool that runs the code and writes the messages."""
    images: ImageRoute = "none"
    """Where plots go (see the module's docstring); always ``"none"`` when the
    ``python_tool`` was made with ``images=False``."""

    @model_validator(mode="before")
    @classmethod
    def _from_spec(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("python_tool"), PythonTool):
            return data
        tool: PythonTool = data["python_tool"]
        data = dict(data)
        if not data.get("name"):
            data["name"] = tool.spec.name
        if not data.get("description"):
            data["description"] = tool.spec.description
        data.setdefault("handle_validation_error", lambda exc: tool.arguments_message(_brief(exc)))
        if not tool.images:
            data["images"] = "none"
        return data

    @classmethod
    def from_tool(
        cls, tool: PythonTool, *, model: Any = None, images: ImageRoute | None = None
    ) -> LangChainPythonTool:
        """Wrap ``tool``. ``images`` (where plots go) is chosen from ``model``, the chat
        model the tool is given to, unless given: ``"tool_message"`` where its provider
        takes images in tool results (:func:`images_in_tool_results`), else ``"none"``."""
        if images is None:
            images = "tool_message" if images_in_tool_results(model) else "none"
        return cls(python_tool=tool, images=images)

    async def _arun(
        self, code: str, run_manager: AsyncCallbackManagerForToolRun | None = None
    ) -> tuple[str | list[str | dict[str, Any]], ToolOutcome]:
        return await self._call(code, _forward_async(run_manager))

    def _run(
        self, code: str, run_manager: CallbackManagerForToolRun | None = None
    ) -> tuple[str | list[str | dict[str, Any]], ToolOutcome]:
        return run_sync(self._call(code, _forward_sync(run_manager)))

    async def _call(
        self, code: str, on_output: OnOutput | None
    ) -> tuple[str | list[str | dict[str, Any]], ToolOutcome]:
        try:
            code = parse_arguments({"code": code})
        except ArgumentsError as exc:
            outcome = ToolOutcome(ok=False, text=self.python_tool.arguments_message(exc))
        else:
            outcome = await self.python_tool.run(
                code, images=self.images != "none", on_output=on_output
            )
        if self.images == "tool_message" and outcome.images:
            blocks: list[str | dict[str, Any]] = [{"type": "text", "text": outcome.text}]
            return blocks + list(_image_blocks(outcome)), outcome
        return outcome.text, outcome

    # BaseTool sets status "error" only for exceptions; a failed execution is an answer
    # (the model reads its message), marked as failed for providers that show it.
    def invoke(
        self, input: str | dict[str, Any] | ToolCall, config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        return _with_status(super().invoke(input, config, **kwargs))

    async def ainvoke(
        self, input: str | dict[str, Any] | ToolCall, config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        return _with_status(await super().ainvoke(input, config, **kwargs))

    async def ainvoke_turn(
        self, tool_calls: Sequence[ToolCall], config: RunnableConfig | None = None
    ) -> list[BaseMessage]:
        """Answer every tool call of one model turn, in order: their ``ToolMessage``s,
        then, with ``images="after_turn"``, one ``HumanMessage`` with all their plots
        (providers want the tool results right after the calls, as one group)."""
        replies: list[BaseMessage] = []
        for call in tool_calls:
            replies.append(await self.ainvoke({**call, "type": "tool_call"}, config))
        if self.images == "after_turn":
            outcomes = [getattr(m, "artifact", None) for m in replies]
            plots = images_message(outcomes, tool_name=self.name)
            if plots is not None:
                replies.append(plots)
        return replies

    def invoke_turn(
        self, tool_calls: Sequence[ToolCall], config: RunnableConfig | None = None
    ) -> list[BaseMessage]:
        """:meth:`ainvoke_turn` for synchronous code."""
        return run_sync(self.ainvoke_turn(tool_calls, config))

    def _over(self, tool: PythonTool) -> LangChainPythonTool:
        copy: LangChainPythonTool = self.model_copy(
            update={"python_tool": tool, "description": tool.spec.description}
        )
        return copy

    @contextlib.asynccontextmanager
    async def aconversation(self) -> AsyncIterator[LangChainPythonTool]:
        """This tool for one conversation, keeping state between its calls
        (:meth:`PythonTool.conversation`)."""
        async with self.python_tool.conversation() as tool:
            yield self._over(tool)

    @contextlib.contextmanager
    def conversation(self) -> Iterator[LangChainPythonTool]:
        """:meth:`aconversation` for synchronous code."""
        with self.python_tool.conversation_sync() as tool:
            yield self._over(tool)

    async def aclose(self) -> None:
        """Close the sandbox under the tool (its warm pool)."""
        await self.python_tool.aclose()

    def close(self) -> None:
        """:meth:`aclose` for synchronous code."""
        self.python_tool.close()


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


def images_message(
    outcomes: Any | Sequence[Any], *, tool_name: str = "run_python"
) -> HumanMessage | None:
    """A ``HumanMessage`` showing the plots of one turn's tool calls (LangChain's standard
    image blocks), to send after the turn's ``ToolMessage``s; ``None`` when there are
    none. ``outcomes``: the ``ToolMessage.artifact`` of each call (or of one call)."""
    if not isinstance(outcomes, Sequence):
        outcomes = [outcomes]
    shown = [o for o in outcomes if isinstance(o, ToolOutcome) and o.images]
    if not shown:
        return None
    caption = plots_caption(tool_name, [[a.name for a in o.images] for o in shown])
    blocks: list[str | dict[str, Any]] = [{"type": "text", "text": caption}]
    for outcome in shown:
        blocks += _image_blocks(outcome)
    return HumanMessage(content=blocks)
