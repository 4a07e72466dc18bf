"""The run record every loop returns, and ``run_task``, with fake models and a fake engine.

The OpenAI loops talk to a scripted server behind the SDK's own HTTP client (a mock
transport); the LangChain loop to a fake chat model; the code runs on a fake engine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agents.responses_shim import responses_answer
from sandbox_tool import Artifact, ExecutionResult, PythonSandbox
from sandbox_tool.agents.run import AgentRun
from sandbox_tool.agents.task import Api, run_task
from sandbox_tool.engines.fake import FakeEngine
from sandbox_tool.errors import ExecutionError, UsageError
from sandbox_tool.tool import PythonTool
from tests.agents.test_loops_fake_models import RecordingFakeModel
from tests.tool.conftest import INFO, PNG

openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2")
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage  # noqa: E402

CSV = Path(__file__).with_name("orders.csv")
SANDBOX_MS = 12.5

# a scripted model reply: tool calls as (tool name, raw arguments), or the final text
Reply = list[tuple[str, str]] | str


def run_code(code: str, inputs: Any, options: Any) -> ExecutionResult:
    if "boom" in code:
        raise ExecutionError("KeyError: 'revenue'", exception="KeyError", lineno=1, line=code)
    plots = [Artifact(name="figure-1.png", mime_type="image/png", data=PNG, kind="figure")]
    return ExecutionResult(
        result=17, result_repr="17", result_type="int", duration_ms=SANDBOX_MS,
        artifacts=plots if "plot" in code else [],
    )  # fmt: skip


class ClosingFakeEngine(FakeEngine):
    """Says whether it was closed."""

    closed = False

    async def aclose(self) -> None:
        self.closed = True
        await super().aclose()


def make_tool() -> PythonTool:
    return PythonTool(PythonSandbox(engine=FakeEngine(run_code)), info=INFO)


def code_call(code: str) -> tuple[str, str]:
    return ("run_python", json.dumps({"code": code}))


def chat_completion(reply: Reply, n: int) -> dict[str, Any]:
    if isinstance(reply, str):
        message: dict[str, Any] = {"role": "assistant", "content": reply}
    else:
        calls = [
            {"id": f"c{n}-{i}", "type": "function", "function": {"name": name, "arguments": args}}
            for i, (name, args) in enumerate(reply)
        ]
        message = {"role": "assistant", "content": None, "tool_calls": calls}
    finish = "stop" if isinstance(reply, str) else "tool_calls"
    return {
        "id": f"chat-{n}",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
    }


class ScriptedServer:
    """Answers each POST with the next scripted reply, in the shape of the path asked."""

    def __init__(self, replies: list[Reply], status: int = 200, refusal: str = "refused") -> None:
        self.replies = list(replies)
        self.status = status
        self.refusal = refusal
        self.sent: list[dict[str, Any]] = []

    def __call__(self, request: Any) -> Any:
        body = json.loads(request.content)
        self.sent.append(body)
        if self.status != 200 and not self.replies:  # the scripted replies first
            return httpx2.Response(self.status, json={"error": {"message": self.refusal}})
        completion = chat_completion(self.replies.pop(0), len(self.sent))
        if request.url.path.endswith("/responses"):
            return httpx2.Response(200, json=responses_answer(body, completion))
        return httpx2.Response(200, json=completion)

    def client(self) -> Any:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(self))
        return openai.AsyncOpenAI(
            base_url="http://model.test/v1", api_key="sk-test", http_client=http, max_retries=0
        )


def lc_message(reply: Reply, n: int) -> AIMessage:
    if isinstance(reply, str):
        return AIMessage(content=reply)
    calls = [
        {"name": name, "args": json.loads(args), "id": f"c{n}-{i}"}
        for i, (name, args) in enumerate(reply)
    ]
    return AIMessage(content="", tool_calls=calls)


def run_scripted(api: Api, replies: list[Reply], **kwargs: Any) -> tuple[AgentRun, list[Any]]:
    """Run ``run_task`` on a scripted model: the run, and what the model was sent."""
    if api == "langchain":
        model = RecordingFakeModel(messages=iter([lc_message(r, n) for n, r in enumerate(replies)]))
        run = asyncio.run(run_task("q?", api=api, client=model, **kwargs))
        return run, model.seen
    server = ScriptedServer(replies)
    run = asyncio.run(run_task("q?", api=api, client=server.client(), model="m", **kwargs))
    return run, server.sent


APIS: list[Api] = ["chat", "responses", "langchain"]


@pytest.mark.parametrize("api", APIS)
def test_the_record_holds_each_call_its_outcome_and_durations(api: Api) -> None:
    replies: list[Reply] = [[code_call("boom")], [code_call("ok")], "North: 17"]
    run, sent = run_scripted(api, replies, tool=make_tool())

    assert run.answer == "North: 17" and run.turns == 3 == len(sent)
    assert [(c.name, c.code, c.outcome) for c in run.calls] == [
        ("run_python", "boom", "ExecutionError"),
        ("run_python", "ok", "ok"),
    ]
    failed, passed = run.calls
    assert not failed.ok and failed.sandbox_ms is None  # a failed outcome carries none
    assert passed.ok and passed.sandbox_ms == SANDBOX_MS
    assert all(c.duration_ms >= 0 for c in run.calls)
    assert run.outcomes == [c.tool_outcome for c in run.calls]
    assert "KeyError: 'revenue'" in failed.tool_outcome.text
    assert "KeyError: 'revenue'" in str(sent[1])  # what the model was told

    summary = json.loads(json.dumps(run.to_dict()))
    assert summary["answer"] == "North: 17" and summary["turns"] == 3
    assert [c["outcome"] for c in summary["calls"]] == ["ExecutionError", "ok"]
    assert summary["calls"][1]["sandbox_ms"] == SANDBOX_MS


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_calls_that_never_reach_the_sandbox_are_named(api: Api) -> None:
    one_turn: Reply = [("other_tool", '{"code": "1"}'), ("run_python", "{}")]
    run, sent = run_scripted(api, [one_turn, "done"], tool=make_tool())

    assert run.turns == 2 and run.answer == "done"
    assert [(c.name, c.code, c.outcome) for c in run.calls] == [
        ("other_tool", "1", "UnknownTool"),
        ("run_python", None, "ArgumentsError"),
    ]
    # both calls of the turn were answered, in call order
    if api == "chat":
        tool_ids = [m["tool_call_id"] for m in sent[1]["messages"] if m["role"] == "tool"]
    else:
        tool_ids = [
            i["call_id"] for i in sent[1]["input"] if i.get("type") == "function_call_output"
        ]
    assert tool_ids == ["c1-0", "c1-1"]


def _kind(name: str, parts: Any) -> str:
    """``name`` and the types of its parts after the first (the text): "user+image_url"."""
    rest = parts[1:] if isinstance(parts, list) else []
    return "+".join([name, *(p["type"] for p in rest)])


def _after_the_calls(api: Api, sent: Any) -> list[str]:
    """What followed the model's two calls in the next request: item kinds, in order."""
    if api == "chat":
        messages = sent["messages"]
        start = next(i for i, m in enumerate(messages) if m.get("tool_calls"))
        return [_kind(m["role"], m["content"]) for m in messages[start + 1 :]]
    if api == "responses":
        return [_kind(i["type"], i.get("output")) for i in sent["input"][1:]]
    kinds = {ToolMessage: "tool", HumanMessage: "user"}
    start = max(i for i, m in enumerate(sent) if isinstance(m, AIMessage))
    return [_kind(kinds[type(m)], m.content) for m in sent[start + 1 :]]


