"""A complete Chat Completions loop: the model runs Python in a sandbox until it answers.

Run: OPENAI_API_KEY=... python docs/examples/chat_loop.py   (or OPENAI_BASE_URL=<any
OpenAI-compatible server>/v1; OPENAI_MODEL picks the model)
"""

import asyncio
import os

from openai import AsyncOpenAI

from sandbox_tool import PythonSandbox
from sandbox_tool.tool import OpenAIFunctions, PythonTool


async def main() -> None:
    client = AsyncOpenAI()  # OPENAI_API_KEY and OPENAI_BASE_URL from the environment
    sandbox = PythonSandbox()
    functions = OpenAIFunctions(PythonTool(sandbox))  # images=False for text-only models
    messages = [{"role": "user", "content": "Plot y = x**2 for x in 0..10 and give y(7)."}]
    try:
        for _ in range(6):
            response = await client.chat.completions.create(
                model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
                messages=messages,
                tools=functions.chat_completions_tools(),
            )
            message = response.choices[0].message
            if not message.tool_calls:
                print(message.content)
                return
            messages.append(message.model_dump(exclude_none=True))
            # every tool message of the turn, then one user message with all its plots
            turn = await functions.handle_turn(message.tool_calls)
            messages += turn.messages
    finally:
        await sandbox.aclose()


asyncio.run(main())
