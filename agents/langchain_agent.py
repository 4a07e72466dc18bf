"""A tool-calling loop on LangChain, for any chat model that supports ``bind_tools``.

Each tool call gives a ``ToolMessage`` whose artifact holds the result and the plots;
plots then go to the model as standard image blocks in a ``HumanMessage``. The turn
loop is the one the OpenAI loops run (:mod:`agents.loop`).

    python -m agents.langchain_agent "Which region sold most?" sales.csv
    python -m agents.langchain_agent "..." sales.csv --base-url http://127.0.0.1:8080/v1

The command line uses ``langchain-openai``'s ``ChatOpenAI`` (any OpenAI-compatible
server); :func:`langchain_loop` takes any chat model.

>>> run = await langchain_loop(ChatAnthropic(model=...), tool, "Which region sold most?",
...                            csv_name="sales.csv")                          # doctest: +SKIP
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agents.common import system_prompt
from agents.loop import ToolChoice, ToolChoicePolicy, Turn, run_turns
from agents.run import AgentRun
from sandbox_tool.tool import PythonTool, ToolOutcome

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage, ToolCall

__all__ = ["LangChainConversation", "langchain_loop", "main"]


class LangChainConversation:
    """LangChain messages; a call is answered by the tool's ``ainvoke`` (a ``ToolMessage``
    with the outcome as its artifact), its plots follow it in a ``HumanMessage``."""

    def __init__(
        self,
        model: BaseChatModel,
        tool: PythonTool,
        question: str,
        *,
        instructions: str,
        temperature: float | None = 0,
    ) -> None:
        from langchain_core.messages import HumanMessage, SystemMessage

        from sandbox_tool.tool import LangChainPythonTool

        self.model = model
        self.python_tool = tool
        self.lc_tool = LangChainPythonTool.from_tool(tool)
        self.settings: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
        self.history: list[BaseMessage] = [
            SystemMessage(content=instructions),
            HumanMessage(content=question),
        ]

    @property
    def tool(self) -> PythonTool:
        return self.python_tool

    async def ask(self, choice: ToolChoice) -> Turn[ToolCall]:
        from langchain_core.messages import AIMessage

        # tool_choice "none": the model answers; not binding the tool says so everywhere
        forced = self.lc_tool.name if choice == "required" else choice
        bound = (
            self.model
            if choice == "none"
            else self.model.bind_tools([self.lc_tool], tool_choice=forced)
        )
        reply = await bound.ainvoke(self.history, **self.settings)
        assert isinstance(reply, AIMessage)
        self.history.append(reply)
        return Turn(reply.text, reply.tool_calls)

    def requested(self, call: ToolCall) -> tuple[str, str | dict[str, Any] | None]:
        return call["name"], call["args"]

    async def answer(self, call: ToolCall) -> tuple[ToolOutcome, list[BaseMessage]]:
        from sandbox_tool.tool import images_message

        tool_message = await self.lc_tool.ainvoke({**call, "type": "tool_call"})
        outcome = tool_message.artifact
        if not isinstance(outcome, ToolOutcome):  # arguments LangChain's schema refused
            outcome = ToolOutcome(ok=False, text=str(tool_message.content))
        reply: list[BaseMessage] = [tool_message]
        if self.python_tool.images and (
            images := images_message(outcome, tool_name=self.tool.name)
        ):
            reply.append(images)
        return outcome, reply

    def add_replies(self, turn: Turn[ToolCall], replies: Sequence[list[BaseMessage]]) -> None:
        for reply in replies:
            self.history += reply


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
    """Ask ``question`` about ``csv_name``, running each tool call in the sandbox, until a
    final answer."""
    conversation = LangChainConversation(
        model, tool, question, instructions=system_prompt(csv_name), temperature=temperature
    )
    return await run_turns(conversation, max_turns=max_turns, policy=policy)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    from agents.cli import cli_parser, run_cli  # the command line sits above the loops

    args = cli_parser(__doc__.splitlines()[0] if __doc__ else "").parse_args(argv)
    return run_cli(args, api="langchain")


if __name__ == "__main__":
    sys.exit(main())
