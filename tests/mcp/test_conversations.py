"""One conversation per client, in this process on the native engine: state lasts, and
when it is gone (idle, evicted) the next call says why."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sandbox_tool import Output, PythonSandbox
from sandbox_tool.mcp_server.conversations import Conversations
from sandbox_tool.tool import PythonTool, ToolOutcome


def converse(script: Callable[[Conversations], Awaitable[Any]], **settings: Any) -> Any:
    async def go() -> Any:
        sandbox = PythonSandbox("native", warm=False)
        conversations = Conversations(sandbox, PythonTool(sandbox), **{
            "stateless": False, "idle_timeout": 60.0, "max_sessions": 4, **settings})  # fmt: skip
        try:
            return await script(conversations)
        finally:
            await conversations.aclose()
            await sandbox.aclose()

    return asyncio.run(go())


async def call(conversations: Conversations, key: str | None, code: str) -> ToolOutcome:
    async def ignore(event: Output) -> None:
        return None

    return await conversations.call(key, code, ignore)


def test_each_client_keeps_its_own_state() -> None:
    async def script(c: Conversations) -> list[Any]:
        await call(c, "a", "x = 'a'")
        await call(c, "b", "x = 'b'")
        return [(await call(c, key, "x")).result.result for key in ("a", "b")]  # type: ignore[union-attr]

    assert converse(script) == ["a", "b"]


def test_the_session_unused_the_longest_makes_room_and_its_client_is_told() -> None:
    async def script(c: Conversations) -> ToolOutcome:
        await call(c, "a", "x = 1")
        await call(c, "b", "y = 2")  # one session at most: a's ends
        return await call(c, "a", "x")

    later = converse(script, max_sessions=1)
    assert not later.ok and "NameError" in later.text
    assert later.text.startswith("Note: the state of the earlier calls is gone (the server ended")


def test_an_idle_session_ends_and_the_next_call_says_why() -> None:
    async def script(c: Conversations) -> ToolOutcome:
        await call(c, "a", "x = 1")
        await asyncio.sleep(1.0)
        return await call(c, "a", "result = 'fresh'")

    later = converse(script, idle_timeout=0.3)
    assert later.ok and later.result is not None and later.result.result == "fresh"
    assert "(it was idle for 0.3 s)" in later.text


def test_without_sessions_every_call_is_fresh_and_the_description_says_so() -> None:
    async def script(c: Conversations) -> tuple[str, ToolOutcome]:
        await call(c, "a", "x = 1")
        return c.tool_for("a").spec.description, await call(c, "a", "x")

    description, later = converse(script, stateless=True)
    assert "nothing persists between calls" in description
    assert not later.ok and "NameError" in later.text
