"""A complete Responses API loop: the model runs Python in a sandbox until it answers.

Run: OPENAI_API_KEY=... python docs/examples/responses_loop.py   (or OPENAI_BASE_URL;
OPENAI_MODEL picks the model)
"""

import asyncio
import os

from openai import AsyncOpenAI

from sandbox_tool import PythonSandbox
from sandbox_tool.tool import OpenAIFunctions, PythonTool


async def main() -> None:
    client = AsyncOpenAI()
    sandbox = PythonSandbox()
    functions = OpenAIFunctions(PythonTool(sandbox))
    items: list = [{"role": "user", "content": "Plot y = x**2 for x in 0..10 and give y(7)."}]
    try:
        for _ in range(6):
            response = await client.responses.create(
                model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
                input=items,
                tools=functions.responses_tools(),
                store=False,  # the conversation is kept here, in `items`
            )
            calls = [item for item in response.output if item.type == "function_call"]
            if not calls:
                print(response.output_text)
                return
            # the calls go back before their outputs; each output carries its own plots
            items += [
                {"type": "function_call", "call_id": c.call_id, "name": c.name,
                 "arguments": c.arguments}
                for c in calls
            ]  # fmt: skip
            items += (await functions.handle_turn(calls)).messages
    finally:
        await sandbox.aclose()


asyncio.run(main())
