"""A tool-calling loop on LangChain, for any chat model that supports ``bind_tools``.

Each tool call gives a ``ToolMessage`` whose artifact holds the result and the plots;
plots then go to the model as standard image blocks in a ``HumanMessage``.

    python -m agents.langchain_agent "Which region sold most?" sales.csv
    python -m agents.langchain_agent "..." sales.csv --base-url http://127.0.0.1:8080/v1

The command line uses ``langchain-openai``'s ``ChatOpenAI`` (any OpenAI-compatible
server); :func:`langchain_loop` takes any chat model.

>>> run = await langchain_loop(ChatAnthropic(model=...), tool, "Which region sold most?",
...                            csv_name="sales.csv")                          # doctest: +SKIP
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
from sandbox_tool.tool import PythonTool

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

__all__ = ["langchain_loop", "main"]


async def langchain_loop(
    model: BaseChatModel,
    tool: PythonTool,
    question: str,
    *,
    csv_name: str,
    max_turns: int = 6,
    policy: ToolChoicePolicy = "auto",
    temperature: float | None = 0,
) -> AgentRun:
    """Ask ``question``, running each tool call in the sandbox, until a final answer."""
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

    from sandbox_tool.tool import LangChainPythonTool, images_message

    lc_tool = LangChainPythonTool.from_tool(tool)
    messages: list[BaseMessage] = [
        SystemMessage(content=system_prompt(csv_name)),
        HumanMessage(content=question),
    ]
    run = AgentRun()
    while run.turns < max_turns:
        run.turns += 1
        choice = tool_choice(policy, run.outcomes, last_turn=run.turns == max_turns)
        # tool_choice "none": the model answers; not binding the tool says so everywhere
        forced = lc_tool.name if choice == "required" else choice
        bound = model if choice == "none" else model.bind_tools([lc_tool], tool_choice=forced)
        settings: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
        reply = await bound.ainvoke(messages, **settings)
        assert isinstance(reply, AIMessage)
        messages.append(reply)
        if not reply.tool_calls:
            run.answer = reply.text
            return run
        for call in reply.tool_calls:
            tool_message = await lc_tool.ainvoke({**call, "type": "tool_call"})
            messages.append(tool_message)
            outcome = tool_message.artifact
            if outcome is not None:
                run.outcomes.append(outcome)
            if tool.images and (images := images_message(outcome, tool_name=tool.name)):
                messages.append(images)
    return run


async def _main(argv: list[str] | None) -> int:
    parser = cli_parser(__doc__.splitlines()[0] if __doc__ else "")
    args = parser.parse_args(argv)
    problem = check_inputs(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        print(
            "the command line uses ChatOpenAI: pip install 'sandbox-tool[langchain]' "
            "langchain-openai (or call langchain_loop with any chat model)",
            file=sys.stderr,
        )
        return 2
    from pydantic import SecretStr

    key = SecretStr(api_key(args.base_url) or "")
    model = ChatOpenAI(model=args.model, base_url=args.base_url, api_key=key, temperature=0)
    tool = build_tool(args.csv, engine=args.engine, images=not args.no_images)
    return await run_and_report(
        args.base_url,
        tool,
        lambda: langchain_loop(
            model, tool, args.question, csv_name=args.csv.name, max_turns=args.max_turns,
            policy=args.tool_choice,
        ),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return asyncio.run(_main(argv))


if __name__ == "__main__":
    sys.exit(main())
