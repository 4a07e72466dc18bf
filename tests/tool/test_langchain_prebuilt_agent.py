"""The tool dropped into LangChain's own prebuilt agent (``create_agent``, whose tools run
in LangGraph's ``ToolNode``), as a user would: a turn of two calls, a failed call, and the
plots reaching the model where its provider takes images in tool results.

The wire checks run ``ChatOpenAI`` against a scripted server behind the SDK's own HTTP
client: on the Responses API each plot travels inside its ``function_call_output``; on
Chat Completions, which takes text only in tool messages, none is sent and the tool's
text says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import Field

from sandbox_tool import Artifact, ExecutionResult
from sandbox_tool.errors import ExecutionError
from sandbox_tool.tool import LangChainPythonTool

from .conftest import PNG

create_agent = pytest.importorskip("langchain.agents").create_agent

FIG = Artifact(name="figure-1.png", mime_type="image/png", data=PNG, kind="figure")


def plotting(code: str, inputs: Any, options: Any) -> ExecutionResult:
    if "boom" in code:
        raise ExecutionError("ZeroDivisionError: division by zero", exception="ZeroDivisionError")
    return ExecutionResult(result=2, result_repr="2", result_type="int", artifacts=[FIG])


def calls(*codes: str) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[
            {"name": "run_python", "args": {"code": code}, "id": f"call_{i}"}
            for i, code in enumerate(codes)
        ],
    )


class AgentFakeModel(GenericFakeChatModel):
    """A scripted chat model that binds tools, as providers do, and records what it saw."""

    seen: list[list[Any]] = Field(default_factory=list)

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kw: Any
    ) -> Runnable[Any, Any]:
        return self

    def _generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


@pytest.mark.parametrize("sync", [False, True], ids=["ainvoke", "invoke"])
def test_create_agent_runs_a_turn_of_two_calls_and_shows_the_plots(
    fake_tool: Any, sync: bool
) -> None:
    model = AgentFakeModel(messages=iter([calls("plot()", "boom"), AIMessage(content="2")]))
    tool = LangChainPythonTool.from_tool(fake_tool(plotting), images="tool_message")
    agent = create_agent(model, tools=[tool])
    question = {"messages": [("user", "plot it")]}
    if sync:
        state = agent.invoke(question)
    else:
        import asyncio

        state = asyncio.run(agent.ainvoke(question))

    assert state["messages"][-1].content == "2"
    plotted, failed = (m for m in model.seen[1] if isinstance(m, ToolMessage))
    assert (plotted.tool_call_id, plotted.status) == ("call_0", "success")
    text, image = plotted.content
    assert "shown to you as an image" in text["text"]
    assert image["type"] == "image" and image["base64"].startswith("iVBOR")
    assert (failed.tool_call_id, failed.status) == ("call_1", "error")
    assert failed.content.startswith("The code failed.\nZeroDivisionError")


def _completion(message: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "id": f"chat-{n}", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
    }  # fmt: skip


def _response(output: list[dict[str, Any]], n: int) -> dict[str, Any]:
    # a distinct id per answer: the agent's state merges messages that share one
    return {
        "id": f"resp_{n}", "object": "response", "created_at": 0, "status": "completed",
        "model": "m", "output": output, "parallel_tool_calls": True, "tool_choice": "auto",
        "tools": [],
    }  # fmt: skip


def _response_of(status: int, payload: dict[str, Any]) -> Any:
    import httpx2  # the HTTP client of openai 3.x, whose MockTransport stands in for OpenAI

    return httpx2.Response(status, json=payload)


class WireServer:
    """Scripted OpenAI answers: a call of run_python, then "done"; keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def __call__(self, request: Any) -> Any:
        body = json.loads(request.content)
        self.sent.append(body)
        first = len(self.sent) == 1
        arguments = json.dumps({"code": "plot()"})
        if request.url.path.endswith("/responses"):
            call = {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "run_python",
                "arguments": arguments,
                "status": "completed",
            }
            text = {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "done", "annotations": []}],
            }
            return _response_of(200, _response([call] if first else [text], len(self.sent)))
        message: dict[str, Any] = {"role": "assistant", "content": "done"}
        if first:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "run_python", "arguments": arguments},
                    }
                ],
            }
        return _response_of(200, _completion(message, len(self.sent)))  # fmt: skip


@pytest.mark.parametrize(
    ("responses_api", "route"),
    [(True, "tool_message"), (False, "none")],
    ids=["responses-api-takes-images", "chat-completions-takes-text-only"],
)
def test_chat_openai_in_create_agent_sends_what_the_api_accepts(
    fake_tool: Any, responses_api: bool, route: str
) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    httpx2 = pytest.importorskip("httpx2")
    server = WireServer()
    model = langchain_openai.ChatOpenAI(
        model="m", api_key="sk-test", base_url="http://model.test/v1", max_retries=0,
        use_responses_api=responses_api,
        http_client=httpx2.Client(transport=httpx2.MockTransport(server)),
    )  # fmt: skip
    tool = LangChainPythonTool.from_tool(fake_tool(plotting), model=model)
    assert tool.images == route
    state = create_agent(model, tools=[tool]).invoke({"messages": [("user", "plot it")]})
    assert state["messages"][-1].text == "done"

    if responses_api:
        (output,) = [i for i in server.sent[1]["input"] if i.get("type") == "function_call_output"]
        text, image = output["output"]
        assert text["type"] == "input_text" and "shown to you as an image" in text["text"]
        assert image["type"] == "input_image"
        assert image["image_url"].startswith("data:image/png;base64,iVBOR")
    else:
        (message,) = [m for m in server.sent[1]["messages"] if m["role"] == "tool"]
        assert isinstance(message["content"], str)
        assert "a plot (not shown to you)" in message["content"]
        assert "image_url" not in json.dumps(server.sent[1])
