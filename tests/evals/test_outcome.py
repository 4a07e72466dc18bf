"""The outcome class of a tool call."""

from __future__ import annotations

import pytest

from evals.outcome import hit_limit, outcome_class, outcome_matches
from sandbox_tool.tool import ToolOutcome


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        pytest.param(ToolOutcome(ok=True, text=""), "ok", id="ok"),
        pytest.param(
            ToolOutcome(
                ok=False, text="", error={"type": "ExecutionError", "exception": "KeyError"}
            ),
            "ExecutionError:KeyError",
            id="exception",
        ),
        pytest.param(
            ToolOutcome(ok=False, text="", error={"type": "ImportNotAllowed", "module": "socket"}),
            "ImportNotAllowed:socket",
            id="module",
        ),
        pytest.param(
            ToolOutcome(ok=False, text="", error={"type": "BuiltinNotAllowed", "name": "open"}),
            "BuiltinNotAllowed:open",
            id="builtin",
        ),
        pytest.param(
            ToolOutcome(ok=False, text="", error={"type": "Timeout", "limit": 3.0}),
            "Timeout",
            id="limit",
        ),
        pytest.param(ToolOutcome(ok=False, text="bad arguments"), "BadArguments", id="arguments"),
    ],
)
def test_outcome_class(outcome: ToolOutcome, expected: str) -> None:
    assert outcome_class(outcome) == expected


def test_an_expectation_without_detail_accepts_any_detail() -> None:
    assert outcome_matches("ExecutionError", "ExecutionError:PermissionError")
    assert not outcome_matches("ExecutionError:KeyError", "ExecutionError:NameError")
    assert not outcome_matches("ok", "Timeout")


def test_limits() -> None:
    assert hit_limit("MemoryLimitExceeded") and hit_limit("OutputLimitExceeded")
    assert not hit_limit("ExecutionError:MemoryError") and not hit_limit("ok")