TWO_PLOTS_AFTER = {
    "chat": ["tool", "tool", "user+image_url+image_url"],
    "responses": [
        "function_call", "function_call",
        "function_call_output+input_image", "function_call_output+input_image",
    ],
    "langchain": ["tool", "tool", "user+image+image"],
}  # fmt: skip


@pytest.mark.parametrize("api", APIS)
def test_a_turn_of_two_plotting_calls_sends_the_plots_after_the_group(api: Api) -> None:
    two_calls: Reply = [code_call("plot(1)"), code_call("plot(2)")]
    run, sent = run_scripted(api, [two_calls, "two charts"], tool=make_tool())
    assert run.answer == "two charts" and [c.outcome for c in run.calls] == ["ok", "ok"]
    assert _after_the_calls(api, sent[1]) == TWO_PLOTS_AFTER[api]


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_server_that_refuses_images_is_told_apart(api: Api) -> None:
    refusal = "Invalid content type. image_url is only supported by certain models."

    def refused(tool: PythonTool) -> None:
        server = ScriptedServer([[code_call("plot()")]], status=400, refusal=refusal)
        asyncio.run(run_task("q?", api=api, client=server.client(), model="m", tool=tool))

    with pytest.raises(
        UsageError, match=r"PythonTool\(\.\.\., images=False\) \(the command line's --no-images\)"
    ):
        refused(make_tool())
    text_only = PythonTool(PythonSandbox(engine=FakeEngine(run_code)), info=INFO, images=False)
    with pytest.raises(openai.BadRequestError):  # no image was sent: the error as it came
        refused(text_only)


