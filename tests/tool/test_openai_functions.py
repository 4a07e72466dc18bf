"""OpenAI function definitions and replies, checked against the SDK's own types."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionMessageToolCall,
    ChatCompletionToolParam,
)
from openai.types.responses import FunctionToolParam, ResponseFunctionToolCall
from openai.types.responses.response_input_item_param import FunctionCallOutput
from pydantic import TypeAdapter

from sandbox_tool import Artifact, ExecutionResult, UsageError
from sandbox_tool.tool import OpenAIFunctions, PythonTool

from .conftest import PNG

FIG = Artifact(name="figure-1.png", mime_type="image/png", data=PNG, kind="figure")


def plotting(code: str, inputs: Any, options: Any) -> ExecutionResult:
    return ExecutionResult(result=2, result_repr="2", result_type="int", artifacts=[FIG])


@pytest.fixture
def functions(fake_tool: Any) -> OpenAIFunctions:
    return OpenAIFunctions(fake_tool(plotting))


def test_chat_completions_definition(functions: OpenAIFunctions) -> None:
    (tool,) = functions.chat_completions_tools()
    TypeAdapter(ChatCompletionToolParam).validate_python(tool)
    assert tool["type"] == "function"
    fn = tool["function"]
    assert fn["name"] == "run_python" and fn["strict"] is True
    assert fn["description"] == functions.tool.spec.description
    _assert_strict_schema(fn["parameters"])


def test_responses_definition(functions: OpenAIFunctions) -> None:
    (tool,) = functions.responses_tools()
    TypeAdapter(FunctionToolParam).validate_python(tool)
    assert set(tool) == {"type", "name", "description", "parameters", "strict"}
    assert tool["strict"] is True and tool["name"] == "run_python"
    _assert_strict_schema(tool["parameters"])


def _assert_strict_schema(schema: dict[str, Any]) -> None:
    # strict mode: an object, every property required, nothing else allowed
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == sorted(schema["properties"]) == ["code"]
    assert schema["properties"]["code"]["type"] == "string"
    json.dumps(schema)


CHAT_CALL = ChatCompletionMessageToolCall(
    id="call_1",
    type="function",
    function={"name": "run_python", "arguments": json.dumps({"code": "plot()"})},  # type: ignore[arg-type]
)
RESPONSES_CALL = ResponseFunctionToolCall(
    type="function_call", call_id="call_2", name="run_python", arguments='{"code": "plot()"}'
)


@pytest.mark.parametrize(
    "call",
    [pytest.param(CHAT_CALL, id="sdk-object"), pytest.param(CHAT_CALL.model_dump(), id="dict")],
)
def test_chat_completions_reply_is_tool_message_then_images(
    functions: OpenAIFunctions, call: Any
) -> None:
    reply = asyncio.run(functions.handle(call))
    tool_msg, user_msg = reply.messages
    for message in reply.messages:
        TypeAdapter(ChatCompletionMessageParam).validate_python(message)
    assert tool_msg == {"role": "tool", "tool_call_id": "call_1", "content": reply.outcome.text}
    assert user_msg["role"] == "user"
    text, image = user_msg["content"]
    assert text == {"type": "text", "text": "The plots from the run_python call: figure-1.png."}
    assert image["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    assert reply.outcome.ok and reply.call_id == "call_1"


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(RESPONSES_CALL, id="sdk-object"),
        pytest.param(RESPONSES_CALL.model_dump(), id="dict"),
    ],
)
def test_responses_reply_is_function_call_output_with_images(
    functions: OpenAIFunctions, call: Any
) -> None:
    (item,) = functions.handle_sync(call).messages
    TypeAdapter(FunctionCallOutput).validate_python(item)
    assert item["type"] == "function_call_output" and item["call_id"] == "call_2"
    text, image = item["output"]
    assert text["type"] == "input_text" and "Result (int):\n2" in text["text"]
    assert image["type"] == "input_image"
    assert image["image_url"].startswith("data:image/png;base64,")


def test_text_only_models_get_no_images(fake_tool: Any) -> None:
    tool: PythonTool = fake_tool(plotting)
    tool.images = False
    functions = OpenAIFunctions(tool)
    (message,) = functions.handle_sync(CHAT_CALL).messages
    assert "figure-1.png (image/png, 66 bytes): a plot (not shown to you)" in message["content"]
    (item,) = functions.handle_sync(RESPONSES_CALL).messages
    assert isinstance(item["output"], str)


def test_without_plots_the_responses_output_is_plain_text(fake_tool: Any) -> None:
    functions = OpenAIFunctions(fake_tool(lambda c, i, o: ExecutionResult(result=1)))
    (item,) = functions.handle_sync(RESPONSES_CALL).messages
    assert item["output"].startswith("The code ran successfully.")


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        pytest.param(
            {"type": "function_call", "call_id": "c", "name": "shell", "arguments": "{}"},
            "There is no tool named 'shell'; the only tool is run_python.",
            id="unknown-tool",
        ),
        pytest.param(
            {"id": "c", "function": {"name": "run_python", "arguments": '{"code": '}},
            "The call could not run: the arguments are not valid JSON",
            id="broken-json",
        ),
    ],
)
def test_bad_calls_are_answered_to_the_model(
    functions: OpenAIFunctions, call: Any, expected: str
) -> None:
    reply = functions.handle_sync(call)
    assert not reply.outcome.ok
    assert expected in json.dumps(reply.messages[0])


def test_not_a_tool_call_is_a_usage_error(functions: OpenAIFunctions) -> None:
    with pytest.raises(UsageError):
        functions.handle_sync({"role": "assistant", "content": "hi"})


def _chat_call(call_id: str, code: str) -> dict[str, Any]:
    arguments = json.dumps({"code": code})
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "run_python", "arguments": arguments},
    }


def test_a_chat_turn_of_two_calls_puts_every_plot_after_the_tool_messages(
    functions: OpenAIFunctions,
) -> None:
    turn = functions.handle_turn_sync([_chat_call("a", "plot()"), _chat_call("b", "plot()")])
    roles = [m["role"] for m in turn.messages]
    assert roles == ["tool", "tool", "user"], "a user message between tool messages is refused"
    assert [m["tool_call_id"] for m in turn.messages[:2]] == ["a", "b"]
    caption, *images = turn.messages[2]["content"]
    assert caption["text"].startswith("The plots from 2 run_python calls, in call order:")
    assert [i["type"] for i in images] == ["image_url", "image_url"]
    for message in turn.messages:
        TypeAdapter(ChatCompletionMessageParam).validate_python(message)
    assert [r.call_id for r in turn.replies] == ["a", "b"] and all(o.ok for o in turn.outcomes)
    # the whole conversation is one OpenAI accepts: the calls, their answers, then the plots
    assistant = {
        "role": "assistant",
        "content": "",
        "tool_calls": [_chat_call("a", "plot()"), _chat_call("b", "plot()")],
    }
    TypeAdapter(list[ChatCompletionMessageParam]).validate_python([assistant, *turn.messages])


def test_a_responses_turn_answers_each_call_with_its_own_plots(functions: OpenAIFunctions) -> None:
    second = RESPONSES_CALL.model_copy(update={"call_id": "call_3"})
    message = {"type": "message", "role": "assistant", "content": []}
    turn = functions.handle_turn_sync([message, RESPONSES_CALL, second])
    assert [i["call_id"] for i in turn.messages] == ["call_2", "call_3"]
    for item in turn.messages:
        TypeAdapter(FunctionCallOutput).validate_python(item)
        assert [part["type"] for part in item["output"]] == ["input_text", "input_image"]


def test_a_custom_tool_call_is_answered_as_not_this_tool(functions: OpenAIFunctions) -> None:
    custom = {"id": "k", "type": "custom", "custom": {"name": "shell", "input": "ls"}}
    (reply,) = functions.handle_turn_sync([custom]).replies
    assert not reply.outcome.ok and "There is no tool named 'shell'" in reply.outcome.text
