"""A function-calling loop on the OpenAI SDK, for Chat Completions and the Responses API.

Works with any OpenAI-compatible server. Plots go back to the model as images; the loop
stops on the model's final answer or at the turn limit. Both APIs run the same turn
loop (:mod:`sandbox_tool.agents.loop`) and answer a turn's calls through
:meth:`~sandbox_tool.tool.OpenAIFunctions.handle_turn`; only their request and reply
shapes differ (:class:`ChatCompletionsConversation`, :class:`ResponsesConversation`).
Needs ``pip install 'sandbox-tool[openai]'``; the command line is ``sandbox-tool agent``.

>>> run = await chat_completions_loop(client, tool, "Which region sold most?",
...                                   csv_name="sales.csv", model="gpt-4o-mini")  # doctest: +SKIP
>>> run.answer                                                                   # doctest: +SKIP
'North, with 17 units.'
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Literal, cast

from sandbox_tool.agents.loop import (
    Conversation,
    ToolChoice,
    ToolChoicePolicy,
    Turn,
    refused_images,
    run_turns,
)
from sandbox_tool.agents.prompt import system_prompt
from sandbox_tool.agents.run import AgentRun
from sandbox_tool.errors import UsageError
from sandbox_tool.tool import OpenAIFunctions, PythonTool, ToolOutcome, TurnReply

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionMessageParam, ChatCompletionMessageToolCallUnion
    from openai.types.responses import ResponseFunctionToolCall, ResponseInputParam

__all__ = [
    "ChatCompletionsConversation",
    "OpenAIApi",
    "ResponsesConversation",
    "chat_completions_loop",
    "openai_conversation",
    "responses_loop",
]

OpenAIApi = Literal["chat", "responses"]


class _OpenAIConversation(abc.ABC):
    """What both APIs share: the client, the settings and answering calls with ``handle``."""

    def __init__(
        self,
        client: AsyncOpenAI,
        tool: PythonTool,
        question: str,
        *,
        instructions: str,
        model: str,
        temperature: float | None = 0,
    ) -> None:
        self.client = client
        self.question = question
        self.functions = OpenAIFunctions(tool)
        self.instructions = instructions
        self.model = model
        self.temperature = temperature
        self.images_sent = False
        # plain dicts in the API's shape (the tool's replies are dicts too)
        self.history: list[dict[str, Any]] = self._opening(question)

    @property
    def tool(self) -> PythonTool:
        return self.functions.tool

    async def answer_turn(self, turn: Turn[Any]) -> list[ToolOutcome]:
        reply = await self.functions.handle_turn(turn.calls)
        self._add_replies(turn, reply)
        self.images_sent |= self.tool.images and any(o.images for o in reply.outcomes)
        return reply.outcomes

    def tell(self, message: str) -> None:
        # the same message in both APIs (Responses takes role messages as input)
        self.history.append({"role": "user", "content": message})

    async def _create(self, create: Any, **request: Any) -> Any:
        """One model call; a refusal of the plots it was sent says how to stop sending them."""
        try:
            return await create(**request)
        except Exception as exc:
            refusal = refused_images(exc, self.images_sent)
            if refusal is None:
                raise
            raise refusal from exc

    @abc.abstractmethod
    def _add_replies(self, turn: Turn[Any], reply: TurnReply) -> None:
        """Add the replies to the turn's calls to the conversation."""

    def _tools(self, choice: ToolChoice) -> dict[str, Any]:
        """``tools`` and ``tool_choice`` for a request. For ``"none"`` the model must
        answer: leaving the tools out says so to every server (a small model shown the
        tools may still write a call as text)."""
        if choice == "none":
            return {}
        forced = self._forced_choice() if choice == "required" else choice
        return {"tools": self._definitions(), "tool_choice": forced}

    @abc.abstractmethod
    def _opening(self, question: str) -> list[dict[str, Any]]:
        """The conversation before the model's first turn."""

    @abc.abstractmethod
    def _definitions(self) -> list[dict[str, Any]]:
        """The tool's definition in this API's shape."""

    @abc.abstractmethod
    def _forced_choice(self) -> dict[str, Any]:
        """The ``tool_choice`` that makes the model call the tool."""


