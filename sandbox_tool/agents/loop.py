"""The turn loop every agent shares; each model API only adapts its request and reply shapes.

A turn: choose the tool choice (:func:`tool_choice`), ask the model
(:meth:`Conversation.ask`); a reply without tool calls is the answer and ends the
run; otherwise all its calls are answered at once (:meth:`Conversation.answer_turn`:
the tool layer's one call for a turn, which puts the replies where the API wants them,
e.g. every plot after the group of Chat Completions tool messages), and each is
recorded as a :class:`~sandbox_tool.agents.run.ToolCall`. The turn limit ends the run;
its last turn is asked without the tool, to answer. The first time the loop asks
without the tool after offering it, it tells the model so and restates the question
(:func:`answer_now`).

A reply that is a tool call written as text (small open models write the JSON of a call
when the tool is left out, or when their server does not parse their call format) is
not taken as the answer: nothing ran, and the model is told so and asked again once
(:data:`MAX_REMINDERS`; each costs a turn). The run counts them (``AgentRun.reminders``).
Every reply stays in the conversation, the final answer too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from sandbox_tool.agents.run import ARGUMENTS_ERROR, OK, UNKNOWN_TOOL, AgentRun, ToolCall
from sandbox_tool.errors import UsageError
from sandbox_tool.tool import PythonTool, ToolOutcome
from sandbox_tool.tool.spec import ArgumentsError, parse_arguments

__all__ = [
    "MAX_REMINDERS",
    "Conversation",
    "ToolChoice",
    "ToolChoicePolicy",
    "Turn",
    "answer_now",
    "call_written_as_text",
    "refused_images",
    "reminder",
    "run_turns",
    "tool_choice",
]

MAX_REMINDERS = 1
"""How many replies written as tool calls a run answers with a reminder before taking
one as the answer."""

ToolChoice = Literal["auto", "required", "none"]
# "required" is sent as "this function" (one tool, same meaning): more servers honour it.
ToolChoicePolicy = Literal["auto", "first-success"]
"""``auto``: the model decides every turn. ``first-success``: it must call the tool until
one call succeeds, then answer (small models answer with code as text under ``auto``)."""

CallT = TypeVar("CallT")


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


class Conversation(Protocol[CallT]):
    """One model API's side of the loop: it holds the conversation in that API's shape."""

    @property
    def tool(self) -> PythonTool:
        """The tool the calls run on."""
        ...

    @property
    def question(self) -> str:
        """The user's question the conversation opened with."""
        ...

    async def ask(self, choice: ToolChoice) -> Turn[CallT]:
        """Send the conversation with this tool choice (``"none"``: without the tool) and
        add the model's reply to it."""
        ...

    def requested(self, call: CallT) -> tuple[str, str | dict[str, Any] | None]:
        """The tool name and the raw arguments of a call, for its record."""
        ...

    async def answer_turn(self, turn: Turn[CallT]) -> list[ToolOutcome]:
        """Run all the calls of ``turn``, add the replies to the conversation, and return
        the tool's outcome of each, in call order."""
        ...

    def tell(self, message: str) -> None:
        """Add ``message`` to the conversation as the user's (after the model's last
        reply, which :meth:`ask` kept)."""
        ...


def call_written_as_text(text: str, tool_name: str) -> bool:
    """Whether ``text`` is a call of ``tool_name`` written out rather than made: a JSON
    object naming the tool or holding its arguments (``{"name": ..., "arguments": ...}``,
    ``{"code": ...}``), bare, in a code fence or in ``<tool_call>`` tags, at the start
    of the reply. An answer that merely quotes code is not one."""
    stripped = text.strip()
    for prefix in ("<tool_call>", "```json", "```"):
        stripped = stripped.removeprefix(prefix).lstrip()
    if not stripped.startswith("{"):
        return False
    try:
        value, _ = json.JSONDecoder().raw_decode(stripped)
    except ValueError:
        return False
    if not isinstance(value, dict):
        return False
    return value.get("name") == tool_name or "arguments" in value or "code" in value


def answer_now(question: str) -> str:
    """Told to the model when the loop first asks it without the tool after offering it
    (the turn limit is near, or, under ``first-success``, a call worked). It restates the
    question: asked only to "answer the question", a small model repeats the last message
    it read (Qwen2.5-Coder-0.5B: 1 answer in 3 samples, against 3 in 3 with the question)."""
    return (
        "The tool is not available for this turn. Answer this question now, in words, from "
        f"the results above: {question}"
    )


def reminder(choice: ToolChoice) -> str:
    """What the model is told after writing a call as text under ``choice``."""
    if choice == "none":
        return (
            "That reply is a tool call written as text: nothing ran, and the tool is not "
            "available now. Answer the question in words, from the results of your "
            "earlier calls."
        )
    return (
        "That reply is a tool call written as text: nothing ran. Call the tool as a "
        "function call, or answer the question in words."
    )


async def run_turns(
    conversation: Conversation[CallT],
    *,
    max_turns: int,
    policy: ToolChoicePolicy = "auto",
) -> AgentRun:
    """Run the loop until the model answers or ``max_turns`` model calls were made."""
    run = AgentRun()
    offered = told = False
    while run.turns < max_turns:
        run.turns += 1
        choice = tool_choice(policy, run.outcomes, last_turn=run.turns == max_turns)
        if choice == "none" and offered and not told:
            conversation.tell(answer_now(conversation.question))  # the tool goes away
            told = True
        offered |= choice != "none"
        turn = await conversation.ask(choice)
        if not turn.calls:
            if (
                run.reminders < MAX_REMINDERS
                and run.turns < max_turns
                and call_written_as_text(turn.text, conversation.tool.name)
            ):
                run.reminders += 1
                conversation.tell(reminder(choice))
                continue
            run.answer = turn.text
            return run
        outcomes = await conversation.answer_turn(turn)
        for call, outcome in zip(turn.calls, outcomes, strict=True):
            run.calls.append(_record(conversation, call, outcome))
    return run


def _record(conversation: Conversation[CallT], call: CallT, outcome: ToolOutcome) -> ToolCall:
    name, arguments = conversation.requested(call)
    try:
        code: str | None = parse_arguments(arguments)
    except ArgumentsError:
        code = None
    return ToolCall(
        name=name,
        code=code,
        outcome=_outcome_name(outcome, name, conversation.tool.name),
        duration_ms=outcome.duration_ms,
        sandbox_ms=outcome.result.duration_ms if outcome.result is not None else None,
        tool_outcome=outcome,
    )


def _outcome_name(outcome: ToolOutcome, called: str, tool_name: str) -> str:
    if outcome.ok:
        return OK
    if outcome.error is not None:
        return str(outcome.error["type"])
    return UNKNOWN_TOOL if called != tool_name else ARGUMENTS_ERROR


def refused_images(error: Exception, images_sent: bool) -> UsageError | None:
    """A ``UsageError`` naming the fix when a model API refused a request (HTTP 400) over
    the plots the tool sent it as images (``images_sent``: the conversation holds some),
    else ``None``. Servers for text-only models answer so: the tool's ``images``
    (``PythonTool(images=False)``, the command line's ``--no-images``) is the one place
    that decides whether plots are sent."""
    status = getattr(error, "status_code", None) or getattr(error, "status", None)
    if not images_sent or status != 400 or "image" not in str(error).lower():
        return None
    return UsageError(
        f"the model's server refused the plots sent to it as images ({error}): for a model "
        "that reads text only, make the tool with PythonTool(..., images=False) (the "
        "command line's --no-images); its messages then say the plots are not shown"
    )
