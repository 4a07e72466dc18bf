"""Shared fixtures: a fake-engine tool with a fixed interpreter description."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sandbox_tool import ExecutionOptions, ExecutionResult, PythonSandbox
from sandbox_tool.engines.fake import FakeEngine
from sandbox_tool.tool import InterpreterInfo, PythonTool

INFO = InterpreterInfo(
    python_version="3.11.7",
    libraries={"numpy": "2.0.0", "pandas": "2.2.0", "matplotlib": "3.9.0", "requests": "2.32.0"},
    stdlib=frozenset({"math", "json", "os", "csv", "statistics", "subprocess", "socket"}),
)

# A 1x1 PNG: enough for every API that wants image bytes.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture
def fake_tool() -> Callable[..., PythonTool]:
    """``fake_tool(handler, **options)``: a PythonTool on a FakeEngine."""

    def make(handler: Callable[[str, Any, ExecutionOptions], ExecutionResult], **opts: Any):
        sandbox = PythonSandbox(engine=FakeEngine(handler), options=ExecutionOptions(**opts))
        return PythonTool(sandbox, info=INFO)

    return make
