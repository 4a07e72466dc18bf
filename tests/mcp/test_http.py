"""``sandbox-tool mcp --http``: streamable HTTP on loopback, several clients at once."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .conftest import (
    PNG_MAGIC,
    Listener,
    cancel_once_running,
    client,
    http_server,
    pids_in,
    text_of,
    wait_gone,
)
from .test_stdio import FAILING, PLOT


@dataclass
class Flow:
    """One client's view of its conversation."""

    description: str
    own: Any
    plot_or_failure: Any
    interpreter_pids: list[int]
    alive_after_leaving: list[int]


async def _client_flow(url: str, name: str, extra: str) -> Flow:
    async with client(url, Listener(), mode="legacy") as c:
        tools = await c.list_tools()
        await c.call_tool("run_python", {"code": f"import os, time\nwho = {name!r}"})
        # both clients' calls overlap while they sleep
        own = await c.call_tool("run_python", {"code": "time.sleep(0.5)\nwho"})
        extra_result = await c.call_tool("run_python", {"code": extra})
        pid = await c.call_tool("run_python", {"code": "print(f'pid={os.getpid()}')"})
    # the client deleted its session on leaving: its interpreter ends now, not when idle
    pids = pids_in(text_of(pid))
    alive = await asyncio.to_thread(wait_gone, pids)
    return Flow(tools.tools[0].description, own, extra_result, pids, alive)


@pytest.fixture(scope="module")
def flows(http_url: str) -> tuple[Flow, Flow]:
    async def both() -> tuple[Flow, Flow]:
        one, two = await asyncio.gather(
            _client_flow(http_url, "one", PLOT), _client_flow(http_url, "two", FAILING)
        )
        return one, two

    return asyncio.run(both())


def test_two_clients_at_once_each_keep_their_own_state(flows: tuple[Flow, Flow]) -> None:
    one, two = flows
    assert one.own.structured_content["result"] == "one"
    assert two.own.structured_content["result"] == "two"
    assert "persist between calls" in one.description


def test_a_plot_over_http(flows: tuple[Flow, Flow]) -> None:
    plot = flows[0].plot_or_failure
    assert not plot.is_error and [b.type for b in plot.content] == ["text", "image"]
    assert base64.b64decode(plot.content[1].data).startswith(PNG_MAGIC)
    assert plot.structured_content["result"] == {"points": 3}


def test_a_failure_over_http_is_a_tool_error(flows: tuple[Flow, Flow]) -> None:
    failed = flows[1].plot_or_failure
    assert failed.is_error and "ZeroDivisionError" in text_of(failed)


def test_a_client_that_leaves_ends_its_session(flows: tuple[Flow, Flow]) -> None:
    for flow in flows:
        assert len(flow.interpreter_pids) == 1
        assert flow.alive_after_leaving == []


def test_cancelling_a_call_over_http_kills_its_sandbox(http_url: str) -> None:
    async def go() -> tuple[list[int], list[int], Any]:
        listener = Listener()
        async with client(http_url, listener, mode="legacy") as c:
            pids, after = await cancel_once_running(c, listener, then="1 + 1")
            alive = await asyncio.to_thread(wait_gone, pids)
        return pids, alive, after

    pids, alive, after = asyncio.run(go())
    assert len(pids) == 1 and alive == []
    assert after.structured_content["result"] == 2


def test_a_2026_client_has_no_session_and_is_told_so(http_url: str) -> None:
    async def go() -> tuple[str, str, Any]:
        async with client(http_url, Listener()) as c:
            tools = await c.list_tools()
            await c.call_tool("run_python", {"code": "y = 1"})
            return (
                c.protocol_version,
                tools.tools[0].description,
                await c.call_tool("run_python", {"code": "y"}),
            )

    version, description, later = asyncio.run(go())
    assert version == "2026-07-28"  # this revision has no sessions
    assert "nothing persists between calls" in description
    assert later.is_error and "NameError" in text_of(later)


TOKEN = "a-test-token-of-enough-length"


def _post_initialize(url: str, headers: dict[str, str]) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}}  # fmt: skip
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 "Accept": "application/json, text/event-stream", **headers},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_on_loopback_a_web_page_cannot_reach_it_through_the_browser(http_url: str) -> None:
    # DNS rebinding (a name of the page's, resolving to 127.0.0.1) and cross-origin posts
    assert _post_initialize(http_url, {"Origin": "http://evil.example"}) == 403
    assert _post_initialize(http_url, {"Host": "evil.example"}) == 421
    assert _post_initialize(http_url, {}) == 200


def test_a_bearer_token_is_required_when_one_is_set(tmp_path: Path) -> None:
    with http_server(tmp_path, env={"SANDBOX_TOOL_MCP_TOKEN": TOKEN}) as url:
        assert _post_initialize(url, {}) == 401
        assert _post_initialize(url, {"Authorization": "Bearer wrong-token-wrong-token"}) == 401

        async def go() -> Any:
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
            async with http, Client(streamable_http_client(url, http_client=http)) as c:
                return await c.call_tool("run_python", {"code": "6 * 7"})

        assert asyncio.run(go()).structured_content["result"] == 42
