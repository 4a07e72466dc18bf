"""The LangChain BaseTool: ToolMessages with artifacts, bind_tools on a fake chat model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from sandbox_tool import Artifact, ExecutionResult
from sandbox_tool.tool import LangChainPythonTool, ToolOutcome, images_message
from sandbox_tool.tool.langchain_tool import OUTPUT_EVENT

from .conftest import PNG

FIG = Artifact(name="figure-1.png", mime_type="image/png", data=PNG, kind="figure")


class ToolCallingFakeModel(GenericFakeChatModel):
    """A fake chat model that accepts bind_tools, as real providers do."""

    bound: list[dict[str, Any]] = Field(default_factory=list)

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kw: Any
    ) -> Runnable[Any, Any]:
        self.bound = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=self.bound, **kw)


def plotting(code: str, inputs: Any, options: Any) -> ExecutionResult:
    return ExecutionResult(result=2, result_repr="2", result_type="int", artifacts=[FIG])


def call(code: str, call_id: str = "call_1") -> dict[str, Any]:
    return {"name": "run_python", "args": {"code": code}, "id": call_id, "type": "tool_call"}


def test_tool_call_gives_tool_message_with_artifact(fake_tool: Any) -> None:
    tool = LangChainPythonTool.from_tool(fake_tool(plotting))
    message = tool.invoke(call("plot()"))
    assert isinstance(message, ToolMessage)
    assert message.tool_call_id == "call_1" and message.name == "run_python"
    assert message.content.startswith("The code ran successfully.")
    assert isinstance(message.artifact, ToolOutcome)
    assert message.artifact.images == [FIG]


def printing(code: str, inputs: Any, options: Any) -> ExecutionResult:
    return ExecutionResult(result=None, stdout="step 1\nstep 2\n", stderr="warning\n")


class TextCollector(BaseCallbackHandler):
    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def on_text(self, text: str, **kwargs: Any) -> None:
        self.texts.append((kwargs.get("stream", ""), text))


def test_output_reaches_astream_events_while_the_code_runs(fake_tool: Any) -> None:
    tool = LangChainPythonTool.from_tool(fake_tool(printing))

    async def go() -> list[Any]:
        return [
            (e["data"], e["run_id"])
            async for e in tool.astream_events(call("work()"), version="v2")
            if e["event"] == "on_custom_event" and e["name"] == OUTPUT_EVENT
        ]

    events = asyncio.run(go())
    assert [data for data, _ in events] == [
        {"stream": "stdout", "text": "step 1\nstep 2\n"},
        {"stream": "stderr", "text": "warning\n"},
    ]


def test_output_reaches_callback_handlers_sync_and_async(fake_tool: Any) -> None:
    tool = LangChainPythonTool.from_tool(fake_tool(printing))
    sync, async_ = TextCollector(), TextCollector()
    tool.invoke(call("work()"), config={"callbacks": [sync]})
    asyncio.run(tool.ainvoke(call("work()"), config={"callbacks": [async_]}))
    assert sync.texts == async_.texts == [("stdout", "step 1\nstep 2\n"), ("stderr", "warning\n")]


def test_async_and_sync_agree(fake_tool: Any) -> None:
    tool = LangChainPythonTool.from_tool(fake_tool(plotting))
    sync = tool.invoke(call("plot()"))
    async_ = asyncio.run(tool.ainvoke(call("plot()")))
    assert sync.content == async_.content and sync.artifact == async_.artifact


def test_bind_tools_exposes_name_description_and_schema(fake_tool: Any) -> None:
    tool = LangChainPythonTool.from_tool(fake_tool(plotting))
    model = ToolCallingFakeModel(messages=iter([AIMessage(content="", tool_calls=[call("1")])]))
    ai = model.bind_tools([tool]).invoke("compute")
    (schema,) = model.bound
    assert schema["function"]["name"] == "run_python"
    assert schema["function"]["description"] == tool.description
    assert "Python 3.11.7" in schema["function"]["description"]
    assert schema["function"]["parameters"]["required"] == ["code"]
    message = tool.invoke(ai.tool_calls[0])
    assert isinstance(message, ToolMessage) and message.artifact.ok


def test_invalid_arguments_are_answered_to_the_model(fake_tool: Any) -> None:
    tool = LangChainPythonTool.from_tool(fake_tool(plotting))
    message = tool.invoke(
        {"name": "run_python", "args": {"src": "1"}, "id": "c", "type": "tool_call"}
    )
    assert isinstance(message, ToolMessage) and message.status == "error"
    assert "The call could not run: code: Field required." in message.content
    assert 'Call run_python with {"code": "<your Python source>"}' in message.content


def test_fenced_code_is_unwrapped(fake_tool: Any) -> None:
    python_tool = fake_tool(plotting)
    LangChainPythonTool.from_tool(python_tool).invoke(call("```python\nx = 1\n```"))
    assert python_tool.runner.engine.calls[0][0] == "x = 1"


def test_images_message_uses_standard_image_blocks(fake_tool: Any) -> None:
    message = LangChainPythonTool.from_tool(fake_tool(plotting)).invoke(call("plot()"))
    images = images_message(message.artifact)
    assert isinstance(images, HumanMessage)
    text, image = images.content
    assert text == {"type": "text", "text": "The plots from the run_python call: figure-1.png."}
    assert image == {"type": "image", "base64": image["base64"], "mime_type": "image/png"}
    assert image["base64"].startswith("iVBOR")
    no_plots = ToolOutcome(ok=True, text="ok")
    assert images_message(no_plots) is None and images_message(None) is None
