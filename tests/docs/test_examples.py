"""The guides' and the README's code, run as users run it: each file of docs/examples/ in
a fresh interpreter, the model's side played by a scripted OpenAI-compatible server on
loopback; and every code block the docs take from a file is that file, word for word."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agents.responses_shim import responses_answer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A code block taken from a file: the marker line, then the fenced block.
INCLUDED = re.compile(r"<!-- example: (\S+) -->\n```python\n(.*?)```", re.DOTALL)
PLOT = "import matplotlib.pyplot as plt\nxs = range(11)\nplt.plot(xs, [x**2 for x in xs])\n7**2"


class ScriptedModel(BaseHTTPRequestHandler):
    """First answer: one call of run_python that plots; then the final answer."""

    sent: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.sent.append({"path": self.path, **body})
        first = len(self.sent) % 2 == 1
        message: dict[str, Any] = {"role": "assistant", "content": "y(7) = 49"}
        if first:
            call = {"name": "run_python", "arguments": json.dumps({"code": PLOT})}
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": call}],
            }
        completion = {"id": f"c{len(self.sent)}", "object": "chat.completion", "created": 0,
                      "model": "m", "choices": [{"index": 0, "message": message,
                                                 "finish_reason": "stop"}]}  # fmt: skip
        answer = (
            responses_answer(body, completion) if self.path.endswith("/responses") else completion
        )
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def model_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    ScriptedModel.sent = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", ScriptedModel.sent
    finally:
        server.shutdown()
        server.server_close()


def run_example(name: str, base_url: str | None = None, stdin: str = "") -> str:
    with tempfile.TemporaryDirectory() as home:  # caches the libraries write land here
        return _run(name, base_url, stdin, home)


def _run(name: str, base_url: str | None, stdin: str, home: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "PYTHONPATH": str(ROOT)}
    if base_url:
        env |= {"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-test", "OPENAI_MODEL": "m"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], input=stdin, capture_output=True, text=True,
        timeout=180, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_included_code_is_the_file_word_for_word(doc: Path) -> None:
    for name, block in INCLUDED.findall(doc.read_text(encoding="utf-8")):
        assert (ROOT / name).read_text(encoding="utf-8") == block, f"{doc.name}: {name} differs"


def test_the_docs_include_the_loops() -> None:
    included = {name for doc in DOCS for name, _ in INCLUDED.findall(doc.read_text())}
    assert {"docs/examples/chat_loop.py", "docs/examples/responses_loop.py"} <= included


def test_quickstart() -> None:
    out = run_example("quickstart.py")
    assert "result: 5 |" in out and "('figure-1.png', 'image/png')" in out
    assert "error: ZeroDivisionError at line 2 | printed: loading" in out
    assert "did you mean 'values'?" in out


@pytest.mark.slow
def test_chat_loop_answers_with_the_plot_after_the_tool_message(model_server: Any) -> None:
    url, sent = model_server
    assert run_example("chat_loop.py", url).strip() == "y(7) = 49"
    roles = [m["role"] for m in sent[1]["messages"]]
    assert roles == ["user", "assistant", "tool", "user"]
    assert "Result (int):\n49" in sent[1]["messages"][2]["content"]
    assert sent[1]["messages"][3]["content"][1]["type"] == "image_url"


@pytest.mark.slow
def test_responses_loop_answers_with_the_plot_in_the_output(model_server: Any) -> None:
    url, sent = model_server
    assert run_example("responses_loop.py", url).strip() == "y(7) = 49"
    (output,) = [i for i in sent[1]["input"] if i.get("type") == "function_call_output"]
    assert [part["type"] for part in output["output"]] == ["input_text", "input_image"]


@pytest.mark.slow
def test_langchain_agent_sends_the_plot_in_the_tool_result(model_server: Any) -> None:
    pytest.importorskip("langchain.agents")
    url, sent = model_server
    out = run_example("langchain_agent.py", url)
    assert "plots go: tool_message" in out and out.strip().endswith("y(7) = 49")
    (output,) = [i for i in sent[1]["input"] if i.get("type") == "function_call_output"]
    assert [part["type"] for part in output["output"]] == ["input_text", "input_image"]


def test_worker_answers_every_job_and_survives_a_bad_one() -> None:
    jobs = ['{"id": 1, "code": "sum(range(10))"}', "not json", '{"id": 2, "code": "1/0"}']
    lines = [
        json.loads(line) for line in run_example("worker.py", stdin="\n".join(jobs)).splitlines()
    ]
    by_id = {line["id"]: line for line in lines}
    assert len(lines) == 3
    assert by_id[1]["ok"] and by_id[1]["result"] == 45
    assert not by_id[2]["ok"] and "ZeroDivisionError" in by_id[2]["text"]
    assert not by_id[None]["ok"] and by_id[None]["text"].startswith("not a job")


async def _asgi(app: Any, messages: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Drive the ASGI app as a server does: lifespan startup, the requests (at once), shutdown."""
    lifespan_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan_out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan"}, lifespan_in.get, lifespan_out.put))
    await lifespan_in.put({"type": "lifespan.startup"})
    assert (await lifespan_out.get())["type"] == "lifespan.startup.complete"

    async def request(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        received = [{"type": "http.request", "body": json.dumps(body).encode()}]

        async def receive() -> dict[str, Any]:
            return received.pop(0)

        async def send(event: dict[str, Any]) -> None:
            sent.append(event)

        scope = {"type": "http", "path": "/run", "method": "POST"}
        await app(scope, receive, send)
        return sent[0]["status"], json.loads(sent[1]["body"])

    answers = await asyncio.gather(*(request(m) for m in messages))
    await lifespan_in.put({"type": "lifespan.shutdown"})
    assert (await lifespan_out.get())["type"] == "lifespan.shutdown.complete"
    await lifespan
    return list(answers)


def test_web_service_runs_requests_with_backpressure() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import web_service
    finally:
        sys.path.remove(str(EXAMPLES))
    web_service.MAX_WAITING = 0  # two slots, nothing waits: the third request is refused
    web_service.MAX_RUNNING = 2
    web_service.service = web_service.SandboxService()
    slow = {"code": "import time\ntime.sleep(1.5)\n'slept'"}
    answers = asyncio.run(_asgi(web_service.app, [{"code": "6 * 7"}, slow, slow]))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 200, 503]
    assert any(body.get("result") == 42 for _, body in answers)
    assert any(body.get("error") == "busy, retry later" for _, body in answers)
