"""A function-calling loop on the OpenAI SDK, for Chat Completions and the Responses API.

Works with any OpenAI-compatible server (``--base-url``). Plots go back to the model
as images; the loop stops on the model's final answer or at the turn limit.

    python -m agents.openai_agent "Which region sold most?" sales.csv --api responses
    python -m agents.openai_agent "..." sales.csv --base-url http://127.0.0.1:8080/v1

>>> run = await chat_completions_loop(client, tool, "Which region sold most?",
...                                   csv_name="sales.csv", model="gpt-4o-mini")  # doctest: +SKIP
>>> run.answer                                                                   # doctest: +SKIP
'North, with 17 units.'
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

from agents.common import (
    AgentRun,
    ToolChoicePolicy,
    api_key,
    build_tool,
    check_inputs,
    cli_parser,
    run_and_report,
    system_prompt,
    tool_choice,
)
from sandbox_tool.tool import OpenAIFunctions, PythonTool

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["chat_completions_loop", "main", "responses_loop"]


async def chat_completions_loop(
    client: AsyncOpenAI,
    tool: PythonTool,
    question: str,
    *,
    csv_name: str,
    model: str,
    max_turns: int = 6,
    policy: ToolChoicePolicy = "auto",
    temperature: float | None = 0,
) -> AgentRun:
    """Ask ``question`` through Chat Completions, running each tool call in the sandbox."""
    functions = OpenAIFunctions(tool)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt(csv_name)},
        {"role": "user", "content": question},
    ]
    run = AgentRun()
    while run.turns < max_turns:
        run.turns += 1
        choice = tool_choice(policy, run.outcomes, last_turn=run.turns == max_turns)
        # tool_choice "none": the model answers; leaving the tools out says so everywhere
        # (a small model shown the tools may still write a call as text)
        tools: dict[str, Any] = {}
        if choice != "none":
            tools["tools"] = functions.chat_completions_tools()
            tools["tool_choice"] = (
                {"type": "function", "function": {"name": tool.name}}
                if choice == "required"
                else choice
            )
        response = await client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            temperature=temperature,
            **tools,
        )
        message = response.choices[0].message
        if not message.tool_calls:
            run.answer = message.content or ""
            return run
        # content "" rather than null: some servers reject a null content
        messages.append(
            {
                "role": "assistant",
                "content": message.content or "",
                "tool_calls": [call.model_dump() for call in message.tool_calls],
            }
        )
        for call in message.tool_calls:
            reply = await functions.handle(call)
            run.outcomes.append(reply.outcome)
            messages.extend(reply.messages)
    return run


async def responses_loop(
    client: AsyncOpenAI,
    tool: PythonTool,
    question: str,
    *,
    csv_name: str,
    model: str,
    max_turns: int = 6,
    policy: ToolChoicePolicy = "auto",
    temperature: float | None = 0,
) -> AgentRun:
    """Ask ``question`` through the Responses API; the conversation is kept client-side."""
    functions = OpenAIFunctions(tool)
    items: list[Any] = [{"role": "user", "content": question}]
    run = AgentRun()
    while run.turns < max_turns:
        run.turns += 1
        choice = tool_choice(policy, run.outcomes, last_turn=run.turns == max_turns)
        tools: dict[str, Any] = {}
        if choice != "none":  # as in chat_completions_loop
            tools["tools"] = functions.responses_tools()
            tools["tool_choice"] = (
                {"type": "function", "name": tool.name} if choice == "required" else choice
            )
        response = await client.responses.create(
            model=model,
            instructions=system_prompt(csv_name),
            input=items,
            temperature=temperature,
            store=False,
            **tools,
        )
        calls = [item for item in response.output if item.type == "function_call"]
        if not calls:
            run.answer = response.output_text
            return run
        for call in calls:
            reply = await functions.handle(call)
            run.outcomes.append(reply.outcome)
            items += [
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                },
                *reply.messages,
            ]
    return run


async def _main(argv: list[str] | None) -> int:
    parser = cli_parser(__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--api", choices=["chat", "responses"], default="chat")
    args = parser.parse_args(argv)
    problem = check_inputs(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        import openai
    except ImportError:
        print("the OpenAI agent needs openai: pip install 'sandbox-tool[openai]'", file=sys.stderr)
        return 2
    client = openai.AsyncOpenAI(api_key=api_key(args.base_url), base_url=args.base_url)
    tool = build_tool(args.csv, engine=args.engine, images=not args.no_images)
    loop = responses_loop if args.api == "responses" else chat_completions_loop
    return await run_and_report(
        args.base_url,
        tool,
        lambda: loop(
            client, tool, args.question, csv_name=args.csv.name, model=args.model,
            max_turns=args.max_turns, policy=args.tool_choice,
        ),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return asyncio.run(_main(argv))


if __name__ == "__main__":
    sys.exit(main())