class ChatCompletionsConversation(_OpenAIConversation):
    """Chat Completions: ``messages``; an assistant message holds its ``tool_calls``."""

    def _opening(self, question: str) -> list[dict[str, Any]]:
        return [
            {"role": "system", "content": self.instructions},
            {"role": "user", "content": question},
        ]

    def _definitions(self) -> list[dict[str, Any]]:
        return self.functions.chat_completions_tools()

    def _forced_choice(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.tool.name}}

    async def ask(self, choice: ToolChoice) -> Turn[ChatCompletionMessageToolCallUnion]:
        response = await self._create(
            self.client.chat.completions.create,
            model=self.model,
            # the history holds dicts of this shape (OpenAIFunctions needs no openai import)
            messages=cast("list[ChatCompletionMessageParam]", self.history),
            temperature=self.temperature,
            **self._tools(choice),
        )
        message = response.choices[0].message
        calls = message.tool_calls or []
        # content "" rather than null: some servers reject a null content
        reply: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
        if calls:
            reply["tool_calls"] = [call.model_dump() for call in calls]
        self.history.append(reply)
        return Turn(message.content or "", calls)

    def requested(
        self, call: ChatCompletionMessageToolCallUnion
    ) -> tuple[str, str | dict[str, Any] | None]:
        if call.type == "function":
            return call.function.name, call.function.arguments
        return call.custom.name, call.custom.input  # handle_turn() answers it as not ours

    def _add_replies(self, turn: Turn[Any], reply: TurnReply) -> None:
        self.history += reply.messages


class ResponsesConversation(_OpenAIConversation):
    """The Responses API, the conversation kept client-side (``store=False``): ``input``
    items; each ``function_call`` is followed by its ``function_call_output``."""

    def _opening(self, question: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": question}]  # the instructions go beside it

    def _definitions(self) -> list[dict[str, Any]]:
        return self.functions.responses_tools()

    def _forced_choice(self) -> dict[str, Any]:
        return {"type": "function", "name": self.tool.name}

    async def ask(self, choice: ToolChoice) -> Turn[ResponseFunctionToolCall]:
        response = await self._create(
            self.client.responses.create,
            model=self.model,
            instructions=self.instructions,
            input=cast("ResponseInputParam", self.history),  # dicts, as in Chat Completions
            temperature=self.temperature,
            store=False,
            **self._tools(choice),
        )
        calls = [item for item in response.output if item.type == "function_call"]
        if not calls:  # the calls go in with their outputs (_add_replies)
            self.history.append({"role": "assistant", "content": response.output_text})
        return Turn(response.output_text, calls)

    def requested(self, call: ResponseFunctionToolCall) -> tuple[str, str | dict[str, Any] | None]:
        return call.name, call.arguments

    def _add_replies(self, turn: Turn[Any], reply: TurnReply) -> None:
        # the model's calls go back before their outputs (the conversation is client-side)
        self.history += [
            {
                "type": "function_call",
                "call_id": c.call_id,
                "name": c.name,
                "arguments": c.arguments,
            }
            for c in turn.calls
        ]
        self.history += reply.messages


def openai_conversation(
    api: OpenAIApi,
    client: AsyncOpenAI,
    tool: PythonTool,
    question: str,
    *,
    instructions: str,
    model: str,
    temperature: float | None = 0,
) -> Conversation[Any]:
    """The conversation of one API, for :func:`~sandbox_tool.agents.loop.run_turns`."""
    if api == "chat":
        kind: type[ChatCompletionsConversation | ResponsesConversation] = (
            ChatCompletionsConversation
        )
    elif api == "responses":
        kind = ResponsesConversation
    else:
        raise UsageError(f"unknown OpenAI API {api!r}: use 'chat' or 'responses'")
    return kind(
        client, tool, question, instructions=instructions, model=model, temperature=temperature
    )


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
    """Ask ``question`` about ``csv_name`` through Chat Completions, running each tool call
    in the sandbox."""
    conversation = ChatCompletionsConversation(
        client, tool, question, instructions=system_prompt(csv_name), model=model,
        temperature=temperature,
    )  # fmt: skip
    return await run_turns(conversation, max_turns=max_turns, policy=policy)


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
    """Ask ``question`` about ``csv_name`` through the Responses API; the conversation is
    kept client-side."""
    conversation = ResponsesConversation(
        client, tool, question, instructions=system_prompt(csv_name), model=model,
        temperature=temperature,
    )  # fmt: skip
    return await run_turns(conversation, max_turns=max_turns, policy=policy)
