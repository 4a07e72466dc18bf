"""Loop control flow with fake models: stop on the answer, turn limit, images, tool choice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import Field

from sandbox_tool import Artifact, ExecutionResult, PythonSandbox
from sandbox_tool.agents.langchain_loop import langchain_loop
from sandbox_tool.agents.loop import tool_choice
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
