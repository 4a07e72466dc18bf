"""Loop control flow with fake models: stop on the answer, turn limit, images, tool choice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import Field

from sandbox_tool import Artifact, ExecutionResult, PythonSandbox
from sandbox_tool.agents.langchain_loop import langchain_loop
from sandbox_tool.agents.loop import answer_now, call_written_as_text, reminder, tool_choice
from sandbox_tool.engines.fake import FakeEngine
from sandbox_tool.errors import ExecutionError
from sandbox_tool.tool import PythonTool, ToolOutcome
from tests.tool.conftest import INFO, PNG


class RecordingFakeModel(GenericFakeChatModel):
    """Answers from a script and records what it was sent and how tools were bound."""

    seen: list[list[Any]] = Field(default_factory=list)
    choices: list[Any] = Field(default_factory=list)

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kw: Any
    ) -> Runnable[Any, Any]:
        self.choices.append(kw.get("tool_choice"))
        return self

    def _generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def call(code: str, n: int) -> AIMessage:
    return AIMessage(
        content="", tool_calls=[{"name": "run_python", "args": {"code": code}, "id": f"c{n}"}]
    )


def engine_handler(code: str, inputs: Any, options: Any) -> ExecutionResult:
    if "boom" in code:
        raise ExecutionError("KeyError: 'revenue'", exception="KeyError", lineno=1, line=code)
    fig = Artifact(name="figure-1.png", mime_type="image/png", data=PNG, kind="figure")
    return ExecutionResult(result=17, result_repr="17", result_type="int", artifacts=[fig])


def make_tool(images: bool = True) -> PythonTool:
    return PythonTool(PythonSandbox(engine=FakeEngine(engine_handler)), info=INFO, images=images)


def test_recovers_then_stops_on_the_final_answer() -> None:
    model = RecordingFakeModel(
        messages=iter([call("boom", 1), call("ok", 2), AIMessage(content="North: 17")])
    )
    run = asyncio.run(langchain_loop(model, make_tool(), "q?", csv_name="o.csv"))
    assert run.answer == "North: 17" and run.turns == 3
    assert [o.ok for o in run.outcomes] == [False, True]
    last = model.seen[-1]
    tool_messages = [m for m in last if isinstance(m, ToolMessage)]
    assert "KeyError: 'revenue'" in tool_messages[0].content
    assert isinstance(tool_messages[1].artifact, ToolOutcome)
    assert isinstance(last[-1], HumanMessage)  # the plot, after its tool message
    assert last[-1].content[1]["type"] == "image"


def test_text_only_models_get_no_image_messages() -> None:
    model = RecordingFakeModel(messages=iter([call("ok", 1), AIMessage(content="done")]))
    asyncio.run(langchain_loop(model, make_tool(images=False), "q?", csv_name="o.csv"))
    assert not any(isinstance(m, HumanMessage) for m in model.seen[-1][2:])
    assert "(not shown to you)" in model.seen[-1][-1].content


def test_turn_limit_stops_the_loop_and_forces_an_answer_last() -> None:
    model = RecordingFakeModel(messages=iter([call("boom", i) for i in range(10)]))
    run = asyncio.run(
        langchain_loop(model, make_tool(), "q?", csv_name="o.csv", max_turns=3, policy="auto")
    )
    assert run.stopped_by_turn_limit and run.turns == 3 and len(run.outcomes) == 3
    assert model.choices == ["auto", "auto"]  # the third turn is not offered the tool


def test_first_success_policy() -> None:
    failed, passed = ToolOutcome(ok=False, text=""), ToolOutcome(ok=True, text="")
    assert tool_choice("first-success", [], last_turn=False) == "required"
    assert tool_choice("first-success", [failed], last_turn=False) == "required"
    assert tool_choice("first-success", [failed, passed], last_turn=False) == "none"
    assert tool_choice("auto", [failed], last_turn=False) == "auto"
    assert tool_choice("auto", [], last_turn=True) == "none"


WRITTEN_CALL = '{"name": "run_python", "arguments": "{\\"code\\": \\"print(1)\\"}"}'


@pytest.mark.parametrize(
    ("text", "written"),
    [
        pytest.param(WRITTEN_CALL, True, id="call-json"),
        pytest.param('```json\n{"code": "print(1)"}\n```', True, id="fenced-arguments"),
        pytest.param('<tool_call>\n{"name": "run_python", "arguments": {}}\n</tool_call>', True,
                     id="tool-call-tags"),
        pytest.param('{"name": "other_tool", "arguments": {}}', True, id="another-tools-call"),
        pytest.param('{"region": "South", "mean": 130.5}', False, id="an-answer-as-json"),
        pytest.param('South. I ran {"code": "x"} to find it.', False, id="answer-quoting-code"),
        pytest.param("{not json", False, id="broken-json"),
        pytest.param("South has the highest average price.", False, id="answer"),
    ],
)  # fmt: skip
def test_a_call_written_as_text_is_told_from_an_answer(text: str, written: bool) -> None:
    assert call_written_as_text(text, "run_python") is written


def test_a_call_written_as_text_gets_one_reminder_then_the_answer_counts() -> None:
    model = RecordingFakeModel(
        messages=iter([call("ok", 1), AIMessage(content=WRITTEN_CALL), AIMessage("South")])
    )
    run = asyncio.run(
        langchain_loop(model, make_tool(), "q?", csv_name="o.csv", policy="first-success")
    )
    assert run.answer == "South" and run.turns == 3 and run.reminders == 1
    assert len(run.outcomes) == 1  # the written call did not run
    reminded = model.seen[-1][-1]
    assert isinstance(reminded, HumanMessage) and "written as text" in reminded.content
    assert model.seen[-1][-2].content == WRITTEN_CALL  # the reply stays in the conversation
    assert model.choices == ["run_python"]  # turns 2 and 3 are asked without the tool


def test_a_second_call_written_as_text_is_the_answer() -> None:
    replies = [call("ok", 1), AIMessage(WRITTEN_CALL), AIMessage(WRITTEN_CALL), AIMessage("x")]
    model = RecordingFakeModel(messages=iter(replies))
    run = asyncio.run(langchain_loop(model, make_tool(), "q?", csv_name="o.csv"))
    assert run.answer == WRITTEN_CALL and run.reminders == 1 and run.turns == 3


def test_no_reminder_on_the_last_turn() -> None:
    model = RecordingFakeModel(messages=iter([call("ok", 1), AIMessage(WRITTEN_CALL)]))
    run = asyncio.run(langchain_loop(model, make_tool(), "q?", csv_name="o.csv", max_turns=2))
    assert run.answer == WRITTEN_CALL and run.reminders == 0 and run.turns == 2


class FakeCompletions:
    """``client.chat.completions`` / ``client.responses`` of an OpenAI client, from a script."""

    def __init__(self, replies: list[dict[str, Any]], kind: Any) -> None:
        self.replies, self.kind, self.sent = iter(replies), kind, []

    async def create(self, **request: Any) -> Any:
        self.sent.append(json.loads(json.dumps(request["messages" if "messages" in request
                                                        else "input"])))  # fmt: skip
        return self.kind.model_validate(next(self.replies))


def _chat_reply(content: str = "", calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}]}  # fmt: skip


def _responses_reply(output: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "r", "object": "response", "created_at": 0, "model": "m", "output": output,
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}  # fmt: skip


def test_the_openai_loops_remind_the_same_way() -> None:
    from openai.types.chat import ChatCompletion
    from openai.types.responses import Response

    from sandbox_tool.agents.loop import run_turns
    from sandbox_tool.agents.openai_loop import ChatCompletionsConversation, responses_loop

    chat_call = {"id": "c1", "type": "function",
                 "function": {"name": "run_python", "arguments": '{"code": "ok"}'}}  # fmt: skip
    chat = FakeCompletions(
        [_chat_reply(calls=[chat_call]), _chat_reply(WRITTEN_CALL), _chat_reply("South")],
        ChatCompletion,
    )
    client: Any = type("Client", (), {})()
    client.chat = type("Chat", (), {"completions": chat})()
    conversation = ChatCompletionsConversation(
        client, make_tool(), "q?", instructions="i", model="m"
    )
    run = asyncio.run(run_turns(conversation, max_turns=6))
    assert run.answer == "South" and run.reminders == 1
    assert conversation.history[-1] == {"role": "assistant", "content": "South"}
    assert chat.sent[-1][-2:] == [
        {"role": "assistant", "content": WRITTEN_CALL},
        {"role": "user", "content": reminder("auto")},
    ]

    def text(t: str) -> dict[str, Any]:
        return {"type": "message", "id": "m", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": t, "annotations": []}]}  # fmt: skip

    responses_call = {"type": "function_call", "call_id": "c1", "name": "run_python",
                      "arguments": '{"code": "ok"}'}  # fmt: skip
    api = FakeCompletions(
        [
            _responses_reply([responses_call]),
            _responses_reply([text(WRITTEN_CALL)]),
            _responses_reply([text("South")]),
        ],
        Response,
    )
    client.responses = api
    run = asyncio.run(responses_loop(client, make_tool(), "q?", csv_name="o.csv", model="m"))
    assert run.answer == "South" and run.reminders == 1
    assert api.sent[-1][-2:] == [
        {"role": "assistant", "content": WRITTEN_CALL},
        {"role": "user", "content": reminder("auto")},
    ]


def test_the_model_is_told_once_when_the_tool_is_withdrawn() -> None:
    model = RecordingFakeModel(
        messages=iter([call("ok", 1), AIMessage(WRITTEN_CALL), AIMessage("South")])
    )
    run = asyncio.run(
        langchain_loop(model, make_tool(), "q?", csv_name="o.csv", policy="first-success")
    )
    assert run.answer == "South"
    told = [m.content for m in model.seen[-1] if isinstance(m, HumanMessage)]
    assert told.count(answer_now("q?")) == 1  # before turn 2, not again before turn 3
    assert model.seen[1][-1].content == answer_now("q?")  # right before the first turn without it


def test_the_turn_limit_tells_the_model_to_answer_and_one_turn_tells_nothing() -> None:
    model = RecordingFakeModel(messages=iter([call("boom", 1), AIMessage("North")]))
    asyncio.run(langchain_loop(model, make_tool(), "q?", csv_name="o.csv", max_turns=2))
    assert model.seen[-1][-1].content == answer_now("q?")
    model = RecordingFakeModel(messages=iter([AIMessage("North")]))
    run = asyncio.run(langchain_loop(model, make_tool(), "q?", csv_name="o.csv", max_turns=1))
    assert run.answer == "North"
    assert [m.content for m in model.seen[0]][-1] == "q?"  # the tool was never offered
