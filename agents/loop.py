"""The turn loop every agent shares; each model API only adapts its request and reply shapes.

A turn: choose the tool choice (:func:`tool_choice`), ask the model
(:meth:`Conversation.ask`); a reply without tool calls is the answer and ends the
run; otherwise every call is run in the sandbox (:meth:`Conversation.answer`),
recorded as a :class:`~agents.run.ToolCall`, and the replies to the whole turn go
back into the conversation at once (:meth:`Conversation.add_replies`), so an API
that wants, say, every image after the group of tool results can put them there.
The turn limit ends the run; its last turn is asked without the tool, to answer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from agents.run import ARGUMENTS_ERROR, OK, UNKNOWN_TOOL, AgentRun, ToolCall
from sandbox_tool.tool import PythonTool, ToolOutcome
from sandbox_tool.tool.spec import ArgumentsError, parse_arguments

__all__ = [
    "Conversation",
    "ToolChoice",
    "ToolChoicePolicy",
    "Turn",
    "run_turns",
    "tool_choice",
]

ToolChoice = Literal["auto", "required", "none"]
# "required" is sent as "this function" (one tool, same meaning): more servers honour it.
ToolChoicePolicy = Literal["auto", "first-success"]
"""``auto``: the model decides every turn. ``first-success``: it must call the tool until
one call succeeds, then answer (small models answer with code as text under ``auto``)."""

CallT = TypeVar("CallT")
ReplyT = TypeVar("ReplyT")


def tool_choice(
    policy: ToolChoicePolicy, outcomes: Sequence[ToolOutcome], last_turn: bool
) -> ToolChoice:
    """The ``tool_choice`` for the next model call; the last turn must answer."""
    if last_turn:
        return "none"
    if policy == "first-success":
        return "none" if any(o.ok for o in outcomes) else "required"
    return "auto"


@dataclass(frozen=True)
class Turn(Generic[CallT]):
    """One reply of the model."""

    text: str
    """Its text (the answer, when it made no tool calls)."""
    calls: Sequence[CallT]
    """Its tool calls, in the API's own shape."""


class Conversation(Protocol[CallT, ReplyT]):
    """One model API's side of the loop: it holds the conversation in that API's shape."""

    @property
    def tool(self) -> PythonTool:
        """The tool the calls run on."""
        ...

    async def ask(self, choice: ToolChoice) -> Turn[CallT]:
        """Send the conversation with this tool choice (``"none"``: without the tool) and
        add the model's reply to it."""
        ...

    def requested(self, call: CallT) -> tuple[str, str | dict[str, Any] | None]:
        """The tool name and the raw arguments of a call, for its record."""
        ...

    async def answer(self, call: CallT) -> tuple[ToolOutcome, ReplyT]:
        """Run a call: the tool's outcome, and the reply to send for it."""
        ...

    def add_replies(self, turn: Turn[CallT], replies: Sequence[ReplyT]) -> None:
        """Add the replies to all the calls of ``turn`` (in call order) to the conversation."""
        ...


async def run_turns(
    conversation: Conversation[CallT, ReplyT],
    *,
    max_turns: int,
    policy: ToolChoicePolicy = "auto",
) -> AgentRun:
    """Run the loop until the model answers or ``max_turns`` model calls were made."""
    run = AgentRun()
    while run.turns < max_turns:
        run.turns += 1
        choice = tool_choice(policy, run.outcomes, last_turn=run.turns == max_turns)
        turn = await conversation.ask(choice)
        if not turn.calls:
            run.answer = turn.text
            return run
        replies = []
        for call in turn.calls:
            record, reply = await _run_call(conversation, call)
            run.calls.append(record)
            replies.append(reply)
        conversation.add_replies(turn, replies)
    return run


async def _run_call(
    conversation: Conversation[CallT, ReplyT], call: CallT
) -> tuple[ToolCall, ReplyT]:
    name, arguments = conversation.requested(call)
    started = time.perf_counter()
    outcome, reply = await conversation.answer(call)
    duration_ms = (time.perf_counter() - started) * 1000
    try:
        code: str | None = parse_arguments(arguments)
    except ArgumentsError:
        code = None
    record = ToolCall(
        name=name,
        code=code,
        outcome=_outcome_name(outcome, name, conversation.tool.name),
        duration_ms=duration_ms,
        sandbox_ms=outcome.result.duration_ms if outcome.result is not None else None,
        tool_outcome=outcome,
    )
    return record, reply


def _outcome_name(outcome: ToolOutcome, called: str, tool_name: str) -> str:
    if outcome.ok:
        return OK
    if outcome.error is not None:
        return str(outcome.error["type"])
    return UNKNOWN_TOOL if called != tool_name else ARGUMENTS_ERROR
