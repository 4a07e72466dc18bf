"""What an agent run did: the record every loop returns, for people and for evals.

>>> run = await run_task("Which region sold most?", [Path("sales.csv")],
...                      base_url="http://127.0.0.1:8080/v1", model="m")  # doctest: +SKIP
>>> [(call.outcome, call.duration_ms) for call in run.calls]            # doctest: +SKIP
[('ExecutionError', 41.2), ('ok', 38.9)]
>>> run.answer                                                          # doctest: +SKIP
'North, with 17 units.'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox_tool.tool import ToolOutcome

__all__ = ["AgentRun", "ToolCall"]

OK = "ok"
UNKNOWN_TOOL = "UnknownTool"
ARGUMENTS_ERROR = "ArgumentsError"


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model made, and what came of it."""

    name: str
    """The tool the model called (``run_python`` unless it named another)."""
    code: str | None
    """The code it asked to run, or ``None`` when its arguments held no usable code."""
    outcome: str
    """``"ok"`` when the code ran to completion; otherwise the class name of the error
    (``"ExecutionError"``, ``"Timeout"``, ``"ImportNotAllowed"``...), or, for a call
    that never reached the sandbox, ``"UnknownTool"`` (another tool's name) or
    ``"ArgumentsError"`` (arguments without usable code)."""
    duration_ms: float
    """Wall-clock time of the call as the loop saw it: the sandbox's execution (process
    start included) plus turning its outcome into the message for the model."""
    sandbox_ms: float | None
    """The execution's own duration as the engine measured it (the result's
    ``duration_ms``); ``None`` when the tool's outcome does not carry one (a failed
    call, or one that never ran)."""
    tool_outcome: ToolOutcome = field(repr=False)
    """The tool's whole outcome: the text the model was sent, the result, the error
    and the plots."""

    @property
    def ok(self) -> bool:
        """Whether the code ran to completion."""
        return self.outcome == OK

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without the result and the plots)."""
        return {
            "name": self.name,
            "code": self.code,
            "outcome": self.outcome,
            "duration_ms": round(self.duration_ms, 3),
            "sandbox_ms": None if self.sandbox_ms is None else round(self.sandbox_ms, 3),
            "text": self.tool_outcome.text,
        }


@dataclass
class AgentRun:
    """What a loop did: the final answer, every tool call on the way and the turns."""

    answer: str | None = None
    """The model's final text, or ``None`` when the turn limit came first."""
    calls: list[ToolCall] = field(default_factory=list)
    """Every tool call, in the order the model made them."""
    turns: int = 0
    """Model calls made (one per turn, the answering one included)."""
    reminders: int = 0
    """Replies that were a tool call written as text, answered with a reminder to call
    the tool or answer in words (see :mod:`sandbox_tool.agents.loop`)."""

    @property
    def outcomes(self) -> list[ToolOutcome]:
        """The tool's outcome of every call, in order."""
        return [call.tool_outcome for call in self.calls]

    @property
    def stopped_by_turn_limit(self) -> bool:
        """Whether the turn limit ended the run before the model answered."""
        return self.answer is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary of the run."""
        return {
            "answer": self.answer,
            "turns": self.turns,
            "reminders": self.reminders,
            "calls": [call.to_dict() for call in self.calls],
        }
