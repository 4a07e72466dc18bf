"""A conversation's tool keeps the interpreter's state between calls, on a real engine."""

from __future__ import annotations

import asyncio

from sandbox_tool import PythonSandbox
from sandbox_tool.tool import LangChainPythonTool, PythonTool


def test_conversation_keeps_state_and_says_so() -> None:
    async def go() -> tuple[str, str, str]:
        sandbox = PythonSandbox("native")
        try:
            tool = PythonTool(sandbox)
            async with tool.conversation() as talk:
                await talk.run("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})")
                later = await talk.run("df['a'].sum()")
                return later.text, talk.spec.description, tool.spec.description
        finally:
            await sandbox.aclose()

    text, with_state, without = asyncio.run(go())
    assert "6" in text and "ran successfully" in text
    assert "fresh interpreter" in without
    assert "fresh interpreter" not in with_state


def test_sync_conversations_keep_state_without_an_event_loop() -> None:
    sandbox = PythonSandbox("native")
    try:
        tool = PythonTool(sandbox)
        with tool.conversation_sync() as talk:
            talk.run_sync("total = 40")
            assert "42" in talk.run_sync("total + 2").text
        lc_tool = LangChainPythonTool(python_tool=tool)
        with lc_tool.conversation() as lc_talk:
            assert "Variables, imports and files persist" in lc_talk.description
            lc_talk.invoke({"code": "seen = 'kept'"})
            assert "'kept'" in lc_talk.invoke({"code": "seen"})
        assert "NameError" in tool.run_sync("seen").text  # the session ended with the block
    finally:
        tool.close()