def test_the_turn_limit_is_recorded() -> None:
    run, sent = run_scripted(
        "chat", [[code_call("boom")]] * 2 + ["late"], tool=make_tool(), max_turns=3
    )
    assert run.answer == "late" and run.turns == 3
    assert "tools" not in sent[-1]  # the last turn must answer
    run, _ = run_scripted("chat", [[code_call("boom")]] * 2, tool=make_tool(), max_turns=2)
    # the model called the tool on its last turn anyway: no answer
    assert run.stopped_by_turn_limit and run.to_dict()["answer"] is None


@pytest.mark.parametrize("api", APIS)
def test_run_task_makes_the_sandbox_for_the_files_and_closes_it(api: Api) -> None:
    engine = ClosingFakeEngine(run_code)
    run, sent = run_scripted(api, [[code_call("ok")], "17"], files=[CSV], engine=engine)
    assert [c.outcome for c in run.calls] == ["ok"] and engine.closed
    assert CSV.name in str(sent[0])  # the default instructions name the file


def test_run_task_closes_its_sandbox_when_the_model_fails() -> None:
    engine = ClosingFakeEngine(run_code)
    server = ScriptedServer([], status=401)
    with pytest.raises(openai.AuthenticationError):
        asyncio.run(run_task("q?", [CSV], client=server.client(), model="m", engine=engine))
    assert engine.closed


def _no_sandbox(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a sandbox was made for a configuration that cannot work")


UNUSABLE = [
    ({"files": [CSV], "tool": "TOOL"}, "pass files= or tool=", "files-and-tool"),
    ({"client": "CHAT", "base_url": "http://x/v1"}, "client= or base_url=", "client-and-url"),
    ({"client": "CHAT", "api": "chat"}, "must be an openai.AsyncOpenAI", "lc-model-for-chat"),
    ({"client": "OPENAI", "api": "langchain"}, "must be a LangChain", "openai-client-for-lc"),
    ({"api": "chat"}, "set OPENAI_API_KEY", "no-key-no-server"),
    ({"api": "langchain"}, "set OPENAI_API_KEY", "no-key-no-server-lc"),
    ({"api": "responses", "base_url": "http://x/v1", "model": None}, "needs model=", "no-model"),
    ({"api": "bard"}, "unknown api", "unknown-api"),
]


@pytest.mark.parametrize(
    ("kwargs", "says"), [pytest.param(kw, says, id=name) for kw, says, name in UNUSABLE]
)
def test_unusable_configurations_say_what_to_fix_before_any_sandbox(
    kwargs: dict[str, Any], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr("sandbox_tool.agents.task.build_tool", _no_sandbox)
    stand_ins: dict[str, Callable[[], Any]] = {
        "TOOL": make_tool,
        "CHAT": lambda: RecordingFakeModel(messages=iter([])),
        "OPENAI": lambda: ScriptedServer([]).client(),
    }
    kwargs = {
        k: stand_ins[v]() if isinstance(v, str) and v in stand_ins else v for k, v in kwargs.items()
    }
    kwargs.setdefault("model", "m")
    with pytest.raises(UsageError, match=says):
        asyncio.run(run_task("q?", **kwargs))
