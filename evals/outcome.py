"""What a tool call's outcome was, as one comparable string: its *outcome class*.

``ok`` for a call that completed; otherwise the error class, followed, where the error
has one, by ``:`` and its detail: the exception type of an ``ExecutionError``
(``ExecutionError:KeyError``), the module of an ``ImportNotAllowed``
(``ImportNotAllowed:requests``), the builtin of a ``BuiltinNotAllowed``
(``BuiltinNotAllowed:open``). A call whose arguments could not be used is
``BadArguments``.

>>> outcome_matches("ExecutionError", "ExecutionError:KeyError")
True
>>> outcome_matches("ExecutionError:NameError", "ExecutionError:KeyError")
False
"""

from __future__ import annotations

from sandbox_tool.tool import ToolOutcome

__all__ = ["LIMIT_CLASSES", "hit_limit", "outcome_class", "outcome_matches"]

#: Error classes that mean the code hit a limit of the sandbox.
LIMIT_CLASSES = frozenset(
    {"Timeout", "CpuLimitExceeded", "MemoryLimitExceeded", "OutputLimitExceeded"}
)

_DETAIL = {"ExecutionError": "exception", "ImportNotAllowed": "module", "BuiltinNotAllowed": "name"}


def outcome_class(outcome: ToolOutcome) -> str:
    """The outcome class of one call (see the module docstring)."""
    if outcome.ok:
        return "ok"
    if outcome.error is None:
        return "BadArguments"
    kind = str(outcome.error.get("type", "Error"))
    detail = outcome.error.get(_DETAIL.get(kind, ""))
    return f"{kind}:{detail}" if detail else kind


def outcome_matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` is ``expected``; an expectation without a detail
    (``ExecutionError``) accepts any detail."""
    if ":" in expected:
        return actual == expected
    return actual.split(":", 1)[0] == expected


def hit_limit(outcome_cls: str) -> bool:
    """Whether the outcome class is one of the sandbox's limits."""
    return outcome_cls.split(":", 1)[0] in LIMIT_CLASSES
