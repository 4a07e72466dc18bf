"""Each agent loop replayed from a cassette of a real local model (record mode ``none``).

The model's side comes from the cassette; the tool really runs the model's code, on
the engine the agents pick by default (the strongest available here). Each recording
must show the model recovering: a tool call that fails, the tool's error message sent
back to the model, then a later call that succeeds and a final answer.
Re-record with ``.venv/bin/python -m agents.record_cassettes`` (``make record-cassettes``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents import record_cassettes as rec
from sandbox_tool.agents import AgentRun

vcr = pytest.importorskip("vcr")
openai = pytest.importorskip("openai")

COMMON: dict[str, Any] = {
    "csv_name": rec.DATA.name,
    "max_turns": rec.MAX_TURNS,
    "policy": rec.POLICY,
    "temperature": rec.TEMPERATURE,
}
FAILED = "The code failed."
SUCCEEDED = "The code ran successfully."


def _chat() -> Awaitable[AgentRun]:
    from sandbox_tool.agents.openai_loop import chat_completions_loop

    client = openai.AsyncOpenAI(base_url=rec.CHAT_BASE_URL, api_key="sk-test", max_retries=0)
    return chat_completions_loop(
        client, rec.scenario_tool(), rec.QUESTION, model=rec.MODEL, **COMMON
    )


def _responses() -> Awaitable[AgentRun]:
    from sandbox_tool.agents.openai_loop import responses_loop

    client = openai.AsyncOpenAI(base_url=rec.RESPONSES_BASE_URL, api_key="sk-test", max_retries=0)
    return responses_loop(client, rec.scenario_tool(), rec.QUESTION, model=rec.MODEL, **COMMON)


def _langchain() -> Awaitable[AgentRun]:
    pytest.importorskip("langchain_openai")
    from sandbox_tool.agents.langchain_loop import langchain_loop

    model = rec.langchain_model("sk-test")
    return langchain_loop(model, rec.scenario_tool(), rec.QUESTION, **COMMON)


LOOPS: list[Any] = [
    pytest.param("openai_chat", _chat, id="openai-chat-completions"),
    pytest.param("openai_responses", _responses, id="openai-responses"),
    pytest.param("langchain", _langchain, id="langchain"),
]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def _tool_texts(body: bytes | str) -> list[str]:
    """The tool results in a recorded request: Chat Completions ``tool`` messages or
    Responses ``function_call_output`` items, in conversation order."""
    sent = json.loads(body)
    if "messages" in sent:
        return [_text(m["content"]) for m in sent["messages"] if m.get("role") == "tool"]
    items = sent.get("input")
    if not isinstance(items, list):
        return []
    return [_text(i["output"]) for i in items if i.get("type") == "function_call_output"]


def _recorded_oks(tape: Any) -> list[bool]:
    """What the model was told about its calls during the recording, from the last request
    (which carries the whole conversation)."""
    texts = _tool_texts(tape.requests[-1].body)
    assert all(t.startswith((FAILED, SUCCEEDED)) for t in texts), texts
    return [t.startswith(SUCCEEDED) for t in texts]


def _recorded_answer(path: Path) -> str:
    """The model's last reply in a cassette: the answer the recording ended with."""
    body = json.loads(yaml.safe_load(path.read_text())["interactions"][-1]["response"]["body"]
                      ["string"])  # fmt: skip
    if "choices" in body:
        return str(body["choices"][0]["message"].get("content") or "")
    return "".join(
        part.get("text", "") for item in body.get("output", []) if item.get("type") == "message"
        for part in item.get("content", [])
    )  # fmt: skip


@pytest.mark.parametrize(("cassette", "start"), LOOPS)
def test_loop_replays_and_recovers_from_a_failed_call(
    cassette: str, start: Callable[[], Awaitable[AgentRun]]
) -> None:
    path = rec.CASSETTES / f"{cassette}.yaml"
    if not path.exists():
        pytest.fail(f"{path} is missing: run .venv/bin/python -m agents.record_cassettes")
    stale = rec.answer_problems(_recorded_answer(path))
    if stale:
        # a property of the committed recording, not of the code under test: said by name
        pytest.xfail(
            f"{path.relative_to(rec.REPO)} ends with {_recorded_answer(path)[:60]!r}..., not an "
            f"answer ({'; '.join(stale)}): a recording that does not answer cannot show the "
            "loop answering; re-record it with make record-cassettes, which keeps only a run "
            "that recovers and then answers"
        )
    with vcr.VCR(**rec.vcr_config("none")).use_cassette(path.name) as tape:
        run = asyncio.run(start())
    assert tape.all_played, "the loop made fewer model calls than were recorded"
    assert run.turns == len(tape.requests)

    # In the recording, the model was sent an error and then made a call that worked.
    recorded = _recorded_oks(tape)
    assert rec.recovered(recorded, "answer"), f"no recovery in the recording: {recorded}"
    error_sent = _tool_texts(tape.requests[-1].body)[recorded.index(False)]
    assert error_sent.startswith(FAILED) and "Fix the code" in error_sent, error_sent

    # Replayed, the model's code fails and recovers the same way on this machine's sandbox.
    oks = [o.ok for o in run.outcomes]
    assert oks == recorded, f"replayed {oks}, recorded {recorded}"
    assert rec.recovered(oks, run.answer), f"no failure, then success, then answer: {oks}"
    assert not run.stopped_by_turn_limit
    last_call = run.outcomes[-1]
    assert last_call.ok and last_call.text.startswith(SUCCEEDED)

    # The answer itself, checked against the data.
    assert rec.answer_problems(run.answer) == [], run.answer


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        pytest.param("South has the highest average price (130.50).", True, id="answer"),
        pytest.param("North.", False, id="wrong-region"),
        pytest.param('{"name": "run_python", "arguments": "{\\"code\\": \\"South\\"}"}', False,
                     id="tool-call-as-text"),
        pytest.param(None, False, id="no-answer"),
    ],
)  # fmt: skip
def test_the_answer_check_tells_an_answer_from_the_rest(answer: str | None, ok: bool) -> None:
    assert rec.expected_region() == "South"
    assert (rec.answer_problems(answer) == []) is ok


@pytest.mark.parametrize("cassette", rec.NAMES)
def test_cassettes_are_small_and_hold_no_secrets(cassette: str) -> None:
    path = rec.CASSETTES / f"{cassette}.yaml"
    if not path.exists():
        pytest.fail(f"{path} is missing")
    assert path.stat().st_size < 300_000
    text = path.read_text()
    assert "sk-" not in text and "Bearer" not in text and "not-needed" not in text
    for interaction in yaml.safe_load(text)["interactions"]:
        headers = {k.lower() for k in interaction["request"]["headers"]}
        assert not headers & set(rec.SECRET_HEADERS)
        assert interaction["request"]["uri"].startswith("http://127.0.0.1:")
