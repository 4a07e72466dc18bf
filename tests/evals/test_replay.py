"""Record, replay and staleness of the agent suite, against a scripted model on loopback.

A tiny OpenAI-compatible server answers from a script (a tool call, then an answer);
the suite records its traffic, then replays it with the server gone: twice with the
same scores, and as *stale* (with what differs) once the tool's message or
description has changed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from evals.agent_cli import serving
from evals.agent_suite import Settings, run_one, scores, summarize_tasks
from evals.tasks import Task
from sandbox_tool import ExecutionOptions, ExecutionResult, PythonSandbox
from sandbox_tool.engines.fake import FakeEngine
from sandbox_tool.errors import ExecutionError
from sandbox_tool.tool import PythonTool
from tests.tool.conftest import INFO

pytest.importorskip("vcr")
pytest.importorskip("openai")

TASK = Task.model_validate(
    {
        "id": "probe",
        "category": "probe",
        "api": "chat",
        "question": "How many units were sold?",
        "check": [{"kind": "number", "value": 17}],
    }
)


def _completion(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


SCRIPT = [
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "run_python", "arguments": json.dumps({"code": "boom"})},
            }
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "run_python", "arguments": json.dumps({"code": "units"})},
            }
        ],
    },
    {"role": "assistant", "content": "17 units were sold."},
]


RECEIVED: list[dict[str, Any]] = []


@pytest.fixture
def model_server() -> Iterator[str]:
    answers = iter(SCRIPT)
    RECEIVED.clear()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            RECEIVED.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = json.dumps(_completion(next(answers))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield url


def _tool(units: int = 17, timeout: float = 30) -> PythonTool:
    def handler(code: str, inputs: Any, options: ExecutionOptions) -> ExecutionResult:
        if code == "boom":
            raise ExecutionError("NameError: name 'boom' is not defined", exception="NameError")
        return ExecutionResult(result=units, result_repr=str(units), result_type="int")

    sandbox = PythonSandbox(engine=FakeEngine(handler), options=ExecutionOptions(timeout=timeout))
    return PythonTool(sandbox, info=INFO, images=False)


def _run(tool: PythonTool, settings: Settings, task: Task = TASK) -> dict[str, Any]:
    return asyncio.run(run_one(task, tool, settings))


@pytest.fixture
def recorded(tmp_path: Path, model_server: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test-key")
    settings = Settings(mode="record", base_url=model_server, cassettes=tmp_path, model="scripted")
    result = _run(_tool(), settings)
    assert result["status"] == "passed", result["detail"]
    monkeypatch.delenv("OPENAI_API_KEY")
    return Settings(mode="replay", base_url=model_server, cassettes=tmp_path, model="scripted")


def test_recording_writes_a_scrubbed_cassette_and_its_metadata(recorded: Settings) -> None:
    text = (recorded.cassettes / "probe.yaml").read_text()
    assert "sk-secret-test-key" not in text and "Bearer" not in text
    for interaction in yaml.safe_load(text)["interactions"]:
        assert not {k.lower() for k in interaction["request"]["headers"]} & {"authorization"}
    assert str(Path.home()) not in text
    meta = json.loads((recorded.cassettes / "meta.json").read_text())
    assert meta["recorded"]["probe"]["model"] == "scripted"


def test_two_replays_give_the_same_scores_without_the_server(recorded: Settings) -> None:
    # the server is still up, but replay never calls it: its script is used up
    first, second = _run(_tool(), recorded), _run(_tool(), recorded)
    assert first["status"] == second["status"] == "passed"
    assert [c["outcome"] for c in first["calls"]] == ["ExecutionError:NameError", "ok"]
    assert first["recovered"] is True and first["turns"] == 3
    part = {"summary": summarize_tasks([first]), "tasks": [first]}
    again = {"summary": summarize_tasks([second]), "tasks": [second]}
    assert scores(part) == scores(again)
    assert part["summary"]["overall"]["recovery_rate"] == 1.0


def test_a_changed_tool_message_makes_the_task_stale(recorded: Settings) -> None:
    result = _run(_tool(units=18), recorded)
    assert result["status"] == "stale", result
    assert "the request changed" in result["detail"]
    assert "messages" in result["detail"] and "18" in result["detail"]


def test_a_changed_tool_description_makes_the_task_stale(recorded: Settings) -> None:
    result = _run(_tool(timeout=5), recorded)
    assert result["status"] == "stale", result
    assert "the tool's definition" in result["detail"]


def test_a_missing_cassette_is_stale_not_a_crash(tmp_path: Path) -> None:
    result = _run(_tool(), Settings(mode="replay", cassettes=tmp_path))
    assert result["status"] == "stale"
    assert "no cassette probe.yaml" in result["detail"]


def test_requests_carry_the_answer_cap_and_langchain_replays_too(
    tmp_path: Path, model_server: str
) -> None:
    task = TASK.model_copy(update={"id": "probe-langchain", "api": "langchain"})
    record = Settings(mode="record", base_url=model_server, cassettes=tmp_path, model="scripted")
    assert _run(_tool(), record, task)["status"] == "passed"
    assert [body["max_tokens"] for body in RECEIVED] == [record.max_tokens] * 3
    assert "max_completion_tokens" not in RECEIVED[0]
    # the assistant's tool-call turns are sent with "" (llama.cpp refuses null)
    assistant = [m for m in RECEIVED[-1]["messages"] if m["role"] == "assistant"]
    assert assistant and all(m["content"] == "" for m in assistant)
    replay = Settings(mode="replay", base_url=model_server, cassettes=tmp_path, model="scripted")
    again = _run(_tool(), replay, task)
    assert again["status"] == "passed" and again["recovered"] is True
