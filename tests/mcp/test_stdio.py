"""``sandbox-tool mcp`` on stdio, driven by the SDK's client as a desktop client drives it.

One server serves the whole conversation below (its client negotiates the newest
protocol revision the SDK speaks); the tests read what it saw.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox_tool import PythonSandbox
from sandbox_tool.tool import PythonTool

from .conftest import (
    PNG_MAGIC,
    Listener,
    cancel_once_running,
    client,
    stdio_server,
    text_of,
    wait_gone,
)

PLOT = """
import matplotlib.pyplot as plt
print('plotting', flush=True)
plt.plot([1, 3, 2])
result = {'points': 3}
"""
FAILING = "print('before the error')\n1 / 0"


@dataclass
class Seen:
    tools: Any
    plot: Any
    failed: Any
    first: Any
    second: Any
    long_pids: list[int]
    alive_after_cancel: list[int]
    after_cancel: Any
    listener: Listener


async def _conversation() -> Seen:
    listener = Listener()
    async with client(stdio_server(), listener) as c:
        tools = await c.list_tools()
        plot = await c.call_tool(
            "run_python", {"code": PLOT}, progress_callback=listener.on_progress
        )
        failed = await c.call_tool("run_python", {"code": FAILING})
        first = await c.call_tool("run_python", {"code": "x = 41"})
        second = await c.call_tool("run_python", {"code": "x + 1"})
        # the next call waits in the same session while the long one is cancelled
        pids, after = await cancel_once_running(c, listener, then="result = 'next'")
        alive = await asyncio.to_thread(wait_gone, pids)
    return Seen(tools, plot, failed, first, second, pids, alive, after, listener)


@pytest.fixture(scope="module")
def seen() -> Seen:
    return asyncio.run(_conversation())


@pytest.fixture(scope="module")
def local_tool() -> PythonTool:
    """The same tool in this process: what the server's messages must be."""
    return PythonTool(PythonSandbox("native", warm=False), keeps_state=True)


def test_the_tool_is_the_one_spec(seen: Seen, local_tool: PythonTool) -> None:
    (tool,) = seen.tools.tools
    assert tool.name == "run_python"
    assert tool.description == local_tool.spec.description
    assert "persist between calls" in tool.description
    assert tool.input_schema == local_tool.spec.parameters


def test_a_plot_comes_back_as_text_image_and_structured_result(seen: Seen) -> None:
    assert not seen.plot.is_error
    text, image = seen.plot.content
    assert text.type == "text" and text.text.startswith("The code ran successfully.")
    assert image.type == "image" and image.mime_type == "image/png"
    assert base64.b64decode(image.data).startswith(PNG_MAGIC)
    data = seen.plot.structured_content
    assert data["ok"] is True and data["result"] == {"points": 3}
    assert data["stdout"] == "plotting\n" and data["artifacts"][0]["name"] == "figure-1.png"


def test_output_and_progress_arrive_while_the_code_runs(seen: Seen) -> None:
    assert ("stdout", "plotting\n") in seen.listener.logs
    assert seen.listener.progress and seen.listener.progress[0][1] == "plotting"


def test_a_failing_call_is_a_tool_error_with_the_models_message(
    seen: Seen, local_tool: PythonTool
) -> None:
    assert seen.failed.is_error
    assert text_of(seen.failed) == local_tool.run_sync(FAILING).text
    error = seen.failed.structured_content
    assert error["ok"] is False and error["error"]["exception"] == "ZeroDivisionError"
    assert error["stdout"] == "before the error\n"


def test_state_lasts_across_calls(seen: Seen) -> None:
    assert not seen.first.is_error
    assert seen.second.structured_content["result"] == 42


def test_cancelling_a_call_kills_its_sandbox(seen: Seen) -> None:
    assert len(seen.long_pids) == 1, "the long call did not start"
    assert seen.alive_after_cancel == [], "a process of the cancelled call survived"
    # the session it ran in is gone with it; the next call says so and works
    assert seen.after_cancel.structured_content["result"] == "next"
    note = "state of the earlier calls is gone (a cell was cancelled)"
    assert note in text_of(seen.after_cancel)
