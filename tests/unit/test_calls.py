"""Bounds on what a call hands the sandbox (issue 14, item 11): code size, input size and
input nesting are refused with a ``UsageError`` naming the option, before the engine is
asked to start anything."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from sandbox_tool import ExecutionOptions, PythonSandbox, UsageError
from sandbox_tool.calls import MAX_INPUT_DEPTH, check_call
from sandbox_tool.engines.fake import FakeEngine
from sandbox_tool.result import ExecutionResult


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _counting_sandbox() -> tuple[PythonSandbox, list[str]]:
    calls: list[str] = []

    def run(code: str, inputs: Any, opts: ExecutionOptions) -> ExecutionResult:
        calls.append(code)
        return ExecutionResult(result=None)

    return PythonSandbox(engine=FakeEngine(run)), calls


@pytest.mark.parametrize(
    ("code", "inputs", "options", "match"),
    [
        pytest.param("x" * (50 << 20), None, {}, "max_code_bytes", id="code-50-MB"),
        pytest.param("é" * 600_000, None, {}, "max_code_bytes", id="code-counted-in-bytes"),
        pytest.param("x = 1", _nested(100_000), {}, "nested", id="inputs-100000-deep"),
        pytest.param("x = 1", "x" * (300 << 20), {}, "max_input_bytes", id="inputs-300-MB"),
        pytest.param(
            "x = 1",
            ["ab" * 1000] * 1000,
            {"max_input_bytes": 1 << 20},
            "max_input_bytes",
            id="inputs-many-strings",
        ),
        pytest.param(
            "x = 1",
            {"k": list(range(300_000))},
            {"max_input_bytes": 1 << 20},
            "max_input_bytes",
            id="inputs-many-numbers",
        ),
        pytest.param("x" * 2000, None, {"max_code_bytes": 1024}, "max_code_bytes", id="own-limit"),
    ],
)
def test_oversized_calls_are_refused_before_the_engine_runs(
    code: str, inputs: Any, options: dict[str, Any], match: str
) -> None:
    sandbox, calls = _counting_sandbox()
    with pytest.raises(UsageError, match=match):
        sandbox.execute_sync(code, inputs, options)
    assert calls == []
    sandbox.execute_sync("x = 1", [1, 2], options)  # the next call works
    assert calls == ["x = 1"]


def test_self_referencing_inputs_are_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(UsageError, match="nested"):
        check_call("x = 1", loop, None, ExecutionOptions())


def test_the_bounds_leave_real_data_alone() -> None:
    rows = [{"region": f"r{i % 7}", "amount": i * 1.5, "tags": ["a", "b"]} for i in range(50_000)]
    check_call("x = 1\n" * 10_000, rows, None, ExecutionOptions())
    check_call("x = 1", _nested(MAX_INPUT_DEPTH - 1), None, ExecutionOptions())


def test_the_errors_name_the_remedy() -> None:
    with pytest.raises(UsageError, match=r"ExecutionOptions\.files"):
        check_call("x = 1", "x" * 2048, None, ExecutionOptions(max_input_bytes=1024))
    with pytest.raises(UsageError, match=r"raise ExecutionOptions\.max_code_bytes"):
        check_call("x" * 2048, None, None, ExecutionOptions(max_code_bytes=1024))


@pytest.mark.parametrize(
    "fields", [{"max_code_bytes": 0}, {"max_input_bytes": -1}, {"max_input_bytes": 1 << 40}]
)
def test_bounds_are_validated(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=next(iter(fields))):
        ExecutionOptions(**fields)
