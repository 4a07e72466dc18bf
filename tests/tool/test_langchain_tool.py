"""The LangChain BaseTool: ToolMessages with artifacts, status and plots where the
provider takes them, bind_tools on a fake chat model, a turn of two calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from sandbox_tool import Artifact, ExecutionResult
from sandbox_tool.errors import ExecutionError
from sandbox_tool.tool import LangChainPythonTool, ToolOutcome, images_message
from sandbox_tool.tool.langchain_tool import OUTPUT_EVENT, images_in_tool_results

from .conftest import PNG

FIG = Artifact(name="figure-1.png", mime_type="image/png", data=PNG, kind="figure")
SHOWN = "a plot, shown to you as an image"
NOT_SHOWN = "a plot (not shown to you)"


class ToolCallingFakeModel(GenericFakeChatModel):
    """A fake chat model that accepts bind_tools, as real providers do."""

    bound: list[dict[str, Any]] = Field(default_factory=list)

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kw: Any
    ) -> Runnable[Any, Any]:
        self.bound = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=self.bound, **kw)


def plotting(code: str, inputs: Any, options: Any) -> ExecutionResult:
    if "boom" in code:
        raise ExecutionError("ZeroDivisionError: division by zero", exception="ZeroDivisionError")
    return ExecutionResult(result=2, result_repr="2", result_type="int", artifacts=[FIG])


def call(code: str, call_id: str = "call_1") -> dict[str, Any]:
    return {"name": "run_python", "args": {"code": code}, "id": call_id, "type": "tool_call"}


def test_tool_call_gives_tool_message_with_artifact(fake_tool: Any) -> None:
    tool = LangChainPythonTool.from_tool(fake_tool(plotting))
    message = tool.invoke(call("plot()"))
    assert isinstance(message, ToolMessage)
    assert message.tool_call_id == "call_1" and message.name == "run_python"
    assert message.status == "success"
    assert message.content.startswith("The code ran successfully.")
    assert isinstance(message.artifact, ToolOutcome)
    assert message.artifact.images == [FIG]


def test_a_failed_execution_has_status_error(fake_tool: Any) -> None:
    tool = LangChainPythonTool.from_tool(fake_tool(plotting))
    for message in (tool.invoke(call("boom")), asyncio.run(tool.ainvoke(call("boom")))):
        assert isinstance(message, ToolMessage) and message.status == "error"
        assert message.content.startswith("The code failed.\nZeroDivisionError")
        assert not message.artifact.ok


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
    assert sync.content == async_.content
    same = {"duration_ms": 0.0}
    assert sync.artifact.model_copy(update=same) == async_.artifact.model_copy(update=same)


def test_the_constructor_and_from_tool_give_the_same_tool(fake_tool: Any) -> None:
    python_tool = fake_tool(plotting)
    built = LangChainPythonTool(python_tool=python_tool)
    wrapped = LangChainPythonTool.from_tool(python_tool)
    assert built.name == wrapped.name == "run_python"
    assert built.description == wrapped.description == python_tool.spec.description
    assert "Python 3.11.7" in built.description
    refused = built.invoke({"name": "run_python", "args": {}, "id": "c", "type": "tool_call"})
    assert refused.status == "error" and "Call run_python with" in refused.content


def test_bind_tools_exposes_name_description_and_schema(fake_tool: Any) -> None:
    tool = LangChainPythonTool.from_tool(fake_tool(plotting))
    model = ToolCallingFakeModel(messages=iter([AIMessage(content="", tool_calls=[call("1")])]))
    ai = model.bind_tools([tool]).invoke("compute")
    (schema,) = model.bound
    assert schema["function"]["name"] == "run_python"
    assert schema["function"]["description"] == tool.description
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


def test_images_go_in_the_tool_message_as_standard_blocks(fake_tool: Any) -> None:
    tool = LangChainPythonTool.from_tool(fake_tool(plotting), images="tool_message")
    message = tool.invoke(call("plot()"))
    text, image = message.content
    assert text["type"] == "text" and SHOWN in text["text"]
    assert image == {"type": "image", "base64": image["base64"], "mime_type": "image/png"}
    assert image["base64"].startswith("iVBOR")


def test_without_a_route_for_images_the_text_says_they_are_not_shown(fake_tool: Any) -> None:
    unknown_provider = GenericFakeChatModel(messages=iter([]))
    for tool in (
        LangChainPythonTool.from_tool(fake_tool(plotting)),
        LangChainPythonTool.from_tool(fake_tool(plotting), model=unknown_provider),
    ):
        assert tool.images == "none"
        message = tool.invoke(call("plot()"))
        assert isinstance(message.content, str) and NOT_SHOWN in message.content
    text_only = fake_tool(plotting)
    text_only.images = False  # the one switch for models that take no images at all
    assert LangChainPythonTool.from_tool(text_only, images="tool_message").images == "none"


def test_a_turn_of_two_calls_puts_the_plots_after_both_tool_messages(fake_tool: Any) -> None:
    tool = LangChainPythonTool.from_tool(fake_tool(plotting), images="after_turn")
    replies = tool.invoke_turn([call("plot()", "a"), call("plot()", "b")])
    first, second, plots = replies
    assert [first.tool_call_id, second.tool_call_id] == ["a", "b"]
    assert SHOWN in first.content and isinstance(first.content, str)
    assert isinstance(plots, HumanMessage)
    caption, *images = plots.content
    assert caption["text"] == (
        "The plots from 2 run_python calls, in call order: figure-1.png (call 1), "
        "figure-1.png (call 2)."
    )
    assert [i["type"] for i in images] == ["image", "image"]
    # without plots nothing follows the tool messages
    assert len(tool.invoke_turn([call("boom", "c")])) == 1


def test_images_message_uses_standard_image_blocks(fake_tool: Any) -> None:
    message = LangChainPythonTool.from_tool(fake_tool(plotting)).invoke(call("plot()"))
    images = images_message(message.artifact)
    assert isinstance(images, HumanMessage)
    text, image = images.content
    assert text == {"type": "text", "text": "The plots from the run_python call: figure-1.png."}
    assert image == {"type": "image", "base64": image["base64"], "mime_type": "image/png"}
    no_plots = ToolOutcome(ok=True, text="ok")
    assert images_message(no_plots) is None and images_message(None) is None


def _stand_in(module: str, name: str, **attributes: Any) -> Any:
    return type(name, (), {"__module__": module, **attributes})()


@pytest.mark.parametrize(
    ("model", "takes_images"),
    [
        pytest.param(_stand_in("langchain_anthropic.chat_models", "ChatAnthropic"), True,
                     id="anthropic"),
        pytest.param(_stand_in("langchain_aws.chat_models", "ChatBedrockConverse"), True,
                     id="bedrock-converse"),
        pytest.param(_stand_in("langchain_openai.chat_models", "ChatOpenAI",
                               use_responses_api=True), True, id="openai-responses"),
        pytest.param(_stand_in("langchain_openai.chat_models", "ChatOpenAI",
                               use_responses_api=None), False, id="openai-chat-completions"),
        pytest.param(_stand_in("langchain_ollama", "ChatOllama"), False, id="unknown"),
        pytest.param(None, False, id="no-model"),
    ],
)  # fmt: skip
def test_which_providers_take_images_in_tool_results(model: Any, takes_images: bool) -> None:
    assert images_in_tool_results(model) is takes_images


def test_close_closes_the_sandbox(fake_tool: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    python_tool = fake_tool(plotting)
    closed: list[bool] = []

    async def aclose() -> None:
        closed.append(True)

    monkeypatch.setattr(python_tool.runner, "aclose", aclose)
    LangChainPythonTool(python_tool=python_tool).close()
    assert closed == [True]
