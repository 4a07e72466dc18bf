"""A tool-calling loop on LangChain, for any chat model that supports ``bind_tools``.

Each turn's calls are answered by :meth:`~sandbox_tool.tool.LangChainPythonTool.ainvoke_turn`:
a ``ToolMessage`` per call, whose artifact holds the result and the plots, and the plots
inside them where the model's provider takes images in tool results, else in one
``HumanMessage`` after them. The turn loop is the one the OpenAI loops run
(:mod:`sandbox_tool.agents.loop`). Needs ``pip install 'sandbox-tool[langchain]'``; the
command line (``sandbox-tool agent --api langchain``) uses ``langchain-openai``'s
``ChatOpenAI``, :func:`langchain_loop` takes any chat model.

>>> run = await langchain_loop(ChatAnthropic(model=...), tool, "Which region sold most?",
...                            csv_name="sales.csv")                          # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox_tool.agents.loop import ToolChoice, ToolChoicePolicy, Turn, refused_images, run_turns
from sandbox_tool.agents.prompt import system_prompt
from sandbox_tool.agents.run import AgentRun
from sandbox_tool.tool import PythonTool, ToolOutcome

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage, ToolCall

__all__ = ["LangChainConversation", "langchain_loop"]


class LangChainConversation:
    """LangChain messages; a turn's calls are answered by the LangChain tool's
    ``ainvoke_turn``."""

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

        from sandbox_tool.tool.langchain_tool import (
            ImageRoute,
            LangChainPythonTool,
            images_in_tool_results,
        )

        self.model = model
        self.question = question
        self.python_tool = tool
        # this loop can send plots after a turn where tool results take text only
        route: ImageRoute = "tool_message" if images_in_tool_results(model) else "after_turn"
        self.lc_tool = LangChainPythonTool.from_tool(tool, images=route)
        self.settings: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
        self.images_sent = False
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
        try:
            reply = await bound.ainvoke(self.history, **self.settings)
        except Exception as exc:
            refusal = refused_images(exc, self.images_sent)
            if refusal is None:
                raise
            raise refusal from exc
        assert isinstance(reply, AIMessage)
        self.history.append(reply)
        return Turn(reply.text, reply.tool_calls)

    def requested(self, call: ToolCall) -> tuple[str, str | dict[str, Any] | None]:
        return call["name"], call["args"]

    def tell(self, message: str) -> None:
        from langchain_core.messages import HumanMessage

        self.history.append(HumanMessage(content=message))

    async def answer_turn(self, turn: Turn[ToolCall]) -> list[ToolOutcome]:
        replies = await self.lc_tool.ainvoke_turn(turn.calls)
        self.history += replies
        outcomes = []
        for reply in replies[: len(turn.calls)]:
            outcome = getattr(reply, "artifact", None)
            if not isinstance(outcome, ToolOutcome):  # arguments LangChain's schema refused
                outcome = ToolOutcome(ok=False, text=str(reply.content))
            outcomes.append(outcome)
        self.images_sent |= self.lc_tool.images != "none" and any(o.images for o in outcomes)
        return outcomes


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
